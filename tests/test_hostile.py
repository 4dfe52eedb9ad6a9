"""A corpus of hostile uploads, generated here: each gets the right 4xx (or is defused) and leaves nothing.

The corpus is the first thing scripts throw at an open upload endpoint: empty and random files, broken
images, decompression bombs, animations built to burn CPU, files that are really SVG, HTML or a polyglot,
names that try to reach the filesystem, and photos that leak where they were taken.
"""

from __future__ import annotations

import random
from pathlib import PurePosixPath

import pytest
from PIL import Image as PILImage

from tests.conftest import assert_nothing_stored, stored_names
from tests.images import (
    RED,
    close,
    corners,
    encode,
    gif_animation,
    gif_with_frames,
    gif_with_logical_screen,
    png_with_declared_size,
    quadrants,
)
from tests.problems import assert_problem


def many_frames_gif(frames: int, side: int = 4) -> bytes:
    colours = [(255, 0, 0) if i % 2 else (0, 0, 255) for i in range(frames)]
    return gif_animation([PILImage.new("RGB", (side, side), colour) for colour in colours], duration=10)


def truncated_jpeg() -> bytes:
    raw = encode(quadrants((600, 400)), "JPEG")
    return raw[: len(raw) * 2 // 3]


# (name, content, filename, status, code)
REFUSED = [
    ("zero bytes", b"", "empty.jpg", 400, "empty"),
    ("random bytes", random.Random(7).randbytes(4096), "noise.jpg", 415, "unsupported_format"),
    ("truncated JPEG", truncated_jpeg(), "cut.jpg", 400, "invalid_image"),
    ("PNG bomb", png_with_declared_size(200_000, 200_000), "bomb.png", 413, "image_too_large"),
    ("GIF screen bomb", gif_with_logical_screen(65_535, 65_535), "bomb.gif", 413, "image_too_large"),
    ("1000-frame GIF", many_frames_gif(1000), "frames.gif", 413, "image_too_large"),
    # Frames may reach past the logical screen, and the decoder grows the canvas to hold them.
    (
        "GIF frame far past its screen",
        gif_with_frames((16, 16), [(60_000, 60_000, 5_000, 5_000)]),
        "lie.gif",
        413,
        "image_too_large",
    ),
    (
        "GIF frames larger than their screen",
        gif_with_frames((16, 16), [(0, 0, 2_000, 2_000)] * 30),
        "lie.gif",
        413,
        "image_too_large",
    ),
    (
        "SVG with script",
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>',
        "cat.svg",
        415,
        "unsupported_format",
    ),
    ("HTML named .jpg", b"<html><body><script>alert(1)</script></body></html>", "a.jpg", 415, None),
    ("PDF named .png", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<</Type/Catalog>>endobj", "a.png", 415, None),
    ("EPS (Ghostscript)", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 1 1\nshowpage", "a.eps", 415, None),
    ("JPEG magic then HTML", b"\xff\xd8\xff<html><script>alert(1)</script>", "a.jpg", 400, None),
]


@pytest.mark.parametrize(
    ("content", "filename", "status", "code"),
    [pytest.param(*case[1:], id=case[0]) for case in REFUSED],
)
def test_hostile_upload_is_refused_and_leaves_nothing(upload, media_root, content, filename, status, code):
    assert_problem(upload(content, filename=filename), status, field="image", code=code)
    assert_nothing_stored()


def refuse_to_decode(*args: object, **kwargs: object) -> None:
    raise AssertionError("the request reached the decoder")


# A few bytes asking for a large output: (name, content, filename, fields, the limit the answer names).
OVER_THE_OUTPUT_BUDGET = [
    (
        "5 KB animation asked at 4000x4000",
        many_frames_gif(120, side=16),
        "tiny.gif",
        {"width": 4000, "height": 4000, "fit": "fill", "format": "webp"},
        "IMAGE_MAX_ANIMATION_PIXELS",
    ),
    (
        "animation enlarged within the animation budget",
        many_frames_gif(10, side=16),
        "tiny.gif",
        {"width": 2000, "height": 2000, "fit": "fill"},
        "IMAGE_MAX_ENLARGED_PIXELS",
    ),
    (
        "77-byte PNG asked at 10000x10000",
        encode(PILImage.new("RGB", (1, 1)), "PNG"),
        "dot.png",
        {"width": 10_000, "height": 10_000, "fit": "fill"},
        "IMAGE_MAX_ENLARGED_PIXELS",
    ),
    (
        "photo asked as a huge AVIF",
        encode(PILImage.new("RGB", (5_000, 4_000)), "JPEG"),
        "photo.jpg",
        {"format": "avif"},
        "IMAGE_MAX_AVIF_PIXELS",
    ),
]


@pytest.mark.parametrize(
    ("content", "filename", "fields", "limit"),
    [pytest.param(*case[1:], id=case[0]) for case in OVER_THE_OUTPUT_BUDGET],
)
def test_an_output_over_budget_is_refused_before_decoding(
    upload, media_root, monkeypatch, content, filename, fields, limit
):
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", refuse_to_decode)
    body = assert_problem(
        upload(content, filename=filename, **fields), 413, field="image", code="image_too_large"
    )
    assert limit in body["detail"]
    assert_nothing_stored()


def test_enlarging_within_the_budget_is_done(upload, served):
    body = upload(quadrants((40, 20)), width=4000, height=2000).json()
    assert (body["width"], body["height"]) == (4000, 2000)
    assert served(body["url"]).size == (4000, 2000)


# --- Real-world shapes that reached paths no generated test did --------------------------------------


# Sizes whose DCT-scaled decode (1/2, 1/8) put the full source box a hair past the image in floating
# point; the 99.6-megapixel photo of the report (9643x10328 -> 200x200) is one of this class.
@pytest.mark.parametrize(("size", "width"), [((2021, 1162), 700), ((752, 2521), 60), ((2463, 1921), 200)])
def test_a_jpeg_at_an_odd_size_and_draft_scale_is_resized(upload, served, size, width):
    body = upload(quadrants(size), fmt="JPEG", filename="odd.jpg", width=width).json()
    assert body["width"] == width
    assert all(
        close(a, b) for a, b in zip(corners(served(body["url"])), corners(quadrants(size)), strict=True)
    )


def specks(count: int, side: int = 400) -> list[PILImage.Image]:
    """Red frames, each with one pixel a shade off: different frames that a downscale makes the same."""
    frames = []
    for index in range(count):
        frame = PILImage.new("RGB", (side, side), RED)
        frame.putpixel((index, 0), (250, 0, 0))
        frames.append(frame)
    return frames


def test_an_animation_whose_frames_come_out_the_same_is_stored_as_a_still(upload, served):
    raw = gif_animation(specks(3), duration=[100, 200, 300], disposal=[1, 2, 1])
    stored = served(upload(raw, filename="same.gif", width=4).json()["url"])
    assert (stored.format, getattr(stored, "n_frames", 1), stored.size) == ("GIF", 1, (4, 4))
    assert close(stored.convert("RGB").getpixel((2, 2)), RED)


def test_frames_that_come_out_the_same_are_merged(upload, served):
    blue = PILImage.new("RGB", (400, 400), (0, 0, 255))
    raw = gif_animation([*specks(2), blue], duration=[100, 200, 300], disposal=[1, 2, 1], loop=0)
    stored = served(upload(raw, filename="speck.gif", width=4).json()["url"])
    assert stored.n_frames == 2
    durations = []
    for index in range(stored.n_frames):
        stored.seek(index)
        durations.append(stored.info["duration"])
    assert durations == [300, 300]


def test_an_animated_png_of_one_frame_after_its_still_is_stored(upload, served):
    still = PILImage.new("RGB", (40, 20), (255, 255, 255))
    raw = encode(
        still, "PNG", save_all=True, append_images=[PILImage.new("RGB", (40, 20), RED)], default_image=True
    )
    stored = served(upload(raw, filename="one.png").json()["url"])
    assert close(stored.convert("RGB").getpixel((20, 10)), RED)


@pytest.mark.filesystem_only  # nosniff and CSP come from the app; on S3 a CDN in front adds them
def test_gif_html_polyglot_is_re_encoded_without_its_script(upload, served):
    # A real GIF whose comment carries HTML: accepted as an image, but the stored file is new pixels only.
    gif = encode(quadrants((40, 20)), "GIF", comment=b"<html><script>alert(document.cookie)</script>")
    polyglot = gif + b"<script>alert(1)</script>"
    body = upload(polyglot, filename="cat.gif.html").json()
    stored = served(body["url"])
    assert b"<script" not in stored.served_bytes.lower()
    assert stored.served_headers["Content-Type"] == "image/gif"
    assert stored.served_headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in stored.served_headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "filename",
    [
        "../../../../etc/passwd.png",
        "..\\..\\windows\\win.ini.png",
        "/etc/shadow.png",
        "a\x00b.png",
        "%2e%2e%2f.png",
    ],
)
def test_file_names_never_reach_the_filesystem(upload, filename):
    response = upload(quadrants(), filename=filename)
    assert response.status_code == 201
    body = response.json()
    [name] = stored_names()
    stored = PurePosixPath(name)
    assert stored.parts[0] == "images" and ".." not in stored.parts
    assert stored.name == body["url"].rsplit("/", 1)[-1]
    assert stored.stem.isalnum() and len(stored.stem) == 64  # the content hash, nothing else


def test_gps_location_does_not_leak(upload, served):
    exif = PILImage.Exif()
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (48.0, 51.0, 29.0), "E", (2.0, 17.0, 40.0)
    raw = encode(quadrants((300, 200)), "JPEG", exif=exif.tobytes())
    stored = served(upload(raw, filename="home.jpg").json()["url"])
    assert not stored.getexif().get_ifd(0x8825)
    assert b"Exif" not in stored.served_bytes


def test_a_script_title_is_stored_as_given_and_served_as_json_text(api, upload):
    title = '<script>alert("x")</script> & "quotes"'
    body = upload(quadrants(), title=title).json()
    assert body["title"] == title
    response = api.get(f"/images/{body['id']}")
    assert response["Content-Type"] == "application/json"
    assert response.json()["title"] == title
