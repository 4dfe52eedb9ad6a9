"""Property tests of the sizing arithmetic: plans, DCT-scaled decodes and source boxes at any size.

Real files at odd sizes (a 9643x10328 photo, primes, one-pixel-wide strips) reached floating-point edges
that generated test images never did, so these throw sizes at the arithmetic and at real renders.
"""

from __future__ import annotations

import io
import math

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from images.pixels.errors import ImageTooLarge
from images.pixels.processing import Fit, Gravity, Limits, OutputFormat, plan, render, source_box
from tests.images import close, corners, encode, gif_animation, quadrants

PRIMES = [2, 3, 5, 7, 251, 257, 1009, 2017, 4099, 9643, 10_007, 65_521, 99_991]
sides = st.one_of(st.integers(1, 120_000), st.sampled_from(PRIMES), st.sampled_from([10_328, 9_643]))
boxes = st.one_of(st.none(), st.integers(1, 10_000))


@settings(max_examples=2_000, deadline=None)
@given(
    st.tuples(sides, sides),
    boxes,
    boxes,
    st.sampled_from(list(Fit)),
    st.sampled_from([1, 2, 4, 8]),
)
def test_source_box_stays_inside_any_decoded_size(size, width, height, fit, scale) -> None:
    p = plan(size, width=width, height=height, fit=fit, max_dimension=10_000)
    # What a JPEG decoder gives for a DCT scale of 1/scale: each side rounded up.
    decoded = (math.ceil(size[0] / scale), math.ceil(size[1] / scale))
    left, top, right, bottom = source_box(decoded, original=size, region=p.region)
    assert 0 <= left < right <= decoded[0]
    assert 0 <= top < bottom <= decoded[1]
    # Centred, and the region's share of the image, to within the rounding of the decoded size.
    assert math.isclose(left, decoded[0] - right, abs_tol=1e-6)
    assert math.isclose(top, decoded[1] - bottom, abs_tol=1e-6)
    assert math.isclose((right - left) / decoded[0], p.region[0] / size[0], rel_tol=1e-9, abs_tol=1e-9)
    if p.region == (float(size[0]), float(size[1])):
        assert (left, top, right, bottom) == (0, 0, *decoded)


@settings(max_examples=60, deadline=None)
@given(
    st.tuples(st.integers(8, 2_600), st.integers(8, 2_600)),
    st.one_of(st.none(), st.integers(1, 900)),
    st.one_of(st.none(), st.integers(1, 900)),
    st.sampled_from(list(Fit)),
)
def test_a_jpeg_of_any_size_renders_at_any_smaller_size(size, width, height, fit) -> None:
    # JPEGs are where a DCT-scaled decode (1/2 .. 1/8) meets the box arithmetic.
    source = quadrants(size)
    expected = plan(size, width=width, height=height, fit=fit, max_dimension=10_000).size
    try:
        rendered = render(io.BytesIO(encode(source, "JPEG")), width=width, height=height, fit=fit)
    except ImageTooLarge:
        assert expected[0] * expected[1] > size[0] * size[1]  # only an enlargement may be over budget
        return
    assert (rendered.width, rendered.height) == expected
    if fit is Fit.CONTAIN and min(expected) >= 8:
        # Nothing is shifted, flipped or cropped: the quadrants' colours are where they were.
        out = Image.open(io.BytesIO(rendered.data))
        assert all(close(a, b, 60) for a, b in zip(corners(out), corners(source), strict=True))


def animation(frames: int, side: int) -> bytes:
    images = [Image.new("RGB", (side, side), (40 * i % 256, 255 - 40 * i % 256, 90)) for i in range(frames)]
    return gif_animation(images, duration=40)


TIGHT = Limits(
    max_pixels=300_000, max_dimension=4_000, max_animation_pixels=600_000, max_enlarged_pixels=200_000
)


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(2, 60),
    boxes,
    boxes,
    st.sampled_from(list(Fit)),
    st.sampled_from([None, OutputFormat.WEBP, OutputFormat.PNG]),
)
def test_an_output_never_exceeds_the_budget(frames, side, width, height, fit, output_format) -> None:
    try:
        rendered = render(
            io.BytesIO(animation(frames, side)),
            width=width,
            height=height,
            fit=fit,
            output_format=output_format,
            limits=TIGHT,
        )
    except ImageTooLarge:
        # Refused only for an output the limits forbid, from what was asked (no frame is decoded first).
        p = plan((side, side), width=width, height=height, fit=fit, max_dimension=TIGHT.max_dimension)
        pixels = p.size[0] * p.size[1]
        total = frames * pixels
        enlarged = pixels > p.region[0] * p.region[1]
        assert (
            pixels > TIGHT.max_pixels
            or total > TIGHT.max_animation_pixels
            or (enlarged and total > TIGHT.max_enlarged_pixels)
        ), (p, frames)
        return
    out = Image.open(io.BytesIO(rendered.data))
    count = getattr(out, "n_frames", 1)
    pixels = out.width * out.height
    assert pixels <= TIGHT.max_pixels
    assert count * pixels <= TIGHT.max_animation_pixels
    if pixels > side * side:
        assert count * pixels <= TIGHT.max_enlarged_pixels


@settings(max_examples=60, deadline=None)
@given(
    st.tuples(st.integers(8, 2_600), st.integers(8, 2_600)),
    st.tuples(st.integers(1, 900), st.integers(1, 900)),
    st.tuples(st.floats(0, 1), st.floats(0, 1)),
    st.sampled_from([Gravity.CENTER, Gravity.ATTENTION, None]),
)
def test_a_placed_cover_crop_is_inside_the_right_size_and_holds_the_focal_point(size, box, focal, gravity):
    # gravity None: the focal point places the crop; else the gravity does, and the crop is still planned.
    source = quadrants(size)
    expected = plan(size, width=box[0], height=box[1], fit=Fit.COVER, max_dimension=10_000)
    try:
        rendered = render(
            io.BytesIO(encode(source, "JPEG")),
            width=box[0],
            height=box[1],
            fit=Fit.COVER,
            gravity=gravity or Gravity.CENTER,
            focal=focal if gravity is None else None,
        )
    except ImageTooLarge:
        assert expected.size[0] * expected.size[1] > size[0] * size[1]
        return
    assert (rendered.width, rendered.height) == expected.size
    left, top, right, bottom = rendered.crop
    assert 0 <= left <= right <= 1 and 0 <= top <= bottom <= 1
    # The crop is the planned region's share of the source, wherever it was placed.
    assert math.isclose((right - left) * size[0], expected.region[0], rel_tol=1e-6, abs_tol=1e-6)
    assert math.isclose((bottom - top) * size[1], expected.region[1], rel_tol=1e-6, abs_tol=1e-6)
    if gravity is None:
        assert left - 1e-9 <= focal[0] <= right + 1e-9 and top - 1e-9 <= focal[1] <= bottom + 1e-9
