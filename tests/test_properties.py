"""Property-based tests: no input makes the pipeline or the upload endpoint raise anything but our errors."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from images.models import Image
from images.pixels.errors import PixelError
from images.pixels.processing import Fit, Limits, OutputFormat, plan, render
from tests.images import encode, quadrants
from tests.problems import assert_problem

SMALL = Limits(max_pixels=4_000_000, max_dimension=2_000, max_frames=50, max_animation_pixels=20_000_000)


def animated(fmt: str) -> bytes:
    frames = [quadrants((48, 32), "RGBA").rotate(90 * index) for index in range(3)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=50)


SEEDS = {
    fmt: encode(quadrants((48, 32), mode), fmt)
    for fmt, mode in [
        ("JPEG", "RGB"),
        ("PNG", "RGBA"),
        ("GIF", "RGB"),
        ("WEBP", "RGB"),
        ("BMP", "RGB"),
        ("TIFF", "RGB"),
        ("AVIF", "RGB"),
        ("HEIF", "RGB"),
    ]
} | {f"animated {fmt}": animated(fmt) for fmt in ("GIF", "WEBP", "PNG", "AVIF")}


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A valid small image with some bytes overwritten, cut short, or both."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(0, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(1, len(data)))
    return bytes(data[:cut])


def render_or_domain_error(raw: bytes, **kwargs: object) -> None:
    try:
        rendered = render(io.BytesIO(raw), limits=SMALL, **kwargs)
    except PixelError:
        return
    assert rendered.data
    assert 1 <= rendered.width <= SMALL.max_dimension and 1 <= rendered.height <= SMALL.max_dimension


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_render_or_raise_a_domain_error(raw: bytes) -> None:
    render_or_domain_error(raw)


@settings(max_examples=300, deadline=None)
@given(
    mutated_images(),
    st.one_of(st.none(), st.integers(1, 300)),
    st.one_of(st.none(), st.integers(1, 300)),
    st.sampled_from(list(Fit)),
    st.one_of(st.none(), st.sampled_from(list(OutputFormat))),
)
def test_mutated_images_render_or_raise_a_domain_error(raw, width, height, fit, output_format) -> None:
    render_or_domain_error(raw, width=width, height=height, fit=fit, output_format=output_format)


@settings(max_examples=500, deadline=None)
@given(
    st.tuples(st.integers(1, 200_000), st.integers(1, 200_000)),
    st.one_of(st.none(), st.integers(1, 10_000)),
    st.one_of(st.none(), st.integers(1, 10_000)),
    st.sampled_from(list(Fit)),
)
def test_plan_never_gives_an_empty_or_oversized_side(size, width, height, fit) -> None:
    p = plan(size, width=width, height=height, fit=fit, max_dimension=10_000)
    assert all(1 <= side <= 10_000 for side in p.size)
    assert 0 < p.region[0] <= size[0] and 0 < p.region[1] <= size[1]
    if width and height and fit is not Fit.CONTAIN:
        assert p.size == (width, height)


field_values = st.one_of(
    st.none(),
    st.text(max_size=300),
    st.integers(-(10**25), 10**25).map(str),
    st.sampled_from(["", " ", "0", "1", "10000", "10001", "1.0", "NaN", "1e3", "contain", "cover"]),
)


@pytest.mark.django_db
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=field_values, width=field_values, height=field_values, fit=field_values, fmt=field_values)
def test_upload_fields_give_201_or_a_400_problem(upload, title, width, height, fit, fmt) -> None:
    before = Image.objects.count()
    response = upload(quadrants((30, 20)), title=title, width=width, height=height, fit=fit, format=fmt)
    # 413: a valid size that would enlarge the 30x20 image past IMAGE_MAX_ENLARGED_PIXELS.
    assert response.status_code in (201, 400, 413), response.content
    if response.status_code in (400, 413):
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["errors"]
        assert response.status_code == 400 or response.json()["code"] == "image_too_large"
        assert Image.objects.count() == before
    else:
        assert Image.objects.count() == before + 1


# --- no request parameter makes a 5xx ---------------------------------------------------------------

hostile_text = st.one_of(
    st.text(),  # any Unicode but surrogates
    # Digits int() refuses though isdigit() accepts them (²), other scripts' digits (U+0661), controls (NUL),
    # surrogates (sent as the UTF-8 bytes a lax client would write for them).
    st.text(st.characters(categories=["Nd", "No", "Cc", "Cs"]), max_size=20),
    st.integers(15, 6000).map(lambda n: "9" * n),  # past 64 bits; past what int() converts (4300)
    st.sampled_from(["", " ", "0", "-1", "1.0", "+1", "1e3", "NaN", "0x10", "²", "\u0661", "\x00", "\udcff"]),
)


def utf8(text: str) -> bytes:
    """The bytes a client would send for `text`, lone surrogates included (Python refuses them otherwise)."""
    return text.encode("utf-8", "surrogatepass")


def assert_not_a_server_error(response: Any, field: str) -> None:
    """Not a 5xx; an error is a problem, and a 400 names `field`."""
    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        body = assert_problem(response, response.status_code)
        if response.status_code == 400:
            assert [e["field"] for e in body["errors"]] == [field], body


@pytest.fixture
def three(many: Callable[[int], list[int]]) -> list[int]:
    return many(3)


@pytest.mark.parametrize("param", ["page", "page_size", "cursor", "title"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(hostile_text.map(utf8), st.binary(max_size=40)))
def test_list_params_never_give_a_5xx(api: Client, three: list[int], param: str, value: bytes) -> None:
    # Percent-encoded by hand: raw bytes (not UTF-8 at all, or a surrogate's) reach Django as they would.
    response = api.get(f"/images?{param}={quote(value, safe='')}")
    assert_not_a_server_error(response, param)


def multipart(image: bytes, field: str, value: bytes) -> tuple[bytes, str]:
    """A form with `image` and one more field holding exactly `value` (Django's client would encode it)."""
    boundary = b"imagery-property-test-boundary"
    body = b"".join(
        [
            b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
            % (boundary, field.encode(), value),
            b'--%s\r\nContent-Disposition: form-data; name="image"; filename="small.png"\r\n' % boundary,
            b"Content-Type: image/png\r\n\r\n%s\r\n--%s--\r\n" % (image, boundary),
        ]
    )
    return body, f"multipart/form-data; boundary={boundary.decode()}"


SMALL_PNG = encode(quadrants((12, 8)), "PNG")


@pytest.mark.parametrize("field", ["title", "width", "height", "fit", "format"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=hostile_text.map(utf8))
def test_upload_fields_never_give_a_5xx(api: Client, field: str, value: bytes) -> None:
    body, content_type = multipart(SMALL_PNG, field, value)
    response = api.post("/images", body, content_type=content_type)
    assert_not_a_server_error(response, field)
    # 413: a valid width or height that would enlarge the small image past IMAGE_MAX_ENLARGED_PIXELS.
    assert response.status_code in (201, 400, 413), response.content
    if response.status_code == 413:
        assert field in ("width", "height") and response.json()["code"] == "image_too_large"
