"""Decode slots: an upload or a first render waits a bounded time for one, then answers 503 (Retry-After)
with nothing stored, so threads never pile up behind a slow decode; the next request after it is served."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from images.pixels import processing
from tests.conftest import Client, stored_names
from tests.images import encode, quadrants
from tests.problems import assert_problem

# Long enough for any request of these tests to answer in; a request still waiting after it is stuck.
STUCK_SECONDS = 30


@pytest.mark.django_db(transaction=True)
def test_with_every_slot_held_uploads_and_first_renders_answer_503_and_store_nothing(
    api: Client, posted: Callable[..., dict[str, Any]], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = posted(quadrants((400, 200)))
    before = stored_names()
    settings.IMAGE_DECODE_WAIT_SECONDS = 0.05
    decoding, release = threading.Event(), threading.Event()
    real_render = processing.render

    def slow_render(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name == "holder":
            decoding.set()  # inside the slot
            release.wait(STUCK_SECONDS)
        return real_render(*args, **kwargs)

    monkeypatch.setattr(processing, "render", slow_render)
    answers: dict[str, Any] = {}

    def ask(who: str, path: str) -> None:
        try:
            answers[who] = api.get(path)
        finally:
            connection.close()

    holder = threading.Thread(
        target=ask, args=("holder", f"/images/{image['id']}/file?width=320&format=png"), name="holder"
    )
    holder.start()
    try:
        assert decoding.wait(STUCK_SECONDS)
        # The slot is held: the next first render and the next upload each answer on their own.
        waiter = threading.Thread(
            target=ask, args=("render", f"/images/{image['id']}/file?width=160&format=webp"), name="render"
        )
        waiter.start()
        waiter.join(STUCK_SECONDS)
        assert not waiter.is_alive(), "a first render queued behind a held slot"
        busy = assert_problem(answers["render"], 503, "server_busy")
        assert "busy" in busy["detail"]
        refused = api.post("/images", {"image": _file(quadrants((300, 100)))})
        assert_problem(refused, 503, "server_busy")
        assert stored_names() == before  # neither stored anything
    finally:
        release.set()
        holder.join(STUCK_SECONDS)
    assert answers["holder"].status_code == 200
    # The slot is free again: the same requests now succeed.
    assert api.get(f"/images/{image['id']}/file?width=160&format=webp").status_code == 200
    assert api.post("/images", {"image": _file(quadrants((300, 100)))}).status_code == 201


def _file(im: Any) -> io.BytesIO:
    data = io.BytesIO(encode(im, "PNG"))
    data.name = "picture.png"
    return data
