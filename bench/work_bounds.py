"""What the worst request of each kind costs at the default limits: CPU time and peak memory.

Run with `make bench` (after bench/pipeline.py) or `.venv/bin/python bench/work_bounds.py`. Each case runs
`images.pixels.processing.render` once in a fresh process, at the edge of what the default `Limits()` let
through, and is printed with the README's memory formula beside it:

    peak <= 8 B x canvas pixels + 12 B x output pixels of all frames (36 B for AVIF) + 32 MiB

Inputs are generated into bench/out/inputs/ (git-ignored) on first use. A few bytes can only ask for an
enlarged output (bounded by IMAGE_MAX_ENLARGED_PIXELS) or an animation (IMAGE_MAX_ANIMATION_PIXELS);
the largest outputs need the largest inputs, which the upload limit bounds. The script reports; it
always exits 0. tests/test_work_bounds.py checks the formula at small limits on every `make test`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402
from server import memory_kib  # noqa: E402

from images.pixels.decoding import bound_pillow  # noqa: E402
from images.pixels.errors import PixelError  # noqa: E402
from images.pixels.processing import Fit, Limits, OutputFormat, render  # noqa: E402

INPUTS = BENCH / "out" / "inputs"
LIMITS = Limits()
# As the app does at start (ImagesConfig.ready): Pillow's own bomb check at our pixel limit.
bound_pillow(LIMITS.max_pixels)
MIB = 2**20


def noise(side: int) -> Image.Image:
    return Image.frombytes("RGB", (side, side), random.Random(side).randbytes(side * side * 3))


def gradient_frames(count: int, side: int) -> list[Image.Image]:
    """Frames with real content but few bytes, so that an animation at the budget fits an upload."""
    base = noise(8).resize((side, side), Image.Resampling.BICUBIC).convert("P")
    return [base.rotate(360 * index / count) for index in range(count)]


def save(im: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **params)
    return buffer.getvalue()


MAKERS = {
    "dot.png": lambda: save(noise(16), "PNG"),
    "tiny-animation.gif": lambda: save(
        noise(16).convert("P"), "GIF", save_all=True, append_images=gradient_frames(9, 16), duration=50
    ),
    "animation-at-budget.gif": lambda: save(
        *(frames := gradient_frames(100, 1000))[:1],
        "GIF",
        save_all=True,
        append_images=frames[1:],
        duration=50,
    ),
    "solid-animation-at-budget.gif": lambda: save(
        *(frames := [Image.new("P", (1000, 1000), index) for index in range(100)])[:1],
        "GIF",
        save_all=True,
        append_images=frames[1:],
        duration=50,
    ),
    "still-at-limit.jpg": lambda: save(
        noise(24).resize((12_000, 10_000), Image.Resampling.BICUBIC), "JPEG", quality=90
    ),
}


@dataclass(frozen=True)
class Case:
    label: str
    input: str
    params: dict[str, object] = field(default_factory=dict)


ENLARGED_SIDE = int(LIMITS.max_enlarged_pixels**0.5)
FRAME_SIDE = int((LIMITS.max_enlarged_pixels / 10) ** 0.5)
CASES = [
    Case("still enlarged, PNG", "dot.png", {"width": ENLARGED_SIDE, "height": ENLARGED_SIDE, "fit": "fill"}),
    Case(
        "still enlarged, AVIF",
        "dot.png",
        {"width": ENLARGED_SIDE, "height": ENLARGED_SIDE, "fit": "fill", "output_format": "avif"},
    ),
    Case(
        "animation enlarged, APNG",
        "tiny-animation.gif",
        {"width": FRAME_SIDE, "height": FRAME_SIDE, "fit": "fill", "output_format": "png"},
    ),
    Case(
        "animation enlarged, WebP",
        "tiny-animation.gif",
        {"width": FRAME_SIDE, "height": FRAME_SIDE, "fit": "fill", "output_format": "webp"},
    ),
    Case("animation at the budget, GIF", "animation-at-budget.gif"),
    Case("animation at the budget, WebP", "animation-at-budget.gif", {"output_format": "webp"}),
    Case("animation at the budget, APNG", "animation-at-budget.gif", {"output_format": "png"}),
    Case("few KB at the budget, APNG", "solid-animation-at-budget.gif", {"output_format": "png"}),
    Case("few KB at the budget, WebP", "solid-animation-at-budget.gif", {"output_format": "webp"}),
    Case("still at the pixel limit, JPEG", "still-at-limit.jpg"),
    Case("still at the pixel limit, WebP", "still-at-limit.jpg", {"output_format": "webp"}),
    Case("still at the pixel limit, PNG", "still-at-limit.jpg", {"output_format": "png"}),
]


def input_path(name: str) -> Path:
    path = INPUTS / name
    if not path.exists():
        INPUTS.mkdir(parents=True, exist_ok=True)
        path.write_bytes(MAKERS[name]())
    return path


def vm_hwm() -> int:
    """This process's peak resident memory, in bytes."""
    return memory_kib(os.getpid())["VmHWM"] * 1024


def child(path: str, params: str) -> None:
    """Render once in this fresh process; print CPU seconds, the peak's rise, and what came out."""
    kwargs = json.loads(params)
    if "fit" in kwargs:
        kwargs["fit"] = Fit(kwargs["fit"])
    if "output_format" in kwargs:
        kwargs["output_format"] = OutputFormat(kwargs["output_format"])
    data = Path(path).read_bytes()
    idle, started = vm_hwm(), time.process_time()
    try:
        rendered = render(io.BytesIO(data), **kwargs)
        frames = getattr(Image.open(io.BytesIO(rendered.data)), "n_frames", 1)
        result = {"size": [rendered.width, rendered.height], "frames": frames, "error": None}
    except PixelError as exc:
        result = {"error": exc.message}
    result |= {"cpu": time.process_time() - started, "peak": vm_hwm() - idle}
    print(json.dumps(result))


def canvas_and_frames(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.width * im.height, getattr(im, "n_frames", 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--child", nargs=2, metavar=("INPUT", "PARAMS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    print(f"{'case':34} {'input':>9} {'output':>18} {'CPU s':>6} {'peak MiB':>9} {'formula MiB':>12}")
    for case in CASES:
        path = input_path(case.input)
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(path), json.dumps(case.params)],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout)
        size = f"{path.stat().st_size / 1024:.0f} KiB"
        if result["error"]:
            print(f"{case.label:34} {size:>9} refused: {result['error']}")
            continue
        width, height = result["size"]
        canvas, frames = canvas_and_frames(path)
        # Every frame is rendered and held, also those the encoder then finds the same as the last.
        rendered = frames if case.params.get("output_format") not in ("jpeg", "avif") else 1
        avif = case.params.get("output_format") == "avif"
        bound = 8 * canvas + (36 if avif else 12) * rendered * width * height + 32 * MIB
        shape = f"{result['frames']}x{width}x{height}"
        print(
            f"{case.label:34} {size:>9} {shape:>18} {result['cpu']:6.1f} "
            f"{result['peak'] / MIB:9.0f} {bound / MIB:12.0f}"
        )


if __name__ == "__main__":
    main()
