"""Encoding a finished image for storage: the output formats, their settings, and nothing of the input's
metadata carried over. Pure Pillow; no Django."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from PIL import Image


class OutputFormat(StrEnum):
    JPEG = "jpeg"
    PNG = "png"
    GIF = "gif"
    WEBP = "webp"
    AVIF = "avif"

    @property
    def media_type(self) -> str:
        return f"image/{self.value}"

    @property
    def extension(self) -> str:
        return "jpg" if self is OutputFormat.JPEG else self.value


@dataclass(frozen=True)
class EncodeOptions:
    jpeg_quality: int = 85
    webp_quality: int = 80
    avif_quality: int = 65
    # libavif's speed, 0 (slowest, smallest) to 10. Its default, 6, takes 1.4 to 2 s for a 2560-wide
    # image on our bench; 8 takes under half of that for 4-12 % more bytes (README, "Renditions").
    avif_speed: int = 8
    # A progressive JPEG loads nicely in a browser, but a decoder must hold and process every scan at full
    # coefficient size before it can scale in the DCT domain: a 320-wide rendition of a 4000x3000 photo
    # costs 3-4x as much from a progressive file as from a baseline one (bench/renditions.py). So files
    # that are decoded again (an upload's stored file, every rendition's source) are written baseline,
    # and renditions, which only browsers read, progressive.
    jpeg_progressive: bool = True

    def shaping(self, output: OutputFormat) -> dict[str, int]:
        """The settings that change the bytes of `output` (what a stored rendition's name must carry, so
        that a changed setting makes new files): none for PNG and GIF, which are lossless here."""
        if output is OutputFormat.JPEG:
            return {"jpeg_quality": self.jpeg_quality}
        if output is OutputFormat.WEBP:
            return {"webp_quality": self.webp_quality}
        if output is OutputFormat.AVIF:
            return {"avif_quality": self.avif_quality, "avif_speed": self.avif_speed}
        return {}


@dataclass(frozen=True)
class Rendered:
    """An encoded output image and the facts about it."""

    data: bytes
    format: OutputFormat
    width: int
    height: int
    # With `render(..., preview=True)`: the first frame at most 64x64, as stored (images.pixels.placeholders).
    preview: Image.Image | None = field(default=None, compare=False, repr=False)
    # The part of the source kept (left, top, right, bottom), as fractions of its displayed width and
    # height: the whole image unless a `cover` crop cut it (a focal point is carried over with it).
    crop: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)


def has_transparency(im: Image.Image) -> bool:
    if im.mode not in ("LA", "RGBA"):
        return False
    low, _high = im.getchannel("A").getextrema()
    return low < 255


def _flatten(im: Image.Image) -> Image.Image:
    """Composite onto white, for formats without an alpha channel."""
    if im.mode not in ("LA", "RGBA"):
        return im
    base = Image.new(im.mode[:-1], im.size, "white")
    base.paste(im, mask=im.getchannel("A"))
    return base


def encode(im: Image.Image, output: OutputFormat, options: EncodeOptions) -> bytes:
    # Metadata never reaches the output: encoders fall back to `im.info` (a GIF comment, EXIF, XMP)
    # for anything not passed explicitly, so start from an empty one.
    im.info = {}
    if output is OutputFormat.JPEG:
        im = _flatten(im)
        plain = {"quality": options.jpeg_quality, "subsampling": "4:2:0"}
        optimized = {**plain, "optimize": True, "progressive": options.jpeg_progressive}
        return _optimized(im, "JPEG", optimized, plain)
    if output is OutputFormat.PNG:
        return _optimized(im, "PNG", png_compression(im.width * im.height), {})
    if output in (OutputFormat.WEBP, OutputFormat.AVIF):
        if im.mode != "RGB":
            # An alpha channel that hides nothing would still be encoded.
            im = im.convert("RGBA" if has_transparency(im) else "RGB")
        if output is OutputFormat.WEBP:
            return save(im, "WEBP", quality=options.webp_quality, method=4)
        return save(im, "AVIF", quality=options.avif_quality, speed=options.avif_speed)
    if im.mode == "LA":
        im = im.convert("RGBA")
    return _optimized(im, "GIF", {"optimize": True}, {})


# zlib's level 9 (what Pillow's `optimize` asks for) takes up to 13 times as long as level 6 for a few
# percent, and an enlarged, smooth image is its worst case: 2.6 s per megapixel against 0.25 s. It is
# worth it only on small outputs.
_PNG_LEVEL_9_UP_TO = 1_000_000


def png_compression(pixels: int) -> dict[str, Any]:
    return {"optimize": True} if pixels <= _PNG_LEVEL_9_UP_TO else {"compress_level": 6}


# Below this size, an optimized encoding's extra headers (progressive scans, say) can outweigh what it
# saves, so the plain encoding is tried too and the smaller kept: the stored file is never larger than a
# plain save of the same pixels. Above it, the optimized encoding is always the smaller one.
_TRY_PLAIN_BELOW = 32 * 1024


def _optimized(im: Image.Image, fmt: str, optimized: dict[str, Any], plain: dict[str, Any]) -> bytes:
    data = save(im, fmt, **optimized)
    if len(data) < _TRY_PLAIN_BELOW:
        data = min(data, save(im, fmt, **plain), key=len)
    return data


def save(im: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **params)
    return buffer.getvalue()


def with_webp_alpha_flag(data: bytes) -> bytes:
    """Say in the header of an animated WebP that it has transparency.

    libwebp crops each frame to what changes and sets the flag only when a cropped frame has alpha, so
    an animation whose transparency comes from the cleared canvas is labelled opaque, and decoders that
    trust the label (Pillow among them) show it on black. The flag is a hint about the whole image
    (VP8X chunk, bit 4 of the byte after its size).
    """
    if data[12:16] != b"VP8X":
        return data
    flags = data[_VP8X_FLAGS] | _VP8X_ALPHA
    return data[:_VP8X_FLAGS] + bytes([flags]) + data[_VP8X_FLAGS + 1 :]


# 'RIFF', size, 'WEBP', then the VP8X chunk: 'VP8X', its size, then its flags byte.
_VP8X_FLAGS = 20

_VP8X_ALPHA = 0x10
