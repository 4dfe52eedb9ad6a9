"""Benchmark inputs, generated with Pillow alone: photo-like content, so file sizes and decode work are real.

Flat colours compress to almost nothing and decode unrealistically fast, so the generated "photo" mixes
structure (a Mandelbrot detail), soft clouds at several scales, a lighting gradient, low-amplitude colour
variation and sensor-like grain. A 4000x3000 one saved at quality 92 weighs a few MB, like a camera's.

Files are written once into `bench/out/inputs/` (git-ignored) and reused; the version in their names
changes whenever the generator does, and `--regenerate` forces a rebuild.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pillow_heif
from PIL import Image, ImageChops, ImageFilter

pillow_heif.register_heif_opener()

GENERATOR_VERSION = 2

PHOTO_JPEG = "photo-4000x3000.jpg"
RGBA_PNG = "rgba-4000x3000.png"
HUGE_JPEG = "photo-12000x9000.jpg"
ANIMATED_GIF = "animated-1000x750x24.gif"
PHOTO_HEIC = "photo-4000x3000.heic"


def octave_noise(size: tuple[int, int], divisors: tuple[int, ...], sigma: float = 40) -> Image.Image:
    """Smooth random "clouds": Gaussian noise at coarse grids, upscaled and averaged."""
    w, h = size
    out: Image.Image | None = None
    for i, divisor in enumerate(divisors):
        grid = (max(2, w // divisor), max(2, h // divisor))
        layer = Image.effect_noise(grid, sigma).resize(size, Image.Resampling.BICUBIC)
        out = layer if out is None else ImageChops.blend(out, layer, 1 / (i + 1))
    assert out is not None
    return out


def stretch(im: Image.Image, gain: float) -> Image.Image:
    """Contrast around mid-grey (averaged noise is too flat to look like anything)."""
    return im.point(lambda v: max(0, min(255, round((v - 128) * gain + 128))))


def photo_like(size: tuple[int, int], *, grain: float = 4.0) -> Image.Image:
    """An RGB image with a photo's mix of edges, smooth areas, texture and grain."""
    w, h = size
    fractal = Image.effect_mandelbrot((w // 2, h // 2), (-0.77, 0.08, -0.70, 0.1325), 100)
    fractal = fractal.resize(size, Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(1))
    clouds = stretch(octave_noise(size, (200, 60, 16, 4)), 4)
    light = Image.linear_gradient("L").rotate(30).resize(size, Image.Resampling.BILINEAR)
    luma = ImageChops.blend(ImageChops.blend(fractal, clouds, 0.4), light, 0.3)
    # Colour varies slowly and weakly around the luminance, as in most photos.
    bands = [ImageChops.add(luma, stretch(octave_noise(size, (600, 150)), 2), 1.0, -128) for _ in "RGB"]
    noise = Image.effect_noise(size, grain)
    return ImageChops.add(Image.merge("RGB", bands), Image.merge("RGB", (noise,) * 3), 1.0, -128)


def _photo_jpeg(path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Imagery", "Bench camera", 1  # Make, Model, Orientation
    photo_like((4000, 3000)).save(path, "JPEG", quality=92, subsampling="4:2:0", exif=exif)


def _rgba_png(path: Path) -> None:
    rgb = photo_like((4000, 3000), grain=2.0)
    # Alpha fades from 25% to opaque (never 0, so every pixel's colour still counts in the comparison).
    alpha = Image.linear_gradient("L").resize(rgb.size).point(lambda v: 64 + v * 191 // 255)
    rgb.putalpha(alpha)
    rgb.save(path, "PNG")


def _huge_jpeg(path: Path) -> None:
    # A 108 MP photo generated at a quarter of the pixels and upscaled (phone sensors are soft too),
    # with grain added at full resolution.
    base = photo_like((6000, 4500), grain=0).resize((12000, 9000), Image.Resampling.BICUBIC)
    noise = Image.effect_noise(base.size, 4.0)
    photo = ImageChops.add(base, Image.merge("RGB", (noise,) * 3), 1.0, -128)
    photo.save(path, "JPEG", quality=90, subsampling="4:2:0")


def _animated_gif(path: Path) -> None:
    # A slow pan across a photo, 24 frames quantized to 256 colours each, like a clip converted to GIF.
    scene = photo_like((1240, 750), grain=2.0)
    frames = [
        scene.crop((x, 0, x + 1000, 750)).quantize(256, dither=Image.Dither.NONE) for x in range(0, 240, 10)
    ]
    frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)


def _photo_heic(path: Path) -> None:
    photo_like((4000, 3000)).save(path, "HEIF", quality=50)


_GENERATORS: dict[str, Callable[[Path], None]] = {
    PHOTO_JPEG: _photo_jpeg,
    RGBA_PNG: _rgba_png,
    HUGE_JPEG: _huge_jpeg,
    ANIMATED_GIF: _animated_gif,
    PHOTO_HEIC: _photo_heic,
}


def ensure_inputs(folder: Path, *, regenerate: bool = False) -> dict[str, Path]:
    """Every input by name, generating the ones missing (or all, with `regenerate`)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, generate in _GENERATORS.items():
        path = folder / f"v{GENERATOR_VERSION}-{name}"
        if regenerate or not path.is_file():
            print(f"generating {path.name} ...", flush=True)
            partial = path.with_suffix(".partial" + path.suffix)
            generate(partial)
            partial.replace(path)
        paths[name] = path
    return paths


def photo_variants(folder: Path, count: int = 12) -> list[Path]:
    """`count` (at most 12) distinct 4000x3000 photos for benchmarks that need several: the bench photo
    mirrored, flipped or turned, each in one of three tones, saved at quality 92 as a camera would.
    Written once into `folder` and reused."""
    if not 1 <= count <= 12:
        raise ValueError("from 1 to 12 variants")
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"v{GENERATOR_VERSION}-photo-{i:02}.jpg" for i in range(count)]
    if all(p.is_file() for p in paths):
        return paths
    source = ensure_inputs(folder.parent / "inputs")[PHOTO_JPEG]
    with Image.open(source) as im:
        base = im.convert("RGB")
    transforms: list[Callable[[Image.Image], Image.Image]] = [
        lambda im: im,
        lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        lambda im: im.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
        lambda im: im.transpose(Image.Transpose.ROTATE_180),
    ]
    for i, path in enumerate(paths):
        gamma = (1.0, 0.85, 1.15)[i // len(transforms)]
        toned = transforms[i % len(transforms)](base).point(lambda v, g=gamma: round(255 * (v / 255) ** g))
        toned.save(path, "JPEG", quality=92, subsampling="4:2:0")
    return paths
