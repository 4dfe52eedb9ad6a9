"""Resumable uploads with a real tus client (tuspy) against a live server: in chunks with checksums, cut off
mid-chunk and resumed, two PATCHes at one offset at once, and resumed on another server process (gunicorn,
on the filesystem and on S3) after the first one is gone.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image as PILImage
from tusclient.client import TusClient

from bench.server import HOST, AppServer, memory_kib
from tests.conftest import new_bucket, stored_names
from tests.images import encode, quadrants
from uploads import partials


@pytest.fixture
def png() -> bytes:
    image = quadrants((160, 120))
    image.paste(PILImage.effect_noise((80, 60), 80).convert("RGB"), (0, 0))
    return encode(image, "PNG")


@pytest.fixture
def upload_url(api: Any, live_server: Any) -> str:
    """A new upload URL, on the live server."""
    response = api.post("/uploads", {}, content_type="application/json")
    assert response.status_code == 201, response.content
    return live_server.url + urlsplit(response.json()["upload_url"]).path


def partial_names() -> list[str]:
    return [name for name in stored_names() if name.startswith(partials.PREFIX)]


def uploader(url: str, data: bytes, *, resume: bool = False, **options: Any) -> Any:
    """tuspy's uploader of `data`: on a new upload at `url` (its creation endpoint), or resuming the one
    that lives there."""
    if resume:
        return TusClient(url).uploader(file_stream=io.BytesIO(data), url=url, **options)
    return TusClient(url).uploader(file_stream=io.BytesIO(data), **options)


def finished_image(tus_uploader: Any) -> str:
    """The image the last PATCH made (its `Imagery-Image`)."""
    return tus_uploader.request.response_headers["imagery-image"]


def test_tuspy_uploads_in_chunks_with_checksums(api, upload_url, png, served):
    client = uploader(
        upload_url,
        png,
        chunk_size=len(png) // 4 + 1,
        metadata={"filename": "rooftops.png"},
        upload_checksum=True,
    )
    client.upload()
    image = api.get(finished_image(client)).json()
    assert image["title"] == "rooftops"
    assert (image["width"], image["height"]) == (160, 120)
    assert served(image["url"]).getpixel((150, 110))[:3] == quadrants((160, 120)).getpixel((150, 110))[:3]
    assert partial_names() == []


def cut_off_patch(url: str, offset: int, chunk: bytes) -> None:
    """A PATCH that declares `chunk` whole, sends half of it, and closes the connection."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.putrequest("PATCH", parts.path)
    for name, value in {
        "Tus-Resumable": "1.0.0",
        "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream",
        "Content-Length": str(len(chunk)),
    }.items():
        conn.putheader(name, value)
    conn.endheaders(chunk[: len(chunk) // 2])
    conn.sock.close()
    conn.close()


def test_cut_off_mid_chunk_then_resumed_from_the_confirmed_offset(api, upload_url, png):
    size = len(png) // 4
    first = uploader(upload_url, png, chunk_size=size)
    first.upload(stop_at=size)
    assert first.offset == size

    cut_off_patch(upload_url, size, png[size : 2 * size])

    # A new client (the page was reloaded) asks where the upload is: what the server confirmed, no more.
    again = uploader(upload_url, png, resume=True, chunk_size=size)
    assert again.offset == size
    again.upload()
    image = api.get(finished_image(again)).json()
    assert (image["width"], image["height"]) == (160, 120)
    assert partial_names() == []


def test_two_patches_at_one_offset_at_once_one_wins(api, upload_url, png, monkeypatch):
    size = len(png) // 2
    uploader(upload_url, png, chunk_size=size).upload(stop_at=1)  # created, one byte in
    both_stored = threading.Barrier(2, timeout=30)
    store = partials.store

    def store_then_wait(name: str, file: Any) -> None:
        store(name, file)
        both_stored.wait()  # both chunks are in the store before either advances the offset

    monkeypatch.setattr(partials, "store", store_then_wait)
    statuses: list[int] = []

    def send() -> None:
        parts = urlsplit(upload_url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        conn.request(
            "PATCH",
            parts.path,
            body=png[1:size],
            headers={
                "Tus-Resumable": "1.0.0",
                "Upload-Offset": "1",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        statuses.append(conn.getresponse().status)
        conn.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    monkeypatch.setattr(partials, "store", store)
    assert sorted(statuses) == [204, 409]
    # The loser's chunk is gone: the first byte's and the winner's remain.
    assert len(partial_names()) == 2
    rest = uploader(upload_url, png, resume=True, chunk_size=size)
    assert rest.offset == size
    rest.upload()
    assert api.get(finished_image(rest)).status_code == 200


# --- Another process --------------------------------------------------------------------------------


@pytest.fixture(params=["filesystem", "s3"])
def server_environment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """What two replicas share: the database (one SQLite file here) and the file store."""
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'shared.sqlite3'}", "IMAGERY_AUTH": "write"}
    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        env.update(server.storage_environment(new_bucket(server)))
    else:
        env["MEDIA_ROOT"] = str(tmp_path / "shared-media")
    yield env


def test_resumed_on_another_process(server_environment, tmp_path, png):
    first = AppServer(tmp_path / "first", env=server_environment)
    with first:
        status, body = first.request("POST", "/uploads", json.dumps({}).encode(), "application/json")
        assert status == 201, body
        path = urlsplit(json.loads(body)["upload_url"]).path
        size = len(png) // 3
        started = uploader(f"http://{HOST}:{first.port}{path}", png, chunk_size=size)
        started.upload(stop_at=size)
    # The first process is gone; the client resumes on another one, which finds the same partial data.
    with AppServer(tmp_path / "second", env=server_environment) as second:
        second.api_key = first.api_key
        resumed = uploader(f"http://{HOST}:{second.port}{path}", png, resume=True, chunk_size=size)
        assert resumed.offset == size
        resumed.upload()
        status, body = second.request("GET", finished_image(resumed))
        assert status == 200, body
        assert json.loads(body)["width"] == 160


def test_a_large_chunk_is_streamed_not_held(tmp_path):
    """One 32 MiB PATCH to gunicorn (as `make run` serves): the worker's peak memory rises by far less than
    the chunk, which goes to the store through a temporary file in 1 MiB pieces."""
    chunk = os.urandom(32 * 1024 * 1024)
    with AppServer(tmp_path / "server", env={"IMAGERY_AUTH": "write"}) as server:
        status, body = server.request("POST", "/uploads", b"{}", "application/json")
        assert status == 201, body
        path = urlsplit(json.loads(body)["upload_url"]).path
        conn = http.client.HTTPConnection(HOST, server.port, timeout=60)
        tus_headers = {"Tus-Resumable": "1.0.0"}
        conn.request("POST", path, headers={**tus_headers, "Upload-Length": str(len(chunk) + 1)})
        assert conn.getresponse().status == 201
        conn.close()
        before = memory_kib(server.worker_pid())["VmHWM"]
        conn = http.client.HTTPConnection(HOST, server.port, timeout=60)
        conn.request(
            "PATCH",
            path,
            body=chunk,
            headers={**tus_headers, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        )
        answer = conn.getresponse()
        assert answer.status == 204, answer.read()
        assert answer.getheader("Upload-Offset") == str(len(chunk))
        conn.close()
        rise_kib = memory_kib(server.worker_pid())["VmHWM"] - before
        assert rise_kib < 8 * 1024, f"the worker's peak rose {rise_kib} KiB for a 32768 KiB chunk"
        conn = http.client.HTTPConnection(HOST, server.port, timeout=60)
        conn.request("DELETE", path, headers=tus_headers)
        assert conn.getresponse().status == 204
        conn.close()
