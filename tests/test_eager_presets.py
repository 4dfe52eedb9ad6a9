"""Eager presets (`IMAGE_EAGER_PRESETS`): after an upload the task worker renders and stores them, so an app's
first view of them is a stored file; the upload's answer does not wait for them."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from PIL import Image as PILImage

from images import tasks
from tests.conftest import name_of, stored_names
from tests.images import BLUE, GREEN, RED, WHITE, close, corners, quadrants
from tests.queue import results, run_worker, waiting

pytestmark = pytest.mark.django_db(transaction=True)

WEBP_ONLY = "image/webp,*/*"


@pytest.fixture(autouse=True)
def eager_thumb(settings: Any) -> None:
    settings.IMAGE_EAGER_PRESETS = ["thumb"]  # 200x200, cover


def renditions_of(body: dict[str, Any]) -> list[str]:
    digest = name_of(body).rsplit("/", 1)[-1].split(".")[0]
    return [name for name in stored_names() if name.startswith(f"renditions/{digest}/")]


def get_preset(api: Client, body: dict[str, Any], accept: str | None = None) -> PILImage.Image:
    headers = {"Accept": accept} if accept else {}
    response = api.get(f"/images/{body['id']}/file?preset=thumb", headers=headers)
    assert response.status_code == 200, response.content
    data = b"".join(response.streaming_content) if response.streaming else response.content
    im = PILImage.open(io.BytesIO(data))
    im.load()
    return im


@pytest.mark.usefixtures("database_queue")
def test_the_upload_answers_before_the_eager_renditions_exist(posted: Callable[..., Any]) -> None:
    body = posted(quadrants((400, 200)))
    assert renditions_of(body) == []
    assert [r.task_path for r in waiting()] == ["images.tasks.render_eager_presets"]
    assert waiting()[0].args_kwargs == {"args": [], "kwargs": {"image_id": body["id"]}}


@pytest.mark.usefixtures("database_queue")
def test_the_worker_stores_each_format_a_first_view_may_ask_for(
    api: Client, posted: Callable[..., Any]
) -> None:
    body = posted(quadrants((400, 200)))
    run_worker()
    stored = renditions_of(body)
    # A PNG may hold transparency or an animation: `auto` answers PNG, or WebP to a browser that takes it.
    assert sorted(name.rsplit(".", 1)[-1] for name in stored) == ["png", "webp"], stored
    assert all(name.rsplit("/", 1)[-1].startswith("thumb.") for name in stored)
    assert results("render_eager_presets")[0].status == "SUCCESSFUL"
    # The first views are stored files: nothing renders, nothing new is stored.
    with mock.patch("images.pipeline.render", side_effect=AssertionError("rendered on a view")):
        for accept in (None, WEBP_ONLY):
            thumb = get_preset(api, body, accept)
            assert thumb.size == (200, 200)
            # cover crops the 400x200 image's middle: red and green on the left, blue and white right.
            top_left, top_right, bottom_left, bottom_right = corners(thumb.convert("RGB"))
            assert close(top_left, RED) and close(top_right, GREEN)
            assert close(bottom_left, BLUE) and close(bottom_right, WHITE)
    assert renditions_of(body) == stored


@pytest.mark.usefixtures("database_queue")
def test_a_second_run_changes_nothing(posted: Callable[..., Any]) -> None:
    body = posted(quadrants((400, 200)))
    run_worker()
    before = {name: _read(name) for name in renditions_of(body)}
    assert tasks.render_eager_presets.call(image_id=body["id"]) == []
    assert {name: _read(name) for name in renditions_of(body)} == before


@pytest.mark.usefixtures("database_queue")
def test_an_image_deleted_before_the_worker_runs_is_a_no_op(api: Client, posted: Callable[..., Any]) -> None:
    body = posted(quadrants((400, 200)))
    assert api.delete(f"/images/{body['id']}").status_code == 204
    run_worker()
    assert stored_names() == []
    assert [r.status for r in results("render_eager_presets")] == ["SUCCESSFUL"]
    assert results("render_eager_presets")[0].return_value == []


@pytest.mark.usefixtures("database_queue")
def test_without_eager_presets_nothing_is_enqueued(settings: Any, posted: Callable[..., Any]) -> None:
    settings.IMAGE_EAGER_PRESETS = []
    posted(quadrants((400, 200)))
    assert waiting() == []


def test_with_the_immediate_backend_the_renditions_exist_when_the_upload_answers(
    posted: Callable[..., Any],
) -> None:
    # TASK_BACKEND=immediate: no worker; the task runs in the request, after the commit.
    body = posted(quadrants((400, 200)))
    assert len(renditions_of(body)) == 2


def test_an_unknown_eager_preset_stops_the_start(settings: Any) -> None:
    settings.IMAGE_EAGER_PRESETS = ["thumb", "poster"]
    with pytest.raises(ImproperlyConfigured, match=r"IMAGE_EAGER_PRESETS names no preset.*poster"):
        apps.get_app_config("images").ready()


def _read(name: str) -> bytes:
    from images import storage

    with storage.open_file(name) as file:
        return file.read()
