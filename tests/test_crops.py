"""Crops that keep the subject: `gravity` (center, attention, focal) on `cover` crops, and an image's focal
point, which every crop of it keeps. Real pixels of served renditions and stored files, on the filesystem
and on S3; the crop box's arithmetic as properties."""

# ruff: noqa: F811 (the fixtures of tests/private.py, named as parameters)

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from images.pixels import attention
from images.pixels.decoding import TRANSPOSE_FOR_ORIENTATION
from images.pixels.processing import Fit, Gravity, point_in_crop, render, source_box, to_oriented, to_raw
from images.renditions import presets_from_setting
from tests.conftest import Client, assert_nothing_stored, stored_names
from tests.images import gif_animation
from tests.private import keys, upload_as  # noqa: F401 (fixtures)
from tests.problems import assert_problem

GREY = (128, 128, 128)
RED = (230, 20, 20)
THUMB = {"thumb": {"width": 200, "height": 200, "fit": "cover"}}


def subject_at(size: tuple[int, int], box: tuple[int, int, int, int], background: Any = GREY) -> Image.Image:
    """A plain picture with a detailed, saturated subject (a red and blue checkerboard) in `box`."""
    im = Image.new("RGB", size, background)
    left, top, right, bottom = box
    for x in range(left, right, 8):
        for y in range(top, bottom, 8):
            colour = (220, 30, 30) if (x // 8 + y // 8) % 2 else (30, 40, 220)
            im.paste(colour, (x, y, min(x + 8, right), min(y + 8, bottom)))
    return im


def marked(size: tuple[int, int], at: tuple[int, int], side: int = 12) -> Image.Image:
    """A plain picture with one red square centred at `at`: the focal point's pixel."""
    im = Image.new("RGB", size, GREY)
    x, y = at
    im.paste(RED, (x - side // 2, y - side // 2, x + side // 2, y + side // 2))
    return im


def saturated_share(im: Image.Image) -> float:
    """The share of `im`'s pixels that are strongly coloured (the subject's red, blue and their blends)."""
    rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
    return float(((rgb.max(axis=2) - rgb.min(axis=2)) > 60).mean())


def any_red(im: Image.Image) -> bool:
    rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
    return bool(((rgb[..., 0] > 180) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)).any())


def red_centre(im: Image.Image) -> tuple[float, float]:
    """The centre of the red pixels of `im`, in its pixels."""
    rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
    ys, xs = np.nonzero((rgb[..., 0] > 180) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90))
    assert len(xs), "no red pixel: the focal point was cut off"
    return (float(xs.mean()) + 0.5, float(ys.mean()) + 0.5)


def thumb_of(api: Client, served: Callable[[str], Image.Image], image: dict[str, Any]) -> Image.Image:
    return served(image["presets"]["thumb"])


# --- The crop box (pure) -------------------------------------------------------------------------


def test_orientation_maps_match_pillows_transposes() -> None:
    raw = Image.new("L", (40, 20), 0)
    raw.putpixel((5, 3), 255)
    for orientation, transpose in {1: None, **TRANSPOSE_FOR_ORIENTATION}.items():
        shown = raw.transpose(transpose) if transpose is not None else raw
        (x, y) = next(
            (i, j) for i in range(shown.width) for j in range(shown.height) if shown.getpixel((i, j))
        )
        point = ((x + 0.5) / shown.width, (y + 0.5) / shown.height)
        u, v = to_raw(point, orientation)
        assert math.isclose(u * 40, 5.5, abs_tol=1e-9) and math.isclose(v * 20, 3.5, abs_tol=1e-9)
        assert all(
            math.isclose(a, b, abs_tol=1e-12)
            for a, b in zip(to_oriented((u, v), orientation), point, strict=True)
        )


fractions = st.floats(0, 1, allow_nan=False)


@settings(max_examples=1_000, deadline=None)
@given(
    st.tuples(st.integers(1, 50_000), st.integers(1, 50_000)),
    st.floats(0.01, 1),
    st.booleans(),
    st.tuples(fractions, fractions),
    st.sampled_from([1, 2, 4, 8]),
)
def test_a_placed_crop_box_is_inside_the_right_size_and_holds_its_point(size, share, wide, point, scale):
    # A cover region spans one side whole and a share of the other, as `plan` makes it.
    region = (size[0] * share, float(size[1])) if wide else (float(size[0]), size[1] * share)
    decoded = (math.ceil(size[0] / scale), math.ceil(size[1] / scale))
    left, top, right, bottom = source_box(decoded, original=size, region=region, center=point)
    assert 0 <= left <= right <= decoded[0] and 0 <= top <= bottom <= decoded[1]
    want_w, want_h = (
        min(region[0] * decoded[0] / size[0], decoded[0]),
        min(region[1] * decoded[1] / size[1], decoded[1]),
    )
    assert math.isclose(right - left, want_w, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(bottom - top, want_h, rel_tol=1e-9, abs_tol=1e-6)
    px, py = point[0] * decoded[0], point[1] * decoded[1]
    assert left - 1e-6 <= px <= right + 1e-6 and top - 1e-6 <= py <= bottom + 1e-6
    # As near the centre as the image allows: centred on the point unless that would leave the image.
    cx, cy = (left + right) / 2, (top + bottom) / 2
    if want_w / 2 <= px <= decoded[0] - want_w / 2:
        assert math.isclose(cx, px, abs_tol=1e-6)
    if want_h / 2 <= py <= decoded[1] - want_h / 2:
        assert math.isclose(cy, py, abs_tol=1e-6)


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(st.integers(4, 300), st.integers(4, 300)),
    st.tuples(st.floats(0.5, 300), st.floats(0.5, 300)),
    st.integers(0, 2**32 - 1),
)
def test_the_salient_box_is_inside_and_of_the_crops_size(size, crop, seed):
    im = Image.effect_noise(size, 60 + seed % 60).convert("RGB")
    left, top, right, bottom = attention.salient_box(im, crop)
    assert 0 <= left <= right <= size[0] and 0 <= top <= bottom <= size[1]
    assert math.isclose(right - left, min(crop[0], size[0]), abs_tol=1e-6)
    assert math.isclose(bottom - top, min(crop[1], size[1]), abs_tol=1e-6)


@pytest.mark.parametrize("corner", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_the_salient_box_holds_a_subject_in_a_corner(corner):
    size, side = (1200, 600), 160
    x = 20 if corner[0] == 0 else size[0] - 20 - side
    y = 20 if corner[1] == 0 else size[1] - 20 - side
    im = subject_at(size, (x, y, x + side, y + side))
    left, top, right, bottom = attention.salient_box(im, (600, 600))
    assert left <= x and x + side <= right and top <= y and y + side <= bottom


def test_a_flat_picture_keeps_its_centre():
    left, _top, right, _bottom = attention.salient_box(Image.new("RGB", (800, 400), GREY), (400, 400))
    assert (left, right) == (200, 600)


def test_attention_sees_the_subject_through_a_saturated_background():
    # A plain, strongly coloured background is saturated everywhere: what counts is above that.
    im = subject_at((1200, 600), (980, 200, 1160, 380), background=(20, 160, 60))
    left, _top, right, _bottom = attention.salient_box(im, (600, 600))
    assert left <= 980 and right >= 1160


def test_a_focal_point_is_kept_in_a_rotated_jpeg():
    # Stored sideways with EXIF orientation 6: the point is given as the picture is shown (portrait).
    shown = marked((300, 600), (240, 450), side=24)
    raw = shown.transpose(Image.Transpose.ROTATE_90)  # what a camera held upright writes
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    raw.save(buffer, "JPEG", quality=95, exif=exif)
    out = render(io.BytesIO(buffer.getvalue()), width=100, height=100, fit=Fit.COVER, focal=(0.8, 0.75))
    im = Image.open(io.BytesIO(out.data))
    assert im.size == (100, 100)
    x, y = red_centre(im)
    # The crop is the full width (300 px shown as 100), centred on y = 450 of 600: at the centre.
    assert abs(x - 80) <= 3 and abs(y - 50) <= 3
    assert out.crop == pytest.approx((0.0, 0.5, 1.0, 1.0))
    assert point_in_crop((0.8, 0.75), out.crop) == pytest.approx((0.8, 0.5))


def test_an_animation_is_cut_where_its_first_frames_subject_is():
    frames = [subject_at((400, 200), (300 + 4 * i, 40, 380 + 4 * i, 160)) for i in range(3)]
    data = gif_animation(frames, duration=80)
    out = render(io.BytesIO(data), width=100, height=100, fit=Fit.COVER, gravity=Gravity.ATTENTION)
    animation = Image.open(io.BytesIO(out.data))
    assert animation.n_frames == 3
    assert out.crop == pytest.approx((0.5, 0.0, 1.0, 1.0))
    for index in range(3):
        animation.seek(index)
        assert saturated_share(animation.convert("RGB")) > 0.15


def test_gravity_is_only_for_crops_in_presets():
    with pytest.raises(ValueError, match="gravity is for fit cover"):
        presets_from_setting({"small": {"width": 480, "gravity": "attention"}})
    with pytest.raises(ValueError, match="gravity is one of"):
        presets_from_setting({"thumb": {"width": 2, "height": 2, "fit": "cover", "gravity": "face"}})
    thumb = presets_from_setting({"thumb": {"width": 2, "height": 2, "fit": "cover", "gravity": "attention"}})
    assert thumb["thumb"].gravity is Gravity.ATTENTION


# --- Attention, through the API ------------------------------------------------------------------

# The subject on the right of a wide picture: a centre crop (400..1200 of 1600) misses most of it.
WIDE = (1600, 800)
SUBJECT = (1300, 250, 1560, 510)


@pytest.mark.parametrize("how", ["default", "preset"])
def test_a_thumb_with_attention_keeps_a_subject_near_the_edge(api, posted, served, settings, how):
    if how == "default":
        settings.IMAGE_DEFAULT_GRAVITY = "attention"
        settings.IMAGE_PRESETS = THUMB
    else:
        settings.IMAGE_PRESETS = {"thumb": {**THUMB["thumb"], "gravity": "attention"}}
    image = posted(subject_at(WIDE, SUBJECT))
    thumb = thumb_of(api, served, image)
    assert thumb.size == (200, 200)
    # The subject is 260 of the crop's 800 px: about 10 % of the thumbnail's pixels, all of it.
    assert saturated_share(thumb) > 0.09


def test_a_centre_thumb_cuts_the_same_subject_off(api, posted, served, settings):
    settings.IMAGE_PRESETS = THUMB
    settings.IMAGE_DEFAULT_GRAVITY = "center"
    thumb = thumb_of(api, served, posted(subject_at(WIDE, SUBJECT)))
    assert saturated_share(thumb) < 0.01


def test_an_upload_cropped_with_attention_keeps_the_subject(api, posted, served):
    image = posted(subject_at(WIDE, SUBJECT), width=200, height=200, fit="cover", gravity="attention")
    stored = served(image["url"])
    assert stored.size == (200, 200)
    assert saturated_share(stored) > 0.09
    # And `center` on upload cuts it off, whatever the default.
    centred = served(
        posted(subject_at(WIDE, SUBJECT), width=200, height=200, fit="cover", gravity="center")["url"]
    )
    assert saturated_share(centred) < 0.01


def test_gravity_on_upload_is_one_of_three(api, upload):
    response = upload(subject_at((64, 32), (40, 8, 60, 24)), width=16, height=16, fit="cover", gravity="face")
    assert_problem(response, 400, field="gravity")
    assert_nothing_stored()


# --- The focal point -----------------------------------------------------------------------------


def test_an_uploaded_focal_point_is_answered_and_kept_near_the_thumbs_centre(api, posted, served, settings):
    settings.IMAGE_PRESETS = THUMB
    image = posted(marked((800, 400), (240, 100)), focal='{"x": 0.3, "y": 0.25}')
    assert image["focal"] == {"x": 0.3, "y": 0.25}
    assert image["presets"]["thumb"].endswith("?preset=thumb&focal=0.3,0.25")
    thumb = thumb_of(api, served, image)
    # The crop (400x400 of 800x400) is centred on x = 240: the point is in the middle of the thumbnail.
    x, y = red_centre(thumb)
    assert abs(x - 100) <= 3 and abs(y - 50) <= 3
    # The same image with another focal point: the owner's choice wins over attention too.
    settings.IMAGE_DEFAULT_GRAVITY = "attention"
    other = posted(subject_at((800, 400), (600, 100, 780, 300)), focal='{"x": 0.05, "y": 0.5}')
    assert saturated_share(thumb_of(api, served, other)) < 0.01


def test_a_focal_point_near_the_edge_is_kept_as_near_the_centre_as_the_crop_allows(
    api, posted, served, settings
):
    settings.IMAGE_PRESETS = THUMB
    image = posted(marked((800, 400), (780, 380), side=16), focal='{"x": 0.975, "y": 0.95}')
    x, y = red_centre(thumb_of(api, served, image))
    # The crop is the right half (400..800): the point lands at 380/400 of it.
    assert abs(x - 190) <= 3 and abs(y - 190) <= 3


def test_an_upload_cropped_to_cover_keeps_its_focal_point_and_stores_where_it_landed(api, posted, served):
    image = posted(
        marked((800, 400), (700, 200), side=20),
        width=100,
        height=100,
        fit="cover",
        focal='{"x": 0.875, "y": 0.5}',
    )
    stored = served(image["url"])
    x, _y = red_centre(stored)
    # The crop is 400..800: the point (700) lands at 3/4 of it.
    assert abs(x - 75) <= 2
    assert image["focal"] == {"x": 0.75, "y": 0.5}


@pytest.mark.parametrize(
    "value",
    [
        '{"x": 0.5}',
        '{"y": 0.5}',
        '{"x": 1.5, "y": 0.5}',
        '{"x": -0.1, "y": 0.5}',
        '{"x": NaN, "y": 0.5}',
        '{"x": 0.5, "y": Infinity}',
        '{"x": "0.5", "y": 0.5}',
        '{"x": true, "y": 0.5}',
        '{"x": 0.5, "y": 0.5, "z": 0}',
        "[0.5, 0.5]",
        "0.5,0.5",
        "half",
        "",
    ],
)
def test_an_upload_with_a_bad_focal_point_is_a_400_and_stores_nothing(api, upload, value):
    response = upload(marked((64, 32), (10, 10)), focal=value)
    assert_problem(response, 400, field="focal")
    assert_nothing_stored()


def patch(api: Client, image_id: int, body: Any, **headers: str) -> Any:
    raw = body if isinstance(body, str) else json.dumps(body)
    return api.patch(f"/images/{image_id}", raw, content_type="application/json", headers=headers)


def test_a_new_focal_point_is_a_new_crop_under_a_new_url_and_the_old_one_is_gone(
    api, posted, served, settings
):
    settings.IMAGE_PRESETS = THUMB
    image = posted(marked((800, 400), (100, 200)), focal='{"x": 0.125, "y": 0.5}')
    before = api.get(f"/images/{image['id']}")
    old_url = image["presets"]["thumb"]
    old_thumb = thumb_of(api, served, image)
    old_etag = old_thumb.served_headers["ETag"]
    old_files = {name for name in stored_names() if "/thumb." in name}
    assert len(old_files) == 1

    response = patch(api, image["id"], {"focal": {"x": 0.9, "y": 0.5}}, **{"If-Match": before["ETag"]})
    assert response.status_code == 200, response.content
    changed = response.json()
    assert changed["focal"] == {"x": 0.9, "y": 0.5}
    assert response["ETag"] != before["ETag"]  # the version was raised
    assert changed["presets"]["thumb"] != old_url
    # The crop made around the old point is deleted, not kept to be served.
    assert not old_files & set(stored_names())
    new_thumb = thumb_of(api, served, changed)
    assert new_thumb.served_headers["ETag"] != old_etag
    assert new_thumb.served_bytes != old_thumb.served_bytes
    # The old URL (its `focal` is no longer the image's) answers the current crop, never the old file.
    assert served(old_url).served_bytes == new_thumb.served_bytes
    # The red square at x = 100 is outside the new crop (400..800).
    assert not any_red(new_thumb)
    # A scaled rendition is the same whatever the point: it keeps its name.
    assert "focal" not in changed["srcset"]

    removed = patch(api, image["id"], {"focal": None})
    assert removed.status_code == 200
    assert removed.json()["focal"] is None
    assert removed.json()["presets"]["thumb"].endswith("?preset=thumb")


def test_images_sharing_a_file_keep_their_own_focal_points(api, posted, served, settings):
    settings.IMAGE_PRESETS = THUMB
    picture = marked((800, 400), (100, 200))
    left = posted(picture, focal='{"x": 0.125, "y": 0.5}')
    right = posted(picture, focal='{"x": 0.9, "y": 0.5}')
    assert left["url"] == right["url"]  # one stored file
    assert any_red(thumb_of(api, served, left))
    assert not any_red(thumb_of(api, served, right))
    # Moving one's point leaves the other's crop where it is.
    kept = {name for name in stored_names() if "/thumb." in name}
    assert patch(api, right["id"], {"focal": {"x": 0.2, "y": 0.5}}).status_code == 200
    assert len(kept & set(stored_names())) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"focal": {"x": 1.5, "y": 0.5}},
        {"focal": {"x": -0.01, "y": 0.5}},
        {"focal": {"x": "0.5", "y": 0.5}},
        {"focal": {"x": True, "y": 0.5}},
        {"focal": {"x": 0.5}},
        {"focal": {"x": 0.5, "y": 0.5, "z": 1}},
        {"focal": [0.5, 0.5]},
        {"focal": "0.5,0.5"},
        '{"focal": {"x": NaN, "y": 0.5}}',
        '{"focal": {"x": 1e400, "y": 0.5}}',
        '{"focal": {"x": ' + "9" * 400 + ', "y": 0.5}}',
        '{"focal": {"x": Infinity, "y": 0.5}}',
    ],
)
def test_a_bad_focal_point_is_a_400_and_changes_nothing(api, posted, body):
    image = posted(marked((64, 32), (10, 10)))
    before = api.get(f"/images/{image['id']}")
    response = patch(api, image["id"], body)
    assert_problem(response, 400)
    # A field error on `focal`, or (NaN, Infinity: no JSON) the body's.
    fields = [error["field"] for error in response.json().get("errors", [])]
    assert all(field.startswith("focal") for field in fields)
    after = api.get(f"/images/{image['id']}")
    assert after["ETag"] == before["ETag"] and after.json()["focal"] is None


@pytest.mark.parametrize("value", ["0.5,0.5", "0,1", "1,0.25", ".5,0.1234"])
def test_a_rendition_takes_the_focal_tag_of_a_preset_url(api, posted, settings, value):
    settings.IMAGE_PRESETS = THUMB
    image = posted(marked((64, 32), (10, 10)))
    response = api.get(f"/images/{image['id']}/file?preset=thumb&focal={value}")
    assert response.status_code == 200


@pytest.mark.parametrize("value", ["0.5", "2,0.5", "0.5,0.5,0.5", "nan,0.5", "a,b", "0.123456,0.5"])
def test_a_rendition_refuses_a_bad_focal_tag(api, posted, settings, value):
    settings.IMAGE_PRESETS = THUMB
    image = posted(marked((64, 32), (10, 10)))
    assert_problem(api.get(f"/images/{image['id']}/file?preset=thumb&focal={value}"), 400, field="focal")


def test_a_private_images_signed_thumb_url_carries_the_focal_point_and_answers(
    api, upload_as, keys, served, settings
):
    settings.IMAGE_PRESETS = THUMB
    response = upload_as(keys["owner"], size=(80, 40), visibility="private", focal='{"x": 0.9, "y": 0.5}')
    assert response.status_code == 201, response.content
    image = response.json()
    thumb_url = image["presets"]["thumb"]
    assert "sig=" in thumb_url and thumb_url.endswith("&focal=0.9,0.5")
    # Signed without the point (it does not choose the answer): the URL answers, without a key.
    assert served(thumb_url).size == (40, 40)
    # The point changed: the object's signed URL changes with it.
    changed = patch(
        api, image["id"], {"focal": {"x": 0.1, "y": 0.5}}, Authorization=f"Bearer {keys['owner']}"
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["presets"]["thumb"].endswith("&focal=0.1,0.5")
