"""Fixtures and helpers for private images' tests: API keys (owner, other, admin) and uploads as a key."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.test.client import MULTIPART_CONTENT

from tests.conftest import Client
from tests.images import encode, quadrants


def make_key(name: str, *, admin: bool = False) -> str:
    out = io.StringIO()
    call_command("apikey", "create", name, *(["--admin"] if admin else []), stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


@pytest.fixture
def keys(db: None, settings: Any) -> dict[str, str]:
    settings.IMAGERY_AUTH = "write"
    return {"owner": make_key("owner"), "other": make_key("other"), "admin": make_key("admin", admin=True)}


def auth(key: str | None) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}


Upload = Callable[..., Any]


@pytest.fixture
def upload_as(api: Client) -> Upload:
    """POST /images as the key given (None: none), with form fields; the response."""

    def _upload(key: str | None, *, size: tuple[int, int] = (40, 20), **fields: Any) -> Any:
        file = io.BytesIO(encode(quadrants(size), "PNG"))
        file.name = "picture.png"
        data = {"image": file, **fields}
        return api.post("/images", data, content_type=MULTIPART_CONTENT, **auth(key))

    return _upload


@pytest.fixture
def private(upload_as: Upload, keys: dict[str, str]) -> dict[str, Any]:
    """A private image the `owner` key uploaded: the object it answered."""
    response = upload_as(keys["owner"], visibility="private")
    assert response.status_code == 201, response.content
    return response.json()


def who(keys: dict[str, str], name: str | None) -> dict[str, str]:
    return auth(keys[name] if name else None)
