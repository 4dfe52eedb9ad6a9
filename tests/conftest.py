"""Shared fixtures: every test gets its own media folder and a client that talks HTTP to the app."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.test.client import MULTIPART_CONTENT
from PIL import Image as PILImage

from tests.images import encode


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def api(db: None) -> Client:
    return Client()


def stored_files(media_root: Path) -> list[Path]:
    return sorted(p for p in media_root.rglob("*") if p.is_file())


@pytest.fixture
def upload(api: Client) -> Callable[..., Any]:
    """POST /images with a file (bytes, or a Pillow image encoded as `fmt`) and form fields."""

    def _upload(
        content: bytes | PILImage.Image | None = None,
        *,
        fmt: str = "PNG",
        filename: str = "picture.png",
        path: str = "/images",
        **fields: Any,
    ) -> Any:
        data = {k: v for k, v in fields.items() if v is not None}
        if content is not None:
            raw = content if isinstance(content, bytes) else encode(content, fmt)
            file = io.BytesIO(raw)
            file.name = filename
            data["image"] = file
        return api.post(path, data, content_type=MULTIPART_CONTENT)

    return _upload


@pytest.fixture
def served(api: Client) -> Callable[[str], PILImage.Image]:
    """Fetch a stored file by the URL the API answered, and open it with Pillow."""

    def _served(url: str) -> PILImage.Image:
        response = api.get(url.removeprefix("http://testserver"))
        assert response.status_code == 200, response
        body = b"".join(response.streaming_content)
        image = PILImage.open(io.BytesIO(body))
        image.load()
        image.served_bytes = body  # type: ignore[attr-defined]
        image.served_headers = response.headers  # type: ignore[attr-defined]
        return image

    return _served
