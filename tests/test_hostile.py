"""A corpus of hostile uploads, generated here: each gets the right 4xx (or is defused) and leaves nothing.

The corpus is the first thing scripts throw at an open upload endpoint: empty and random files, broken
images, decompression bombs, animations built to burn CPU, files that are really SVG, HTML or a polyglot,
names that try to reach the filesystem, and photos that leak where they were taken.
"""

from __future__ import annotations

import io
import random
from pathlib import PurePosixPath

import pytest
from PIL import Image as PILImage

from tests.conftest import assert_nothing_stored, stored_names
from tests.images import encode, gif_with_logical_screen, png_with_declared_size, quadrants
from tests.problems import assert_problem


def many_frames_gif(frames: int) -> bytes:
    images = [PILImage.new("RGB", (4, 4), (255, 0, 0) if i % 2 else (0, 0, 255)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=10)
    return buffer.getvalue()


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
