"""What the browser tests share: pictures made in memory, and the few steps every test takes on the page."""

from __future__ import annotations

import io
import os
from typing import Any

import pytest
from django.urls import Resolver404, resolve
from PIL import Image as PILImage
from PIL import ImageDraw
from playwright.sync_api import Locator, Page, expect

# --- Pictures ----------------------------------------------------------------------------------------


def encode(im: PILImage.Image, fmt: str = "PNG", **params: Any) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **params)
    return buffer.getvalue()


def picture(colour: tuple[int, int, int] = (70, 130, 180), size: tuple[int, int] = (64, 48)) -> bytes:
    """A small PNG of one colour."""
    return encode(PILImage.new("RGB", size, colour))


def noise(size: tuple[int, int]) -> bytes:
    """A PNG that does not compress: its byte size follows its pixel count (about 3 bytes a pixel)."""
    return encode(PILImage.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)))


def scene(sky: tuple[str, str], sun: str, land: str, size: tuple[int, int] = (480, 360)) -> bytes:
    """A little landscape (sky gradient, sun, hills) as a JPEG: something worth looking at in a screenshot."""
    w, h = size
    top, bottom = PILImage.new("RGB", size, sky[0]), PILImage.new("RGB", size, sky[1])
    im = PILImage.composite(bottom, top, PILImage.linear_gradient("L").resize(size))
    draw = ImageDraw.Draw(im)
    draw.ellipse((w * 0.62, h * 0.18, w * 0.62 + h * 0.22, h * 0.40), fill=sun)
    draw.polygon(
        [
            (0, h * 0.72),
            (w * 0.3, h * 0.5),
            (w * 0.55, h * 0.68),
            (w * 0.8, h * 0.55),
            (w, h * 0.7),
            (w, h),
            (0, h),
        ],
        fill=land,
    )
    return encode(im, "JPEG", quality=88)


# --- Driving the page ----------------------------------------------------------------------------------


def api_upload(
    page: Page, content: bytes, *, title: str, filename: str = "picture.png", **fields: Any
) -> dict:
    """Create an image through the API itself (what another client would do), not through the form."""
    response = page.request.post(
        "/images",
        multipart={
            "image": {"name": filename, "mimeType": "application/octet-stream", "buffer": content},
            "title": title,
            **{key: str(value) for key, value in fields.items()},
        },
    )
    assert response.status == 201, response.text()
    return response.json()


def open_gallery(page: Page, query: str = "") -> None:
    """Open the page and wait until the grid has been filled from the API."""
    page.goto(f"/{query}")
    expect(page.locator("#grid")).not_to_have_attribute("aria-busy", "true")


def choose_file(page: Page, content: bytes, filename: str = "picture.png", mime: str = "image/png") -> None:
    page.get_by_label("Image file").set_input_files(
        files=[{"name": filename, "mimeType": mime, "buffer": content}]
    )


def card_titles(page: Page) -> Locator:
    return page.locator("#grid .card-title")


# --- What the server offers ------------------------------------------------------------------------------


def has_route(path: str) -> bool:
    """Whether the app answers `path` with a view of its own (not the media files' catch-all)."""
    try:
        match = resolve(path)
    except Resolver404:
        return False
    return match.url_name != "media"


def require_upload_urls() -> None:
    """Skip unless the server mints one-time upload URLs (`POST /uploads`, the uploads-urls branch)."""
    if not has_route("/uploads"):
        pytest.skip("this server has no POST /uploads yet (one-time upload URLs, issue 24)")


def require_field(image: dict, field: str, what: str) -> None:
    """Skip unless the image object carries `field`: the server does not do `what` yet."""
    if field not in image:
        pytest.skip(f"image objects have no `{field}` yet: this server does not do {what} (issue 26)")
