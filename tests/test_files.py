"""The stored file at an image's `url`: its bytes, headers, caching, and what else /media/ refuses."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from tests.conftest import stored_names
from tests.images import quadrants
from tests.problems import assert_problem

CACHE_FOREVER = "public, max-age=31536000, immutable"
FORMATS = [
    ("PNG", "png", "image/png"),
    ("JPEG", "jpeg", "image/jpeg"),
    ("GIF", "gif", "image/gif"),
    ("WEBP", "webp", "image/webp"),
]


@pytest.fixture
def stored(upload: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
    """Upload an image and return the object the API answered."""

    def _stored(image: Any = None, fmt: str = "PNG", **fields: Any) -> dict[str, Any]:
        response = upload(image or quadrants((64, 32)), fmt=fmt, **fields)
        assert response.status_code == 201, response.content
        return response.json()

    return _stored


def path_of(url: str) -> str:
    return url.removeprefix("http://testserver")


def body_of(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.parametrize(("fmt", "format_field", "media_type"), FORMATS)
def test_file_is_served_with_the_content_type_of_its_format(
    api: Client, stored: Callable[..., Any], fmt: str, format_field: str, media_type: str
) -> None:
    image = stored(fmt=fmt)
    response = api.get(path_of(image["url"]))
    assert response.status_code == 200
    assert image["format"] == format_field
    assert response["Content-Type"] == media_type


@pytest.mark.parametrize("fmt", [fmt for fmt, _, _ in FORMATS])
def test_file_decodes_to_the_reported_format_and_size(
    stored: Callable[..., Any], served: Callable[..., Any], fmt: str
) -> None:
    image = stored(fmt=fmt, width=40)
    pixels = served(image["url"])
    assert pixels.format == fmt
    assert pixels.size == (image["width"], image["height"])


def test_file_content_length_is_the_reported_size(
    api: Client, stored: Callable[..., Any], served: Callable[..., Any]
) -> None:
    image = stored()
    pixels = served(image["url"])
    assert int(pixels.served_headers["Content-Length"]) == image["size"]
    assert len(pixels.served_bytes) == image["size"]


@pytest.mark.filesystem_only  # S3 cannot send X-Content-Type-Options: a CDN in front adds it
def test_file_security_and_cache_headers(api: Client, stored: Callable[..., Any]) -> None:
    response = api.get(path_of(stored()["url"]))
    assert response["Cache-Control"] == CACHE_FOREVER
    assert response["X-Content-Type-Options"] == "nosniff"


def test_file_etag_is_the_same_for_the_same_content(api: Client, stored: Callable[..., Any]) -> None:
    first = api.get(path_of(stored(title="first")["url"]))
    again = api.get(path_of(stored(title="again")["url"]))
    assert first["ETag"]
    assert first["ETag"] == again["ETag"]


def test_file_etag_differs_for_different_content(api: Client, stored: Callable[..., Any]) -> None:
    wide = api.get(path_of(stored(quadrants((64, 32)))["url"]))
    tall = api.get(path_of(stored(quadrants((32, 64)))["url"]))
    assert wide["ETag"] != tall["ETag"]


def test_file_if_none_match_with_its_etag_is_304(api: Client, stored: Callable[..., Any]) -> None:
    path = path_of(stored()["url"])
    etag = api.get(path)["ETag"]
    response = api.get(path, headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert body_of(response) == b""
    assert response["ETag"] == etag


def test_file_if_none_match_with_another_etag_is_200(api: Client, stored: Callable[..., Any]) -> None:
    path = path_of(stored()["url"])
    response = api.get(path, headers={"If-None-Match": '"' + "0" * 64 + '"'})
    assert response.status_code == 200
    assert body_of(response)


@pytest.mark.filesystem_only  # X-Content-Type-Options, as above
def test_file_head_has_the_headers_of_get_and_no_body(api: Client, stored: Callable[..., Any]) -> None:
    path = path_of(stored()["url"])
    get, head = api.get(path), api.head(path)
    assert head.status_code == 200
    assert body_of(head) == b""
    for header in (
        "Content-Type",
        "Content-Length",
        "ETag",
        "Cache-Control",
        "X-Content-Type-Options",
    ):
        assert head[header] == get[header], header


def test_file_unknown_name_is_404_problem(api: Client, stored: Callable[..., Any]) -> None:
    url = stored()["url"]
    digest = hashlib.sha256(b"never stored").hexdigest()
    missing = f"/media/images/{digest[:2]}/{digest[2:4]}/{digest}.png"
    assert missing != path_of(url)
    assert_problem(api.get(missing), 404)


def test_file_head_of_unknown_name_is_404(api: Client) -> None:
    digest = hashlib.sha256(b"never stored").hexdigest()
    response = api.head(f"/media/images/{digest[:2]}/{digest[2:4]}/{digest}.png")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(
    "path",
    [
        "/media/../config/settings.py",
        "/media/images/../../config/settings.py",
        "/media/images/%2e%2e/%2e%2e/config/settings.py",
        "/media/images/%2e%2e%2f%2e%2e%2fconfig%2fsettings.py",
        "/media//etc/passwd",
    ],
)
def test_file_path_traversal_is_404(api: Client, stored: Callable[..., Any], path: str) -> None:
    stored()
    response = api.get(path)
    assert_problem(response, 404)
    assert b"SECRET_KEY" not in response.content


@pytest.mark.filesystem_only  # the bucket answers other methods itself
def test_file_post_is_405(api: Client, stored: Callable[..., Any]) -> None:
    response = api.post(path_of(stored()["url"]))
    assert_problem(response, 405)
    assert "GET" in response["Allow"]


def test_identical_uploads_share_one_url_and_one_file(stored: Callable[..., Any], media_root: Path) -> None:
    first = stored(title="first")
    second = stored(title="second")
    assert first["id"] != second["id"]
    assert first["url"] == second["url"]
    assert len(stored_names()) == 1


def test_different_uploads_are_stored_as_different_files(
    stored: Callable[..., Any], media_root: Path
) -> None:
    wide = stored(quadrants((64, 32)))
    tall = stored(quadrants((32, 64)))
    assert wide["url"] != tall["url"]
    assert len(stored_names()) == 2
