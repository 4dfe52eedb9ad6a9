"""A request's peak memory follows the formula the README states, in the worst case of every path.

    peak <= 8 B x canvas pixels + 12 B x output pixels of all frames (36 B for AVIF) + 32 MiB

The canvas is one decoded frame (and its converted copy); the output's bytes are the resized frames,
held together until encoded, and the encoder's own copies. Each case runs in a fresh process at limits
of a few megapixels (the formula is linear, so the defaults only scale it) and sits at the edge of what
those limits let through: enlarged stills, enlarged animations, animations at the input budget, a still
at the pixel limit, and files that lie about their frames, which must cost nothing.
"""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from PIL import Image

from images.pixels.processing import Limits
from tests.images import encode, gif_animation, gif_with_frames

M = 1_000_000
BUDGET = 8 * M  # pixels: every limit below is this, so each case can use all of it
LIMITS = Limits(
    max_pixels=BUDGET,
    max_dimension=20_000,
    max_animation_pixels=BUDGET,
    max_enlarged_pixels=BUDGET,
    max_avif_pixels=BUDGET,
)
SLACK = 32 * 2**20  # allocator arenas, codec tables


def formula(*, canvas: int, output: int, avif: bool = False) -> int:
    return 8 * canvas + (36 if avif else 12) * output + SLACK


def noise(side: int) -> Image.Image:
    """Random pixels: enlarged, they are smooth gradients, the encoders' slowest and largest case."""
    return Image.frombytes("RGB", (side, side), random.Random(side).randbytes(side * side * 3))


def palette_noise(side: int, seed: int = 0) -> Image.Image:
    """Random pixels of a random 256-colour palette: a GIF's worst case, written without quantizing."""
    rng = random.Random(seed)
    im = Image.frombytes("P", (side, side), rng.randbytes(side * side))
    im.putpalette(rng.randbytes(768))
    return im


def frames_of(count: int, side: int) -> list[Image.Image]:
    return [palette_noise(side, seed) for seed in range(count)]


FRAMES = 10
SIDE = int(BUDGET**0.5)  # a still that uses the whole budget
FRAME_SIDE = int((BUDGET / FRAMES) ** 0.5)  # each of FRAMES frames using a share of it

# (name, the input's maker, render parameters, canvas pixels, output pixels of all frames, avif). Made
# when the test runs, not when the suite is collected: the largest takes seconds to encode.
CASES = [
    (
        "still enlarged, WebP",
        lambda: encode(noise(16), "PNG"),
        {"width": SIDE, "height": SIDE, "fit": "fill", "output_format": "webp"},
        16 * 16,
        SIDE * SIDE,
        False,
    ),
    (
        "still enlarged, AVIF",
        lambda: encode(noise(16), "PNG"),
        {"width": SIDE, "height": SIDE, "fit": "fill", "output_format": "avif"},
        16 * 16,
        SIDE * SIDE,
        True,
    ),
    (
        "animation enlarged, APNG",
        lambda: gif_animation(frames_of(FRAMES, 16), duration=50),
        {"width": FRAME_SIDE, "height": FRAME_SIDE, "fit": "fill", "output_format": "png"},
        16 * 16,
        FRAMES * FRAME_SIDE * FRAME_SIDE,
        False,
    ),
    (
        "animation at the input budget, WebP",
        lambda: gif_animation(frames_of(FRAMES, FRAME_SIDE), duration=50),
        {"output_format": "webp"},
        FRAME_SIDE * FRAME_SIDE,
        FRAMES * FRAME_SIDE * FRAME_SIDE,
        False,
    ),
    (
        "still at the pixel limit, GIF",
        lambda: encode(palette_noise(SIDE), "GIF"),
        {},
        SIDE * SIDE,
        SIDE * SIDE,
        False,
    ),
]


def measure(tmp_path: Path, data: bytes, params: dict[str, object], limits: Limits = LIMITS) -> dict:
    source = tmp_path / "input"
    source.write_bytes(data)
    result = subprocess.run(  # noqa: S603 (our own module, our arguments)
        [
            sys.executable,
            "-m",
            "tests.peak_memory",
            str(source),
            json.dumps(dataclasses.asdict(limits)),
            json.dumps(params),
        ],
        capture_output=True,
        check=True,
        cwd=django_settings.BASE_DIR,
        timeout=120,
    )
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("make", "params", "canvas", "output", "avif"), [pytest.param(*case[1:], id=case[0]) for case in CASES]
)
def test_peak_memory_of_the_worst_case_follows_the_formula(
    tmp_path, make: Callable[[], bytes], params, canvas, output, avif
):
    measured = measure(tmp_path, make(), params)
    assert measured["error"] is None
    bound = formula(canvas=canvas, output=output, avif=avif)
    assert measured["peak_bytes"] <= bound, (
        f"{measured['peak_bytes'] / 2**20:.0f} MiB > {bound / 2**20:.0f} MiB"
    )
    # The case is a real worst case: it takes a good part of what the formula allows.
    assert measured["peak_bytes"] >= bound / 4


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(gif_with_frames((16, 16), [(60_000, 60_000, 5_000, 5_000)]), id="far"),
        pytest.param(gif_with_frames((16, 16), [(0, 0, 3_000, 3_000)] * 30), id="every frame larger"),
    ],
)
def test_frames_that_lie_about_their_extents_cost_nothing(tmp_path, data):
    measured = measure(tmp_path, data, {})
    assert measured["error"] == "ImageTooLarge"
    assert measured["peak_bytes"] <= SLACK


def test_the_output_budget_is_checked_before_the_animation_is_decoded(tmp_path):
    # Within every input limit (120 frames of 16x16), far over the output one: refused at no cost.
    data = gif_animation(frames_of(120, 16), duration=50)
    measured = measure(
        tmp_path, data, {"width": 4000, "height": 4000, "fit": "fill", "output_format": "webp"}
    )
    assert measured["error"] == "ImageTooLarge"
    assert measured["peak_bytes"] <= SLACK
