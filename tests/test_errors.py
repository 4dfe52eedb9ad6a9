"""Every layer answers errors in one shape: RFC 9457 problem+json whose `status` is the HTTP status."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.test.client import MULTIPART_CONTENT

import images.apis
from images.models import Image
from tests.images import encode, quadrants
from tests.problems import assert_problem


@pytest.mark.parametrize("path", ["/nowhere", "/images/abc", "/images/1/extra", "/api/"])
def test_unknown_url_is_404_problem(api: Client, path: str) -> None:
    assert_problem(api.get(path), 404)


def test_unknown_image_is_404_problem(api: Client) -> None:
    assert_problem(api.get("/images/1"), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "/images/1"),
        ("post", "/images/1"),
        ("put", "/images"),
        ("delete", "/images"),
        ("patch", "/images"),
    ],
)
def test_unsupported_method_is_405_problem(api: Client, method: str, path: str) -> None:
    response = getattr(api, method)(path)
    assert_problem(response, 405)
    assert method.upper() not in response["Allow"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probe_with_post_is_405_problem(api: Client, path: str) -> None:
    assert_problem(api.post(path), 405)


def test_upload_as_json_is_415_problem(api: Client) -> None:
    response = api.post("/images", {"title": "x"}, content_type="application/json")
    assert_problem(response, 415)


def test_upload_with_invalid_field_is_400_problem_naming_the_field(
    upload: Callable[..., Any],
) -> None:
    body = assert_problem(upload(quadrants((8, 4)), width=0), 400)
    assert [e["field"] for e in body["errors"]] == ["width"]


def test_upload_without_image_is_400_problem_naming_the_field(api: Client) -> None:
    response = api.post("/images", {"title": "no file"}, content_type=MULTIPART_CONTENT)
    body = assert_problem(response, 400)
    assert [e["field"] for e in body["errors"]] == ["image"]


def test_malformed_multipart_is_400_problem(api: Client) -> None:
    response = api.post("/images", b"--x\r\nbroken", content_type="multipart/form-data")
    assert_problem(response, 400)


def test_disallowed_host_is_400_problem(api: Client) -> None:
    assert_problem(api.get("/images", headers={"Host": "evil.example"}), 400)


def test_unexpected_exception_is_500_problem(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(**kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(images.apis, "image_get_visible", explode)
    response = Client(raise_request_exception=False).get("/images/1")
    body = assert_problem(response, 500)
    assert "a bug" not in body["detail"]


def test_a_bug_while_decoding_is_a_500_in_the_log_not_the_users_fault(
    db: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Only what decoders raise on broken data means "invalid image"; a TypeError is ours.
    def bug(self: object, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a bug of ours")

    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", bug)
    image = io.BytesIO(encode(quadrants(), "PNG"))
    image.name = "fine.png"
    response = Client(raise_request_exception=False).post("/images", {"image": image})
    body = assert_problem(response, 500)
    assert "a bug of ours" not in body["detail"]
    assert any("a bug of ours" in str(record.exc_info) for record in caplog.records if record.exc_info)
    assert not Image.objects.exists()
