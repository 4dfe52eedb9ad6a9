"""POST /images: field rules, resizing, orientation, formats, pixel modes, metadata and rejections."""

from __future__ import annotations

import io

import pytest
from PIL import Image as PILImage
from PIL import ImageCms

from tests.conftest import assert_nothing_stored, files_url
from tests.images import (
    BLUE,
    GREEN,
    RED,
    WHITE,
    close,
    corners,
    encode,
    gif_with_logical_screen,
    png_with_declared_size,
    quadrants,
)
from tests.lists import IMAGE_FIELDS
from tests.problems import assert_problem

# --- The answer ------------------------------------------------------------------------------


def test_upload_answers_201_with_location_and_the_stored_files_facts(upload, served):
    response = upload(quadrants((400, 200)), fmt="PNG", filename="holiday.png", title="Beach")
    assert response.status_code == 201
    body = response.json()
    assert response["Location"] == f"/images/{body['id']}"
    assert set(body) == IMAGE_FIELDS
    assert body["url"].startswith(f"{files_url()}images/")
    assert (body["title"], body["width"], body["height"], body["format"]) == (
        "Beach",
        400,
        200,
        "png",
    )
    stored = served(body["url"])
    assert stored.format == "PNG"
    assert stored.size == (400, 200)
    assert body["size"] == len(stored.served_bytes)


def test_upload_and_detail_answer_the_same_object(api, upload):
    created = upload(quadrants(), title="same").json()
    assert api.get(f"/images/{created['id']}").json() == created


# --- Fields ----------------------------------------------------------------------------------


def test_upload_requires_an_image(upload):
    assert_problem(upload(None, title="nothing"), 400, field="image", code="required")
    assert_nothing_stored()


def test_upload_rejects_an_empty_file(upload):
    assert_problem(upload(b""), 400, field="image")
    assert_nothing_stored()


def test_upload_rejects_a_text_field_named_image(api):
    response = api.post("/images", {"image": "not a file"})
    assert_problem(response, 400, field="image")
    assert_nothing_stored()


@pytest.mark.parametrize("field", ["width", "height"])
@pytest.mark.parametrize("value", ["0", "-5", "10001", "abc", "1.5", "1e30", "99999999999999999999999"])
def test_upload_rejects_bad_dimensions(upload, field, value):
    assert_problem(upload(quadrants(), **{field: value}), 400, field=field)
    assert_nothing_stored()


def test_upload_rejects_an_unknown_fit(upload):
    assert_problem(upload(quadrants(), width=10, height=10, fit="stretch"), 400, field="fit")
    assert_nothing_stored()


@pytest.mark.parametrize("title", ["   ", "\t\n", "x" * 256, "nul\x00byte"])
def test_upload_rejects_bad_titles(upload, title):
    assert_problem(upload(quadrants(), title=title), 400, field="title")
    assert_nothing_stored()


def test_an_empty_title_field_counts_as_absent(upload):
    # HTML forms send empty fields; an empty title means "use the default", like a missing one.
    assert upload(quadrants(), filename="beach.png", title="").json()["title"] == "beach"


def test_upload_trims_the_title_and_keeps_unicode(upload):
    body = upload(quadrants(), title="  Über den Wolken 🌥  ").json()
    assert body["title"] == "Über den Wolken 🌥"


def test_upload_accepts_a_title_of_255_characters(upload):
    assert upload(quadrants(), title="t" * 255).json()["title"] == "t" * 255


@pytest.mark.parametrize(
    ("filename", "title"),
    [("holiday.jpg", "holiday"), ("my.trip.2024.png", "my.trip.2024"), (".png", ".png")],
)
def test_upload_title_defaults_to_the_file_name_without_extension(upload, filename, title):
    assert upload(quadrants(), filename=filename).json()["title"] == title


# --- Sizes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "size"),
    [
        ({}, (400, 200)),
        ({"width": 100}, (100, 50)),
        ({"height": 50}, (100, 50)),
        ({"width": 100, "height": 100}, (100, 50)),
        ({"width": 100, "height": 100, "fit": "contain"}, (100, 50)),
        ({"width": 100, "height": 100, "fit": "cover"}, (100, 100)),
        ({"width": 100, "height": 100, "fit": "fill"}, (100, 100)),
        ({"width": 30, "height": 100, "fit": "cover"}, (30, 100)),
        ({"width": 100, "fit": "cover"}, (100, 50)),
        ({"height": 20, "fit": "fill"}, (40, 20)),
        ({"width": 1000}, (1000, 500)),
        ({"width": 1000, "height": 1000, "fit": "fill"}, (1000, 1000)),
    ],
)
def test_upload_resizes_as_asked(upload, served, fields, size):
    body = upload(quadrants((400, 200)), **fields).json()
    assert (body["width"], body["height"]) == size
    assert served(body["url"]).size == size


def test_cover_crops_from_the_centre(upload, served):
    # A 400x200 source cropped to a square keeps its middle 200x200: still four quadrants.
    body = upload(quadrants((400, 200)), width=100, height=100, fit="cover").json()
    tl, tr, bl, br = corners(served(body["url"]))
    assert all(close(a, b) for a, b in [(tl, RED), (tr, GREEN), (bl, BLUE), (br, WHITE)])


def test_fill_stretches_without_cropping(upload, served):
    body = upload(quadrants((400, 200)), width=100, height=300, fit="fill").json()
    stored = served(body["url"])
    assert stored.size == (100, 300)
    tl, tr, bl, br = corners(stored)
    assert all(close(a, b) for a, b in [(tl, RED), (tr, GREEN), (bl, BLUE), (br, WHITE)])


def test_extreme_aspect_ratio_never_gives_a_zero_pixel_side(upload):
    body = upload(PILImage.new("RGB", (5000, 2), RED), width=100).json()
    assert (body["width"], body["height"]) == (100, 1)


def test_one_sided_enlarging_stays_within_the_maximum_dimension(upload, settings):
    body = upload(PILImage.new("RGB", (10, 1000), RED), width=5000).json()
    assert body["height"] <= settings.IMAGE_MAX_DIMENSION
    assert (body["width"], body["height"]) == (100, 10000)


# --- Orientation -----------------------------------------------------------------------------


def exif_with_orientation(value: int) -> bytes:
    exif = PILImage.Exif()
    exif[0x0112] = value
    return exif.tobytes()


# The decoders that carry an EXIF orientation; each must come out upright.
ORIENTABLE = ["JPEG", "PNG", "WEBP", "TIFF", "AVIF", "HEIF"]


@pytest.mark.parametrize("fmt", ORIENTABLE)
def test_exif_orientation_is_applied_and_removed(upload, served, fmt):
    # Stored 400x200 with orientation 6 ("turn 90° clockwise to view"): people see a 200x400 portrait.
    raw = encode(quadrants((400, 200)), fmt, exif=exif_with_orientation(6))
    body = upload(raw, filename=f"phone.{fmt.lower()}").json()
    assert (body["width"], body["height"]) == (200, 400)
    stored = served(body["url"])
    assert stored.size == (200, 400)
    # Turned clockwise: blue (was bottom-left) is now top-left, red top-right, white bottom-left.
    tl, tr, bl, br = corners(stored)
    assert all(close(a, b) for a, b in [(tl, BLUE), (tr, RED), (bl, WHITE), (br, GREEN)])
    assert 0x0112 not in stored.getexif()


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [
        (1, (RED, GREEN, BLUE, WHITE)),
        (2, (GREEN, RED, WHITE, BLUE)),
        (3, (WHITE, BLUE, GREEN, RED)),
        (4, (BLUE, WHITE, RED, GREEN)),
        (5, (RED, BLUE, GREEN, WHITE)),
        (6, (BLUE, RED, WHITE, GREEN)),
        (7, (WHITE, GREEN, BLUE, RED)),
        (8, (GREEN, WHITE, RED, BLUE)),
    ],
)
def test_every_exif_orientation_comes_out_upright(upload, served, orientation, expected):
    raw = encode(quadrants((400, 200)), "JPEG", exif=exif_with_orientation(orientation), quality=95)
    body = upload(raw, filename="o.jpg", width=100).json()
    stored = served(body["url"])
    assert stored.width == 100
    assert all(close(a, b) for a, b in zip(corners(stored), expected, strict=True))


def test_resizing_a_portrait_phone_photo_measures_it_upright(upload):
    raw = encode(quadrants((4000, 3000)), "JPEG", exif=exif_with_orientation(6))
    body = upload(raw, filename="phone.jpg", width=300).json()
    assert (body["width"], body["height"]) == (300, 400)


def test_cover_crop_of_an_oriented_photo_is_centred(upload, served):
    raw = encode(quadrants((400, 200)), "JPEG", exif=exif_with_orientation(6), quality=95)
    body = upload(raw, filename="o.jpg", width=100, height=100, fit="cover", gravity="center").json()
    tl, tr, bl, br = corners(served(body["url"]))
    assert all(close(a, b) for a, b in [(tl, BLUE), (tr, RED), (bl, WHITE), (br, GREEN)])


# --- Formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mode", "stored_format"),
    [
        ("JPEG", "RGB", "JPEG"),
        ("PNG", "RGB", "PNG"),
        ("GIF", "RGB", "GIF"),
        ("WEBP", "RGB", "WEBP"),
        ("BMP", "RGB", "JPEG"),
        ("TIFF", "RGB", "JPEG"),
        ("HEIF", "RGB", "JPEG"),
        ("AVIF", "RGB", "JPEG"),
        ("TIFF", "RGBA", "PNG"),
        ("WEBP", "RGBA", "WEBP"),
    ],
)
def test_formats_are_kept_or_converted(upload, served, fmt, mode, stored_format):
    im = quadrants((200, 100), mode)
    if mode == "RGBA":
        im.putpixel((0, 0), (0, 0, 0, 0))
    body = upload(encode(im, fmt), filename=f"x.{fmt.lower()}", width=100).json()
    assert body["format"] == stored_format.lower()
    stored = served(body["url"])
    assert stored.format == stored_format
    assert stored.size == (100, 50)
    assert close(corners(stored)[0], RED, 60)
    assert stored.served_headers["Content-Type"] == f"image/{stored_format.lower()}"


def test_format_is_decided_by_content_not_name_or_type(api):
    png = io.BytesIO(encode(quadrants(), "PNG"))
    png.name = "photo.jpg"
    response = api.post("/images", {"image": png})
    assert response.json()["format"] == "png"


def test_opaque_rgba_tiff_becomes_jpeg(upload):
    body = upload(encode(quadrants((80, 40), "RGBA"), "TIFF"), filename="x.tif").json()
    assert body["format"] == "jpeg"


# --- Pixel modes -----------------------------------------------------------------------------


def test_rgba_png_keeps_its_transparency(upload, served):
    im = PILImage.new("RGBA", (200, 100), (255, 0, 0, 255))
    im.paste((0, 0, 0, 0), (0, 0, 100, 100))
    stored = served(upload(im, width=100).json()["url"])
    assert stored.mode == "RGBA"
    assert stored.getpixel((10, 10))[3] == 0
    assert stored.getpixel((90, 40)) == (255, 0, 0, 255)


def test_palette_png_with_transparency_keeps_it(upload, served):
    im = PILImage.new("RGBA", (100, 100), (0, 0, 255, 255))
    im.paste((0, 0, 0, 0), (0, 0, 50, 100))
    palette = im.quantize(4)
    palette.info["transparency"] = palette.getpixel((0, 0))
    stored = served(upload(encode(palette, "PNG", transparency=palette.getpixel((0, 0)))).json()["url"])
    rgba = stored.convert("RGBA")
    assert rgba.getpixel((10, 50))[3] == 0
    assert close(rgba.getpixel((90, 50)), (0, 0, 255, 255))


def test_transparent_gif_stays_transparent_after_resizing(upload, served):
    im = PILImage.new("RGBA", (100, 100), (0, 255, 0, 255))
    im.paste((0, 0, 0, 0), (0, 0, 50, 100))
    body = upload(im, fmt="GIF", filename="a.gif", width=50).json()
    stored = served(body["url"]).convert("RGBA")
    assert stored.getpixel((5, 25))[3] == 0
    assert close(stored.getpixel((45, 25)), (0, 255, 0, 255))


def test_la_png_keeps_gray_and_alpha(upload, served):
    im = PILImage.new("LA", (100, 100), (128, 255))
    im.paste((0, 0), (0, 0, 50, 100))
    stored = served(upload(im).json()["url"])
    assert stored.mode == "LA"
    assert stored.getpixel((10, 10))[1] == 0
    assert stored.getpixel((90, 10)) == (128, 255)


def test_cmyk_jpeg_is_stored_as_rgb_with_its_colours(upload, served):
    stored = served(upload(quadrants((200, 100), "CMYK"), fmt="JPEG", filename="print.jpg").json()["url"])
    assert stored.mode == "RGB"
    tl, tr, bl, _br = corners(stored)
    assert close(tl, RED, 60) and close(tr, GREEN, 60) and close(bl, BLUE, 60)


def test_jpeg_with_an_icc_profile_is_converted_to_srgb_and_untagged(upload, served):
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    raw = encode(quadrants((200, 100)), "JPEG", icc_profile=profile)
    stored = served(upload(raw, filename="p.jpg").json()["url"])
    assert "icc_profile" not in stored.info
    assert close(corners(stored)[0], RED)


@pytest.mark.parametrize("level", [0, 16384, 32768, 65535])
def test_16_bit_grayscale_is_scaled_not_clipped(upload, served, level):
    im = PILImage.new("I;16", (64, 64), level)
    stored = served(upload(im).json()["url"])
    assert stored.mode == "L"
    assert abs(stored.getpixel((32, 32)) - level / 257) <= 2


def test_1_bit_image_is_stored_faithfully(upload, served):
    im = PILImage.new("1", (64, 64), 0)
    im.paste(1, (32, 0, 64, 64))
    stored = served(upload(im, fmt="PNG").json()["url"]).convert("L")
    assert stored.getpixel((10, 10)) == 0
    assert stored.getpixel((50, 10)) == 255


# --- Metadata never reaches the stored file ---------------------------------------------------


def test_exif_and_gps_are_removed_from_jpeg(upload, served):
    exif = PILImage.Exif()
    exif[0x010F] = "PhoneMaker"
    exif.get_ifd(0x8825)[2] = (52.0, 22.0, 1.0)  # GPS latitude
    raw = encode(quadrants(), "JPEG", exif=exif.tobytes(), comment=b"secret comment")
    stored = served(upload(raw, filename="gps.jpg").json()["url"])
    assert len(stored.getexif()) == 0
    assert b"Exif" not in stored.served_bytes
    assert b"PhoneMaker" not in stored.served_bytes
    assert b"secret comment" not in stored.served_bytes


def test_a_script_in_a_gif_comment_does_not_survive(upload, served):
    raw = encode(quadrants(), "GIF", comment=b"<script>alert(1)</script>")
    assert b"<script>" in raw
    stored = served(upload(raw, filename="evil.gif").json()["url"])
    assert b"<script>" not in stored.served_bytes
    assert "comment" not in stored.info


def test_png_text_chunks_are_removed(upload, served):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "<script>alert(1)</script>")
    info.add_text("Author", "someone private")
    raw = encode(quadrants(), "PNG", pnginfo=info)
    stored = served(upload(raw).json()["url"])
    assert b"<script>" not in stored.served_bytes
    assert b"someone private" not in stored.served_bytes


# --- Rejections leave nothing behind -----------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "filename"),
    [
        (b"just some text, not an image", "notes.jpg"),
        (bytes(range(256)) * 10, "random.png"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "x.svg"),
        (b"%PDF-1.4\n1 0 obj<<>>endobj\n", "doc.pdf"),
        (b"<!DOCTYPE html><html><script>alert(1)</script></html>", "page.jpg"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "x.eps"),
        (b"\x00\x00\x01\x00\x01\x00\x10\x10\x00\x00\x01\x00\x20\x00", "favicon.ico"),
        (b"8BPS\x00\x01" + b"\x00" * 40, "layers.psd"),
    ],
)
def test_non_images_and_unaccepted_formats_get_415(upload, content, filename):
    assert_problem(upload(content, filename=filename), 415, field="image", code="unsupported_format")
    assert_nothing_stored()


def test_ico_made_by_pillow_gets_415(upload):
    raw = encode(PILImage.new("RGB", (16, 16), RED), "ICO")
    assert_problem(upload(raw, filename="favicon.ico"), 415)
    assert_nothing_stored()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "TIFF"])
def test_truncated_images_get_400_invalid_image(upload, fmt):
    raw = encode(quadrants((400, 300)), fmt)
    truncated = raw[: len(raw) // 2]
    assert_problem(upload(truncated, filename="cut.img"), 400, field="image", code="invalid_image")
    assert_nothing_stored()


def test_corrupt_png_header_gets_400(upload):
    raw = bytearray(encode(quadrants(), "PNG"))
    raw[16:24] = b"\xff" * 8  # width/height in IHDR, and its CRC no longer matches
    assert_problem(upload(bytes(raw)), 400, code="invalid_image")
    assert_nothing_stored()


@pytest.mark.parametrize(
    "bomb", [png_with_declared_size(100_000, 100_000), gif_with_logical_screen(65_535, 65_535)]
)
def test_decompression_bombs_get_413_before_decoding(upload, bomb, monkeypatch):
    def refuse_to_decode(self, *args, **kwargs):
        raise AssertionError("a bomb reached the decoder")

    monkeypatch.setattr(PILImage.Image, "load", refuse_to_decode)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", refuse_to_decode)
    assert_problem(upload(bomb, filename="bomb.png"), 413, field="image", code="image_too_large")
    assert_nothing_stored()


def test_pixel_limit_is_a_setting(upload, settings):
    settings.IMAGE_MAX_PIXELS = 100 * 100
    assert_problem(upload(quadrants((101, 100))), 413)
    assert upload(quadrants((100, 100))).status_code == 201


def test_output_over_the_pixel_limit_gets_413(upload, settings):
    settings.IMAGE_MAX_PIXELS = 1_000_000
    assert_problem(upload(quadrants((100, 100)), width=2000, height=2000, fit="fill"), 413)
    assert_nothing_stored()


def test_upload_over_the_byte_limit_gets_413(upload, settings):
    settings.IMAGE_MAX_UPLOAD_BYTES = 10_000
    noisy = PILImage.effect_noise((200, 200), 100).convert("RGB")
    raw = encode(noisy, "PNG")
    assert len(raw) > 10_000
    assert_problem(upload(raw), 413, field="image", code="image_too_large")
    assert_nothing_stored()


def test_upload_declaring_a_huge_body_is_refused_before_reading_it(api, settings):
    settings.IMAGE_MAX_UPLOAD_BYTES = 10_000
    body = b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
    response = api.generic(
        "POST",
        "/images",
        body,
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH="999999999",
    )
    assert_problem(response, 413)
    assert_nothing_stored()


def test_json_body_gets_415(api):
    response = api.post("/images", {"title": "x"}, content_type="application/json")
    assert_problem(response, 415)
    assert_nothing_stored()


@pytest.mark.parametrize("name", ["width", "height", "fit", "format"])
def test_upload_refuses_an_empty_option_as_its_schema_says(upload, name):
    # Only the title's schema allows an empty field (it means the default); for these, "" is no value.
    assert_problem(upload(quadrants(), **{name: ""}), 400, field=name)
