"""The pure pipeline, without Django: planning sizes, sniffing formats, rendering."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from images.pixels.decoding import sniff
from images.pixels.errors import ImageTooLarge, InvalidImage, UnsupportedFormat
from images.pixels.processing import Fit, Limits, OutputFormat, plan, render
from tests.images import RED, encode, quadrants


@pytest.mark.parametrize(
    ("size", "width", "height", "fit", "expected"),
    [
        ((400, 200), None, None, Fit.CONTAIN, (400, 200)),
        ((400, 200), 100, None, Fit.CONTAIN, (100, 50)),
        ((400, 200), None, 100, Fit.COVER, (200, 100)),
        ((400, 200), 100, 100, Fit.CONTAIN, (100, 50)),
        ((400, 200), 100, 100, Fit.COVER, (100, 100)),
        ((400, 200), 100, 100, Fit.FILL, (100, 100)),
        ((3, 100_000), 1, None, Fit.CONTAIN, (1, 10_000)),
        ((100_000, 1), None, 1, Fit.CONTAIN, (10_000, 1)),
        ((100_000, 1), 50, None, Fit.CONTAIN, (50, 1)),
        ((20_000, 100), None, None, Fit.CONTAIN, (10_000, 50)),
    ],
)
def test_plan_output_size(size, width, height, fit, expected):
    assert plan(size, width=width, height=height, fit=fit, max_dimension=10_000).size == expected


def test_plan_cover_takes_the_centred_region_with_the_boxs_aspect_ratio():
    assert plan((400, 200), width=100, height=100, fit=Fit.COVER, max_dimension=10_000).region == (
        200.0,
        200.0,
    )
    assert plan((200, 400), width=100, height=50, fit=Fit.COVER, max_dimension=10_000).region == (
        200.0,
        100.0,
    )


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"\xff\xd8\xff\xe0rest", "JPEG"),
        (b"\x89PNG\r\n\x1a\nrest", "PNG"),
        (b"GIF89a...", "GIF"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WEBP"),
        (b"BM\x00\x00", "BMP"),
        (b"II*\x00\x08\x00", "TIFF"),
        (b"MM\x00*\x00\x00", "TIFF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIF"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "AVIF"),
        (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf", "AVIF"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x00\x00isomavc1", None),
        (b"<svg xmlns=", None),
        (b"%PDF-1.7", None),
        (b"%!PS-Adobe", None),
        (b"", None),
    ],
)
def test_sniff_recognises_accepted_formats_by_content(head, fmt):
    assert sniff(head) == fmt


def test_render_needs_no_django_and_reports_the_facts():
    rendered = render(io.BytesIO(encode(quadrants((400, 200)), "JPEG")), width=200)
    assert (rendered.format, rendered.width, rendered.height) == (OutputFormat.JPEG, 200, 100)
    assert Image.open(io.BytesIO(rendered.data)).size == (200, 100)


def test_render_draft_decodes_a_large_jpeg_to_a_clean_result():
    big = encode(quadrants((4000, 3000)), "JPEG", quality=90)
    rendered = render(io.BytesIO(big), width=400)
    out = Image.open(io.BytesIO(rendered.data)).convert("RGB")
    assert out.size == (400, 300)
    assert out.getpixel((100, 75)) == pytest.approx(RED, abs=8)


def test_render_raises_domain_errors_only():
    with pytest.raises(UnsupportedFormat):
        render(io.BytesIO(b"hello world"))
    with pytest.raises(InvalidImage):
        render(io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40))
    with pytest.raises(ImageTooLarge):
        render(io.BytesIO(encode(quadrants((200, 200)), "PNG")), limits=Limits(max_pixels=100))
