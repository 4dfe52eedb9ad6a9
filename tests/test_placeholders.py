"""Placeholders and colour (issue 17): every image object has a ThumbHash and a dominant colour, computed at
upload from a small version of the stored pixels and answered by list and detail with no extra query.

The placeholders are decoded with the `thumbhash` package itself (the same reference implementation the
gallery's npm package is), and their pixels checked: halves, aspect ratio, transparency.
"""

from __future__ import annotations

import colorsys
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from PIL import Image as PILImage

from images.models import Image
from images.pixels import placeholders, processing
from tests.images import BLUE, RED, close, decoded, encode, halves, meadow, rgb_of

COLOR = re.compile(r"^#[0-9a-f]{6}$")


def hue_degrees(color: str) -> float:
    r, g, b = (v / 255 for v in rgb_of(color))
    return colorsys.rgb_to_hsv(r, g, b)[0] * 360


# --- the object ---------------------------------------------------------------------------------------


def test_an_upload_answers_a_thumbhash_placeholder_and_a_colour(
    posted: Callable[..., dict[str, Any]],
) -> None:
    body = posted(meadow(), fmt="JPEG", filename="meadow.jpg")
    assert 25 <= len(body["placeholder"]) <= 35, body["placeholder"]
    assert COLOR.match(body["color"]), body["color"]
    row = Image.objects.get(pk=body["id"])
    assert (row.placeholder, row.color) == (body["placeholder"], body["color"])


def test_list_and_detail_answer_the_stored_placeholder_and_colour(
    api: Client, posted: Callable[..., dict[str, Any]], django_assert_num_queries: Any
) -> None:
    bodies = [posted(halves((300, 100), RED, BLUE)), posted(meadow(), fmt="JPEG")]
    with django_assert_num_queries(2):  # the count and the page, as without them
        listed = api.get("/images").json()["results"]
    with django_assert_num_queries(1):
        detail = api.get(f"/images/{bodies[0]['id']}").json()
    by_id = {item["id"]: item for item in listed}
    for body in bodies:
        assert (by_id[body["id"]]["placeholder"], by_id[body["id"]]["color"]) == (
            body["placeholder"],
            body["color"],
        )
    assert (detail["placeholder"], detail["color"]) == (bodies[0]["placeholder"], bodies[0]["color"])


def test_an_image_without_them_answers_null(api: Client, posted: Callable[..., dict[str, Any]]) -> None:
    body = posted(halves((40, 20), RED, BLUE))
    Image.objects.filter(pk=body["id"]).update(placeholder=None, color=None)
    detail = api.get(f"/images/{body['id']}").json()
    assert detail["placeholder"] is None and detail["color"] is None


def test_the_schema_documents_both_as_nullable_strings(api: Client) -> None:
    schema = api.get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"}).json()
    fields = schema["components"]["schemas"]["Image"]["properties"]
    assert fields["placeholder"]["type"] == "string" and fields["placeholder"]["nullable"] is True
    assert fields["color"]["pattern"] == "^#[0-9a-f]{6}$" and fields["color"]["nullable"] is True


# --- real pixels --------------------------------------------------------------------------------------


def test_a_half_red_half_blue_placeholder_decodes_to_red_and_blue_halves_of_its_aspect(
    posted: Callable[..., dict[str, Any]],
) -> None:
    body = posted(halves((400, 200), RED, BLUE))
    picture = decoded(body["placeholder"])
    assert picture.width / picture.height == pytest.approx(2, rel=0.15)
    w, h = picture.size
    for y in (h // 4, h // 2, 3 * h // 4):
        assert close(picture.getpixel((w // 8, y))[:3], RED, 60), picture.getpixel((w // 8, y))
        assert close(picture.getpixel((7 * w // 8, y))[:3], BLUE, 60), picture.getpixel((7 * w // 8, y))
    assert body["color"] in ("#ff0000", "#0000ff")


def test_a_portrait_placeholder_is_portrait(posted: Callable[..., dict[str, Any]]) -> None:
    picture = decoded(posted(halves((150, 450), RED, BLUE))["placeholder"])
    assert picture.height / picture.width == pytest.approx(3, rel=0.25)


def test_transparency_is_kept_in_the_placeholder(posted: Callable[..., dict[str, Any]]) -> None:
    # An opaque orange square in the middle of a transparent canvas (a sticker).
    im = PILImage.new("RGBA", (300, 300), (0, 0, 0, 0))
    im.paste((255, 140, 0, 255), (100, 100, 200, 200))
    body = posted(im)
    picture = decoded(body["placeholder"])
    w, h = picture.size
    assert picture.getpixel((0, 0))[3] < 60
    assert picture.getpixel((w - 1, h - 1))[3] < 60
    centre = picture.getpixel((w // 2, h // 2))
    assert centre[3] > 160 and close(centre[:3], (255, 140, 0), 60), centre
    # The colour is the sticker's, not the black of the transparent pixels around it.
    assert close(rgb_of(body["color"]), (255, 140, 0), 30), body["color"]


def test_transparency_stored_as_jpeg_is_flattened_onto_white_in_the_placeholder(
    posted: Callable[..., dict[str, Any]],
) -> None:
    im = PILImage.new("RGBA", (300, 300), (0, 0, 0, 0))
    im.paste((0, 0, 255, 255), (100, 100, 200, 200))
    picture = decoded(posted(im, format="jpeg")["placeholder"])
    assert picture.getpixel((0, 0))[3] == 255
    assert close(picture.getpixel((0, 0))[:3], (255, 255, 255), 60), picture.getpixel((0, 0))


def test_the_colour_of_a_mostly_green_photo_is_green(posted: Callable[..., dict[str, Any]]) -> None:
    body = posted(meadow(), fmt="JPEG", filename="meadow.jpg", width=800)
    r, g, b = rgb_of(body["color"])
    assert 80 <= hue_degrees(body["color"]) <= 150, body["color"]
    assert g > r + 40 and g > b + 40, body["color"]


def test_the_colour_is_a_palette_colour_not_the_average(posted: Callable[..., dict[str, Any]]) -> None:
    # Two thirds red, one third blue: the average is a purple that is nowhere in the picture.
    im = PILImage.new("RGB", (300, 100), RED)
    im.paste(BLUE, (200, 0, 300, 100))
    assert close(rgb_of(posted(im)["color"]), RED, 10)


def test_an_animation_is_described_by_its_first_frame(posted: Callable[..., dict[str, Any]]) -> None:
    frames = [halves((200, 100), RED, RED), halves((200, 100), BLUE, BLUE)]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    body = posted(gif, filename="animated.gif")
    assert body["format"] == "gif"
    assert close(rgb_of(body["color"]), RED, 10), body["color"]
    picture = decoded(body["placeholder"])
    assert close(picture.getpixel((picture.width // 2, picture.height // 2))[:3], RED, 40)
    assert picture.width / picture.height == pytest.approx(2, rel=0.15)


def test_an_animated_webp_kept_animated_is_described_by_its_first_frame(
    posted: Callable[..., dict[str, Any]],
) -> None:
    frames = [halves((120, 120), BLUE, BLUE), halves((120, 120), RED, RED)]
    webp = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    body = posted(webp, filename="animated.webp")
    assert close(rgb_of(body["color"]), BLUE, 10), body["color"]


def test_a_16_bit_image_is_described_by_its_scaled_pixels_not_clipped_white(
    posted: Callable[..., dict[str, Any]],
) -> None:
    # 16-bit grey at 40% (26214 of 65535): a naive conversion clips it to white.
    im = PILImage.new("I;16", (200, 100), 26214)
    body = posted(im)
    r, g, b = rgb_of(body["color"])
    assert abs(r - 102) <= 3 and r == g == b, body["color"]
    centre = decoded(body["placeholder"]).getpixel((8, 4))
    assert close(centre[:3], (102, 102, 102), 12), centre


# --- the pure functions ---------------------------------------------------------------------------------


def test_the_small_version_fits_64_by_64_and_keeps_the_aspect() -> None:
    assert placeholders.small_version(PILImage.new("RGB", (4000, 1000))).size == (64, 16)
    assert placeholders.small_version(PILImage.new("RGB", (30, 900))).size == (2, 64)
    assert placeholders.small_version(PILImage.new("L", (40, 20))).size == (40, 20)  # never enlarged
    assert placeholders.small_version(PILImage.new("LA", (40, 20))).mode == "RGBA"


def test_render_with_preview_hands_back_a_small_version_of_the_stored_pixels() -> None:
    import io

    rendered = processing.render(io.BytesIO(encode(halves((800, 400), RED, BLUE), "PNG")), preview=True)
    assert rendered.preview is not None and rendered.preview.size == (64, 32)
    assert processing.render(io.BytesIO(encode(halves((80, 40), RED, BLUE), "PNG"))).preview is None


def test_describe_refuses_more_than_thumbhash_encodes() -> None:
    with pytest.raises(ValueError, match="over 100x100"):
        placeholders.describe(PILImage.new("RGB", (101, 10)))


def test_a_fully_transparent_image_still_has_a_placeholder_and_a_colour() -> None:
    described = placeholders.describe(PILImage.new("RGBA", (20, 20), (0, 0, 0, 0)))
    assert COLOR.match(described.color)
    assert decoded(described.thumbhash).getpixel((0, 0))[3] == 0
