"""Opening an upload safely: sniff its format, read its size and frames from the header (a GIF's every
frame: gif_blocks), check the input limits before a pixel is decoded, and decode frames, the canvas
checked again after every seek. What a decoder raises on broken data becomes InvalidImage, its size
refusals and a MemoryError ImageTooLarge; anything else is a bug of ours and is not caught. Pure
Pillow; no Django."""

from __future__ import annotations

import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import pillow_heif
from PIL import Image

from images.pixels import compat
from images.pixels.avif_boxes import avif_canvases
from images.pixels.errors import ImageTooLarge, InvalidImage, UnsupportedFormat
from images.pixels.gif_blocks import gif_canvas
from images.pixels.limits import Canvas, Limits, check_canvas

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
        # Pillow grows a GIF's canvas to fit any frame that reaches past it, allocating as it goes:
        # every frame's extent is read first, walking the blocks as its reader does (gif_blocks).
        check_canvas(gif_canvas(src), limits)
    if fmt == "AVIF":
        # libavif decodes the AV1 data at the size its sequence headers declare, not the container's:
        # every AV1 stream's frame is read first (avif_boxes), and must fit the size it is declared at.
        for canvas in avif_canvases(src, max_samples=limits.max_frames):
            check_canvas(canvas, limits)
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


def decode(im: Image.Image, limits: Limits, frame: int = 0) -> None:
    """Decode one frame, the canvas checked against `limits` after every move to another frame and
    before the pixels are loaded.

    The header checks come first (`open_image`); this one is the second line, for whatever a decoder
    finds that they did not: a GIF's reader grows its canvas as it meets frames, and allocates it on
    `load()`. Frames are stepped through one at a time, since Pillow's `seek(n)` loads every frame on
    the way.
    """
    with broken_data_is_invalid(f"The {im.format} image could not be decoded."):
        while im.tell() < frame:
            im.seek(im.tell() + 1)
            check_frame(im, limits)
        if frame < im.tell():
            im.seek(frame)  # backwards: rewinds, and reaches no canvas it has not reached already
        check_frame(im, limits)
        im.load()


def check_frame(im: Image.Image, limits: Limits) -> None:
    """The canvas the decoder is on now, checked: after a `seek()`, before a `load()`."""
    check_canvas(Canvas(im.width, im.height, frames=1), limits)


def bound_pillow(max_pixels: int) -> None:
    """Make Pillow's own decompression-bomb check refuse what our pixel limit refuses, process-wide.

    Pillow checks every size it is about to allocate against `Image.MAX_IMAGE_PIXELS`, but only warns
    between that and twice that, and raises past it. With the warning turned into an error (here, for
    this one category), Pillow refuses at our limit exactly, inside its own code (a GIF frame's canvas
    or disposal area is allocated during `seek()`, before our own check can run); `broken_data_is_invalid`
    makes either an ImageTooLarge. Never off: this is the line behind every check of ours.

    The warning filter is process state that a `warnings.catch_warnings()` block around the call undoes
    on leaving (pytest's, around Django's start-up): then Pillow refuses past twice the limit, and our
    own checks at the limit, right after its warning.
    """
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


@contextmanager
def broken_data_is_invalid(message: str) -> Iterator[None]:
    """Turn what Pillow's decoders raise on broken data into InvalidImage, and its refusals of size
    (and running out of memory while decoding) into ImageTooLarge.

    Decoders raise a zoo on broken data, all meaning the upload does not decode. A MemoryError while
    decoding means the image needs more than this server has: the client hears so (413), never a 500.
    Anything else (a TypeError, an AttributeError) is a bug of ours: it is not caught, so it is a 500 in
    the log rather than a 400 blaming the user.
    """
    try:
        yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own limit (bound_pillow), checked inside the decoder.
        raise ImageTooLarge(
            f"The image has more pixels than the limit allows (IMAGE_MAX_PIXELS): {exc}"
        ) from exc
    except MemoryError as exc:
        raise ImageTooLarge("Decoding the image needs more memory than this server has.") from exc
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
