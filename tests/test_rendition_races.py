"""A rendition request racing a DELETE of its image: whichever way they interleave, the request answers
200 (it came first) or 404 (it lost), never 503; no rendition outlives its image; nothing deliberately
deleted is logged as lost. Each interleaving is forced with events, on the filesystem and on S3."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.files.storage import storages
from django.db import connection

from images import storage
from tests.conftest import Client, name_of, stored_names
from tests.images import quadrants
from tests.problems import assert_problem

WAIT = 30  # seconds any step of these tests may take; only a stuck test reaches it
RENDITION = "width=320&format=webp"


@pytest.fixture
def image(posted: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return posted(quadrants((800, 400)))


class Race:
    """A GET of the image's file in its own thread, held at a point of its work until the DELETE is done."""

    def __init__(self, api: Client, image: dict[str, Any], query: str) -> None:
        self.api, self.image, self.query = api, image, query
        self.reached, self.deleted = threading.Event(), threading.Event()
        self.answer: Any = None
        self.thread = threading.Thread(target=self._get, name="get")

    def hold_here(self) -> None:
        """Called by a patched step of the GET: signal that it got there, and wait for the DELETE."""
        if threading.current_thread().name == "get" and not self.reached.is_set():
            self.reached.set()
            assert self.deleted.wait(WAIT)

    def _get(self) -> None:
        try:
            path = f"/images/{self.image['id']}/file" + (f"?{self.query}" if self.query else "")
            self.answer = self.api.get(path)
        finally:
            connection.close()

    def run(self) -> Any:
        """Start the GET; once it is held, DELETE the image; then let the GET go on. Its answer."""
        self.thread.start()
        try:
            assert self.reached.wait(WAIT), "the GET never got to the point it is held at"
            assert self.api.delete(f"/images/{self.image['id']}").status_code == 204
        finally:
            self.deleted.set()
            self.thread.join(WAIT)
        assert not self.thread.is_alive()
        return self.answer


@pytest.fixture
def no_loss_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.INFO)
    yield
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == []


@pytest.mark.django_db(transaction=True)
def test_a_render_that_stores_after_the_delete_removes_its_rendition_and_answers_404(
    api: Client, image: dict[str, Any], monkeypatch: pytest.MonkeyPatch, no_loss_logged: None
) -> None:
    race = Race(api, image, RENDITION)
    real_store_as = storage.store_as

    def store_after_the_delete(name: str, data: bytes, *, media_type: str) -> bool:
        race.hold_here()  # rendered; the DELETE removes the row, the file and the renditions now
        return real_store_as(name, data, media_type=media_type)

    monkeypatch.setattr(storage, "store_as", store_after_the_delete)
    assert_problem(race.run(), 404)
    assert stored_names() == []  # nothing stayed behind, on the filesystem or in the bucket


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("query", [RENDITION, ""], ids=["rendition", "stored file"])
def test_a_request_whose_file_is_deleted_before_it_opens_it_answers_404_and_logs_no_loss(
    api: Client, image: dict[str, Any], monkeypatch: pytest.MonkeyPatch, no_loss_logged: None, query: str
) -> None:
    race = Race(api, image, query)
    real_open = storage.open_file

    def open_after_the_delete(name: str, **kwargs: Any) -> Any:
        if name == name_of(image):
            race.hold_here()  # the row was read; the DELETE removes it and the file now
        return real_open(name, **kwargs)

    monkeypatch.setattr(storage, "open_file", open_after_the_delete)
    assert_problem(race.run(), 404)
    assert stored_names() == []


@pytest.mark.django_db(transaction=True)
def test_a_render_whose_source_is_deleted_just_after_it_opened_it_answers_404(
    api: Client, image: dict[str, Any], monkeypatch: pytest.MonkeyPatch, no_loss_logged: None
) -> None:
    # S3 opens with a HEAD and reads with a GET: the object may go in between. A local file stays readable
    # once open; then the render stores, finds the image gone and removes what it stored.
    race = Race(api, image, RENDITION)
    backend = type(storages["default"])
    real_open = backend._open

    def opened_then_deleted(self: Any, name: str, mode: str = "rb") -> Any:
        file = real_open(self, name, mode)
        if name.endswith(name_of(image)):
            race.hold_here()
        return file

    monkeypatch.setattr(backend, "_open", opened_then_deleted)
    assert_problem(race.run(), 404)
    assert stored_names() == []


@pytest.mark.filesystem_only
@pytest.mark.django_db(transaction=True)
def test_a_folder_removed_between_mkdir_and_the_temporary_file_is_made_again(
    api: Client, image: dict[str, Any], monkeypatch: pytest.MonkeyPatch, no_loss_logged: None
) -> None:
    # The DELETE's prefix delete finds the rendition's folder empty (just made, no file in it yet) and
    # removes it before the temporary file is created there.
    race = Race(api, image, RENDITION)
    real_mkstemp = storage.tempfile.mkstemp

    def mkstemp_after_the_delete(**kwargs: Any) -> Any:
        if str(kwargs.get("dir", "")).find("renditions") >= 0:
            race.hold_here()
        return real_mkstemp(**kwargs)

    monkeypatch.setattr(storage.tempfile, "mkstemp", mkstemp_after_the_delete)
    assert_problem(race.run(), 404)
    assert stored_names() == []
    assert not (
        Path(django_settings.MEDIA_ROOT) / "renditions" / name_of(image).rsplit("/", 1)[-1].split(".")[0]
    ).exists()


@pytest.mark.django_db(transaction=True)
def test_a_render_that_stores_before_the_delete_is_removed_by_it(
    api: Client, image: dict[str, Any], monkeypatch: pytest.MonkeyPatch, no_loss_logged: None
) -> None:
    # The other order: the rendition is stored and checked before the DELETE; the GET answers it (it came
    # first), and the DELETE then removes it with the image's other renditions.
    assert api.get(f"/images/{image['id']}/file?{RENDITION}").status_code == 200
    assert api.delete(f"/images/{image['id']}").status_code == 204
    assert stored_names() == []
