"""Pictures for the perceptual hash's tests and benchmark: a set of different generated pictures, the
repository's own pictures and a real photo, and the transformations a near-duplicate goes through."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from pathlib import Path

import matplotlib
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
# Real pictures: the repository's own (docs/) and a photo that ships with matplotlib (a dev dependency):
# Grace Hopper's portrait, a real JPEG photo with skin, fabric and a flat background.
REAL = [
    ROOT / "docs" / "gallery.png",
    ROOT / "docs" / "chaos.png",
    Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
]


def generated(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A picture of its own: a tinted gradient, a dozen shapes of random colours, light noise, a blur."""
    rng = random.Random(seed)
    w, h = size
    im = Image.linear_gradient("L").rotate(rng.choice([0, 90, 180, 270])).resize(size).convert("RGB")
    im = Image.blend(im, Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3))), 0.5)
    draw = ImageDraw.Draw(im)
    for _ in range(rng.randint(6, 14)):
        x, y, r = rng.randrange(w), rng.randrange(h), rng.randint(w // 20, w // 4)
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        else:
            draw.rectangle((x - r, y - r // 2, x + r, y + r // 2), fill=colour)
    noise = Image.effect_noise(size, 24).convert("RGB")
    return Image.blend(im, noise, 0.15).filter(ImageFilter.GaussianBlur(1))


def real() -> list[Image.Image]:
    pictures = []
    for path in REAL:
        with Image.open(path) as im:
            pictures.append(im.convert("RGB"))
    return pictures


def picture_set(generated_count: int = 60) -> list[Image.Image]:
    """The real pictures, then `generated_count` generated ones: all different pictures."""
    return real() + [generated(seed) for seed in range(generated_count)]


def reencoded(im: Image.Image, fmt: str, **params: object) -> Image.Image:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **params)
    buffer.seek(0)
    out = Image.open(buffer)
    out.load()
    return out


def cropped(im: Image.Image, *, share: float) -> Image.Image:
    """`im` without `share` of its width and of its height, taken evenly from opposite borders."""
    w, h = im.size
    dx, dy = round(w * share), round(h * share)
    return im.crop((dx // 2, dy // 2, w - (dx - dx // 2), h - (dy - dy // 2)))


def cropped_area(im: Image.Image, *, share: float) -> Image.Image:
    """`im` without `share` of its area, taken evenly from the four borders (the aspect ratio kept)."""
    keep = (1 - share) ** 0.5
    return cropped(im, share=1 - keep)


def cropped_one_side(im: Image.Image, *, share: float) -> Image.Image:
    """`im` without `share` of its width, all from the left."""
    w, h = im.size
    return im.crop((round(w * share), 0, w, h))


# What a near-duplicate goes through (the list). "Cropped by 5 %": 5 % of the area, from every
# border; harder crops are measured alongside (CROPS) and reported in the README.
TRANSFORMATIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "resized to half": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
    "JPEG quality 60": lambda im: reencoded(im, "JPEG", quality=60),
    "WebP": lambda im: reencoded(im, "WEBP"),
    "cropped by 5 % (area)": lambda im: cropped_area(im, share=0.05),
}

CROPS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "5 % of the area": lambda im: cropped_area(im, share=0.05),
    "5 % of width and height": lambda im: cropped(im, share=0.05),
    "5 % of the width, one side": lambda im: cropped_one_side(im, share=0.05),
}
