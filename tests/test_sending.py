"""How stored files and stored renditions leave the app: handed to nginx (`FILE_ACCEL_REDIRECT`) with the
app's own headers and no body, or, without it, to the WSGI server's file wrapper as an open file (which
gunicorn `sendfile`s). The app still decides: 304, HEAD, a first render's bytes, a missing file."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.test import Client
from PIL import Image as PILImage

from tests.conftest import _s3_client, _s3_options, name_of, remove_stored_file, stored_names
from tests.images import meadow

PREFIX = "/_stored/"
# What the app still says when nginx sends the bytes (the Content-Type is the stored file's: nginx's).
HEADERS = (
    "ETag",
    "Cache-Control",
    "X-Content-Type-Options",
    "Content-Security-Policy",
    "Content-Disposition",
)


@pytest.fixture
def photo(posted: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return posted(meadow((800, 600)), fmt="JPEG", filename="meadow.jpg")


def stored_bytes(target: str) -> bytes:
    """The bytes at an X-Accel-Redirect target, read the way nginx's internal locations do."""
    s3 = _s3_options()
    if s3 is not None:
        prefix = f"{PREFIX}s3/{s3['bucket_name']}/"
        assert target.startswith(prefix), target
        return (
            _s3_client(s3["endpoint_url"])
            .get_object(Bucket=s3["bucket_name"], Key=target[len(prefix) :])["Body"]
            .read()
        )
    assert target.startswith(f"{PREFIX}fs/"), target
    return (Path(django_settings.MEDIA_ROOT) / target.removeprefix(f"{PREFIX}fs/")).read_bytes()


def body_of(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.parametrize("query", ["", "?width=320&format=webp", "?preset=thumb&format=jpeg"])
def test_with_accel_redirect_nginx_sends_the_stored_bytes_with_the_apps_headers(
    api: Client, photo: dict[str, Any], settings: Any, query: str
) -> None:
    path = f"/images/{photo['id']}/file{query}"
    plain = api.get(path)  # the first request renders (when it is a rendition) and stores
    expected = body_of(api.get(path))
    settings.FILE_ACCEL_REDIRECT = PREFIX

    response = api.get(path)

    assert response.status_code == 200
    assert body_of(response) == b"" and response["Content-Length"] == "0"
    assert "Content-Type" not in response
    assert stored_bytes(response["X-Accel-Redirect"]) == expected
    for header in HEADERS:
        assert response[header] == plain[header], header
    # The app still answers 304 and HEAD itself.
    not_modified = api.get(path, headers={"If-None-Match": plain["ETag"]})
    assert not_modified.status_code == 304 and "X-Accel-Redirect" not in not_modified
    head = api.head(path)
    assert head.status_code == 200 and "X-Accel-Redirect" not in head
    assert head["Content-Length"] == str(len(expected))


def test_a_first_render_is_answered_by_the_app_with_its_bytes(
    api: Client, photo: dict[str, Any], settings: Any
) -> None:
    settings.FILE_ACCEL_REDIRECT = PREFIX
    response = api.get(f"/images/{photo['id']}/file?width=320&format=jpeg")
    assert response.status_code == 200 and "X-Accel-Redirect" not in response
    body = body_of(response)
    assert response["Content-Length"] == str(len(body))
    assert PILImage.open(io.BytesIO(body)).size == (320, 240)


def test_a_missing_rendition_source_is_the_apps_answer_not_nginxs(
    api: Client, photo: dict[str, Any], settings: Any
) -> None:
    settings.FILE_ACCEL_REDIRECT = PREFIX
    wrong = f"/images/{photo['id']}/file?width=320&format=png"
    api.get(wrong)  # stored now
    # `renditions/<digest>/w320.<recipe>.png`: the recipe is a digest of the settings that made it.
    name = next(n for n in stored_names() if "/w320." in n and n.endswith(".png"))
    remove_stored_file(name)
    response = api.get(wrong)  # not stored: rendered again by the app, never a redirect to nothing
    assert response.status_code == 200 and "X-Accel-Redirect" not in response
    assert body_of(response)[:8] == b"\x89PNG\r\n\x1a\n"


def test_media_files_are_redirected_too(api: Client, photo: dict[str, Any], settings: Any) -> None:
    if _s3_options() is not None:
        pytest.skip("/media/ serves local files only")
    settings.FILE_ACCEL_REDIRECT = PREFIX
    response = api.get(f"/media/{name_of(photo)}")
    assert response.status_code == 200 and body_of(response) == b""
    assert response["X-Accel-Redirect"] == f"{PREFIX}fs/{name_of(photo)}"
    assert response["ETag"] and response["X-Content-Type-Options"] == "nosniff"


def test_without_it_the_wsgi_server_gets_the_open_file_to_sendfile(
    api: Client, photo: dict[str, Any], settings: Any
) -> None:
    if _s3_options() is not None:
        pytest.skip("an S3 object has no file descriptor to send")
    handed: list[Any] = []

    class FileWrapper:
        """A WSGI server's file wrapper (PEP 3333): gunicorn sendfiles what it is given."""

        def __init__(self, filelike: Any, block_size: int = 8192) -> None:
            handed.append(filelike)
            self.filelike = filelike

        def __iter__(self) -> Any:
            return iter(lambda: self.filelike.read(8192), b"")

        def close(self) -> None:
            self.filelike.close()

    for path in (f"/images/{photo['id']}/file", f"/media/{name_of(photo)}"):
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "wsgi.input": io.BytesIO(),
            "wsgi.url_scheme": "http",
            "wsgi.file_wrapper": FileWrapper,
        }
        status: list[str] = []
        # As Django's test client does: the handler's request signals would close the test's database
        # connection, inside its transaction (on PostgreSQL the next query then fails).
        signals.request_started.disconnect(close_old_connections)
        signals.request_finished.disconnect(close_old_connections)
        try:
            result = WSGIHandler()(environ, lambda s, h, status=status: status.append(s))
            stored = Path(django_settings.MEDIA_ROOT) / name_of(photo)
            assert os.fstat(handed[-1].fileno()).st_ino == stored.stat().st_ino  # the stored file itself
            body = b"".join(result)
            result.close()
        finally:
            signals.request_started.connect(close_old_connections)
            signals.request_finished.connect(close_old_connections)
        assert status == ["200 OK"]
        assert body == stored.read_bytes()


def test_a_prefix_that_is_no_path_stops_the_start() -> None:
    env = {**os.environ, "FILE_ACCEL_REDIRECT": "_stored", "DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True
    )
    assert done.returncode != 0 and "FILE_ACCEL_REDIRECT must be a path" in done.stderr
