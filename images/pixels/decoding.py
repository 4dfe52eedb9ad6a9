"""Opening an upload safely: sniff its format, read its size and frames from the header, check the input
limits before a pixel is decoded, and decode frames. What a decoder raises on broken data becomes
InvalidImage; anything else is a bug of ours and is not caught. Pure Pillow; no Django."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import pillow_heif
from PIL import Image

from images.pixels import compat
from images.pixels.errors import ImageTooLarge, InvalidImage, UnsupportedFormat
from images.pixels.limits import Limits

# HEIC/HEIF files open through Pillow once pillow-heif's opener is registered.
pillow_heif.register_heif_opener()

_SNIFF_BYTES = 64

_HEIF_BRANDS = {
    b"heic",
    b"heix",
    b"hevc",
    b"hevx",
    b"heim",
    b"heis",
    b"hevm",
    b"hevs",
    b"mif1",
    b"msf1",
}

_AVIF_BRANDS = {b"avif", b"avis"}

# Decoders that apply the orientation themselves while loading (and report the oriented size).
_SELF_ORIENTING = {"TIFF", "HEIF"}

# EXIF orientation -> the transposition that makes the image upright.
TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_ORIENTATION_TAG = 0x0112


def sniff(head: bytes) -> str | None:
    """The Pillow format name an accepted image starts with, or None. Never trusts names or types."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:2] == b"BM":
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[4:8] == b"ftyp":
        box_end = min(int.from_bytes(head[:4], "big"), len(head))
        major = head[8:12]
        brands = {major} | {head[i : i + 4] for i in range(16, box_end - 3, 4)}
        if major in _AVIF_BRANDS or (major not in _HEIF_BRANDS - {b"mif1"} and brands & _AVIF_BRANDS):
            return "AVIF"
        if brands & _HEIF_BRANDS:
            return "HEIF"
    return None


def open_image(src: BinaryIO, limits: Limits) -> Image.Image:
    """Open `src` with the decoder of the format its first bytes show, its input limits checked.

    Nothing is decoded yet: Pillow has read the header. Raises UnsupportedFormat, InvalidImage and
    ImageTooLarge.
    """
    head = src.read(_SNIFF_BYTES)
    src.seek(0)
    if not head:
        raise InvalidImage("The file is empty.")
    fmt = sniff(head)
    if fmt is None:
        raise UnsupportedFormat(
            "The file is not an image in a format we accept "
            "(JPEG, PNG, GIF, WebP, BMP, TIFF, HEIC/HEIF, AVIF)."
        )
    if fmt == "GIF":
        # Pillow grows a GIF's canvas to fit any frame that reaches past it, allocating as it goes.
        check_canvas(gif_canvas(src), limits)
    with broken_data_is_invalid(f"The file looks like {fmt} but its header is unreadable."):
        im = Image.open(src, formats=[fmt])
        width, height = im.size
    if width < 1 or height < 1:
        im.close()
        raise InvalidImage("The image has no pixels.")
    try:
        check_canvas(Canvas(width, height, frames=1), limits)
    except ImageTooLarge:
        im.close()
        raise
    if im.format == "WEBP" and im.mode == "RGB" and getattr(im, "is_animated", False):
        # Frames are drawn on a canvas that starts transparent and is cleared between frames, so opaque
        # frames smaller than the canvas (a sticker) leave it transparent around them, while the header's
        # alpha flag (whether any *frame* has alpha) is off.
        compat.decode_animated_webp_with_alpha(im)
    return im


@dataclass(frozen=True)
class Canvas:
    """The canvas an image is decoded on, and how many frames are drawn on it."""

    width: int
    height: int
    frames: int


def check_canvas(canvas: Canvas, limits: Limits) -> None:
    pixels = canvas.width * canvas.height
    if pixels > limits.max_pixels:
        raise ImageTooLarge(
            f"The image has {canvas.width}x{canvas.height} = {pixels} pixels, over the limit of "
            f"{limits.max_pixels} (IMAGE_MAX_PIXELS)."
        )
    if canvas.frames > 1 and canvas.frames * pixels > limits.max_animation_pixels:
        raise ImageTooLarge(
            f"The animation has {canvas.frames} frames of {canvas.width}x{canvas.height}, over the limit "
            f"of {limits.max_animation_pixels} pixels in all (IMAGE_MAX_ANIMATION_PIXELS)."
        )


def gif_canvas(src: BinaryIO) -> Canvas:
    """Walk a GIF's blocks without decoding: the canvas its frames need, and how many there are.

    The logical screen is only a claim: a frame may reach past it (up to 65535 pixels each way), and
    the decoder then enlarges the canvas, and what it disposes, to match. Every frame's extent is read
    here so that the limits can be checked before any of that is allocated. Reading stops at the
    trailer or at the first thing that is not a block, as the decoder's does.
    """
    start = src.tell()
    try:
        header = src.read(13)
        if len(header) < 13:
            return Canvas(0, 0, frames=0)
        width, height = int.from_bytes(header[6:8], "little"), int.from_bytes(header[8:10], "little")
        _skip_color_table(src, header[10])
        frames = 0
        while (introducer := src.read(1)) not in (b"", b";"):
            if introducer == b"!":
                src.read(1)  # the extension's label; its data blocks follow
            elif introducer == b",":
                descriptor = src.read(9)
                if len(descriptor) < 9:
                    break
                left, top, w, h = (int.from_bytes(descriptor[i : i + 2], "little") for i in range(0, 8, 2))
                width, height = max(width, left + w), max(height, top + h)
                frames += 1
                _skip_color_table(src, descriptor[8])
                src.read(1)  # LZW minimum code size; the image data blocks follow
            else:
                break
            _skip_data_blocks(src)
        return Canvas(width, height, frames=frames)
    finally:
        src.seek(start)


def _skip_color_table(src: BinaryIO, flags: int) -> None:
    if flags & 0x80:
        src.seek(3 << ((flags & 0x07) + 1), io.SEEK_CUR)


def _skip_data_blocks(src: BinaryIO) -> None:
    """Skip a chain of data sub-blocks (a length byte, then that many bytes) up to its empty block."""
    while (length := src.read(1)) and length[0]:
        src.seek(length[0], io.SEEK_CUR)


def frame_count(im: Image.Image, limits: Limits) -> int:
    """Frames of an animation, counted from the file's structure without decoding, and checked."""
    with broken_data_is_invalid(f"The {im.format} animation is corrupt."):
        frames = getattr(im, "n_frames", 1)
    if frames == 1:
        return 1  # a still image, which IMAGE_MAX_PIXELS bounds
    if frames > limits.max_frames:
        raise ImageTooLarge(f"The animation has {frames} frames, over the limit of {limits.max_frames}.")
    if frames * im.width * im.height > limits.max_animation_pixels:
        raise ImageTooLarge(
            f"The animation has {frames} frames of {im.width}x{im.height}, over the limit of "
            f"{limits.max_animation_pixels} pixels in all."
        )
    return frames


def decode(im: Image.Image, frame: int = 0) -> None:
    """Decode one frame."""
    with broken_data_is_invalid(f"The {im.format} image could not be decoded."):
        if frame:
            im.seek(frame)
        im.load()


@contextmanager
def broken_data_is_invalid(message: str) -> Iterator[None]:
    """Turn what Pillow's decoders raise on broken data into InvalidImage.

    They raise a zoo, all meaning the upload does not decode. Anything else (a TypeError, an
    AttributeError, running out of memory) is a bug of ours or of the machine: it is not caught, so it is
    a 500 in the log rather than a 400 blaming the user.
    """
    try:
        yield
    except Image.DecompressionBombError as exc:
        # Only with Pillow's own limit set (the app turns it off and checks its own from the header).
        raise ImageTooLarge(str(exc)) from exc
    except _DECODER_ERRORS as exc:
        raise InvalidImage(f"{message} ({exc})") from exc


# What Pillow's decoders raise on broken data: OSError (truncated, "cannot identify", codec errors),
# SyntaxError (bad chunks and markers), ValueError and EOFError (impossible values, missing data),
# RuntimeError (libavif and libheif report every decode failure so), IndexError (the GIF reader on cut
# blocks), and struct.error and zlib.error that a few plugins let through. Found by fuzzing mutated files
# of every format (tests/test_properties.py).
_DECODER_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    RuntimeError,
    IndexError,
    struct.error,
    zlib.error,
)


def read_orientation(im: Image.Image) -> int:
    if im.format in _SELF_ORIENTING:
        return 1
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:
        # A broken EXIF block is metadata we drop anyway; the pixels are still good.
        return 1
    return value if value in TRANSPOSE_FOR_ORIENTATION else 1
