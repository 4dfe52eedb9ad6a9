"""Pure image work: sniff the format, check limits, orient, resize, encode.

Nothing here knows about Django, HTTP or storage: `render()` takes a binary stream and returns bytes plus the
facts about them. That keeps the pipeline fast to test and swappable in one file.

The order of operations is what makes it fast and bounded in memory:
1. sniff the format from the first bytes and open only with that decoder (no EPS, PDF or SVG ever);
2. check the pixel limit from the header, before anything is decoded (a decompression bomb costs nothing);
3. plan the output in the *oriented* frame (a portrait phone photo measures as portrait);
4. for JPEG, decode at a reduced scale in the DCT domain (`draft`), just large enough for a clean resample;
5. resample the small image, then apply the EXIF orientation (cheap at the output size);
6. convert to sRGB and to the pixel mode the output format needs, and encode with nothing of the input's
   metadata (EXIF, XMP, GPS, comments) carried over.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, BinaryIO

import pillow_heif
from PIL import Image, ImageChops, ImageCms
from PIL.PngImagePlugin import Blend, Disposal

from images.exceptions import ImageTooLarge, InvalidImage, UnsupportedFormat

pillow_heif.register_heif_opener()

# Our own limit is checked from the header before decoding (see `_open`); Pillow's global bomb check
# would only duplicate it with a different number.
Image.MAX_IMAGE_PIXELS = None


class Fit(StrEnum):
    """How the image fills the requested box."""

    CONTAIN = "contain"  # scale to fit inside, keep the aspect ratio
    COVER = "cover"  # scale and centre-crop to exactly the box
    FILL = "fill"  # stretch to exactly the box


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


# Formats that keep their own format on output; every other accepted input becomes PNG or JPEG.
_KEPT_FORMATS = {
    "JPEG": OutputFormat.JPEG,
    "PNG": OutputFormat.PNG,
    "GIF": OutputFormat.GIF,
    "WEBP": OutputFormat.WEBP,
}

# Output formats that can hold an animation (PNG as APNG); an animated source stored in another keeps its
# first frame.
_ANIMATED_OUTPUTS = {OutputFormat.GIF, OutputFormat.WEBP, OutputFormat.PNG}
# Formats whose frames are an animation. A TIFF's pages, an MPO's views or a HEIF file's images are
# several pictures, of sizes of their own: the first is the image.
_ANIMATED_INPUTS = {"GIF", "WEBP", "PNG", "AVIF"}

# Decoders that apply the orientation themselves while loading (and report the oriented size).
_SELF_ORIENTING = {"TIFF", "HEIF"}

# EXIF orientation -> the transposition that makes the image upright.
_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ORIENTATION_TAG = 0x0112

# A JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) that still leaves at least this many times
# the output size, so the last resampling step has real pixels to work with. 1.25 rather than
# `Image.thumbnail`'s 2.0: a 4000 -> 800 px resize decodes at 1/4 instead of 1/2, 1.6x faster end to end,
# still 47 dB PSNR against a full-size Lanczos resize (bench/pipeline.py).
_DRAFT_GAP = 1.25
# Other formats decode whole; `reduce()` by an integer factor first while the factor stays above this.
_REDUCING_GAP = 3.0

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


@dataclass(frozen=True)
class Limits:
    """What a request may cost, on the way in and on the way out; all checked before decoding."""

    # Pixels of one frame: the source's canvas and the output alike.
    max_pixels: int = 120_000_000
    max_dimension: int = 10_000
    max_frames: int = 500
    # Pixels across all frames of an animation: frames x canvas (decoded one at a time) and frames x
    # output (held together until encoded).
    max_animation_pixels: int = 100_000_000
    # Pixels across all frames of an output larger than the part of the source it is made from. A
    # shrink's work is bounded by what was sent; an enlargement makes work out of a few bytes.
    max_enlarged_pixels: int = 16_000_000
    # Pixels of an AVIF output: its encoder takes about 30 bytes per pixel and 0.1 s of CPU per megapixel.
    max_avif_pixels: int = 16_000_000


@dataclass(frozen=True)
class EncodeOptions:
    jpeg_quality: int = 85
    webp_quality: int = 80
    avif_quality: int = 65


@dataclass(frozen=True)
class Rendered:
    """An encoded output image and the facts about it."""

    data: bytes
    format: OutputFormat
    width: int
    height: int


@dataclass(frozen=True)
class Plan:
    """The output size, and the centred region of the source it is made from, in the oriented frame."""

    size: tuple[int, int]
    region: tuple[float, float]


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


def plan(
    size: tuple[int, int], *, width: int | None, height: int | None, fit: Fit, max_dimension: int
) -> Plan:
    """Work out the output size and source region for `size` (already in the oriented frame).

    With one of width/height the other follows the aspect ratio (any fit); with neither the size is kept.
    No side of the output is ever 0 or larger than `max_dimension`.
    """
    src_w, src_h = size
    full = (float(src_w), float(src_h))
    if width and height and fit is Fit.FILL:
        return Plan(size=(width, height), region=full)
    if width and height and fit is Fit.COVER:
        # Crop the source to the box's aspect ratio around the centre, then scale that region.
        if src_w * height > src_h * width:
            region = (src_h * width / height, float(src_h))
        else:
            region = (float(src_w), src_w * height / width)
        return Plan(size=(width, height), region=region)

    box_w = width or (max_dimension if height else src_w)
    box_h = height or (max_dimension if width else src_h)
    scale = min(box_w / src_w, box_h / src_h, max_dimension / src_w, max_dimension / src_h)
    out = (_clamp(round(src_w * scale), max_dimension), _clamp(round(src_h * scale), max_dimension))
    return Plan(size=out, region=full)


def check_output(p: Plan, *, frames: int, output: OutputFormat | None, limits: Limits) -> None:
    """Refuse, before anything is decoded, an output that would cost more than `limits` allow.

    The input's limits do not bound the work: 120 frames of 16x16 asked at 4000x4000 are 1.9 billion
    output pixels from 5 KB. Raises ImageTooLarge naming the limit.
    """
    width, height = p.size
    pixels = width * height
    if pixels > limits.max_pixels:
        raise ImageTooLarge(
            f"The output would have {width}x{height} = {pixels} pixels, over the limit of "
            f"{limits.max_pixels} (IMAGE_MAX_PIXELS)."
        )
    if output is OutputFormat.AVIF and pixels > limits.max_avif_pixels:
        raise ImageTooLarge(
            f"An AVIF of {width}x{height} = {pixels} pixels is over the limit of {limits.max_avif_pixels} "
            "(IMAGE_MAX_AVIF_PIXELS): ask for a smaller size or another format."
        )
    total = frames * pixels
    if frames > 1 and total > limits.max_animation_pixels:
        raise ImageTooLarge(
            f"The output would have {frames} frames of {width}x{height} = {total} pixels in all, over the "
            f"limit of {limits.max_animation_pixels} (IMAGE_MAX_ANIMATION_PIXELS)."
        )
    if pixels > p.region[0] * p.region[1] and total > limits.max_enlarged_pixels:
        raise ImageTooLarge(
            f"Enlarging to {width}x{height}"
            + (f" in {frames} frames" if frames > 1 else "")
            + f" would make {total} pixels, over the limit of {limits.max_enlarged_pixels} for an "
            "enlarged output (IMAGE_MAX_ENLARGED_PIXELS). Ask for a smaller size."
        )


def render(
    src: BinaryIO,
    *,
    width: int | None = None,
    height: int | None = None,
    fit: Fit = Fit.CONTAIN,
    output_format: OutputFormat | None = None,
    limits: Limits = Limits(),
    options: EncodeOptions = EncodeOptions(),
) -> Rendered:
    """Decode `src`, resize it as asked, and encode it for storage.

    `output_format` None keeps JPEG, PNG, GIF and WebP as they are and turns other formats into PNG (with
    transparency) or JPEG, but an animated AVIF into WebP. Animations stay animated when stored as GIF, WebP
    or PNG (APNG).

    Raises UnsupportedFormat (not an image we accept), InvalidImage (does not decode) and ImageTooLarge
    (over `limits`, found from the header before decoding).
    """
    im = _open(src, limits)
    try:
        orientation = _orientation(im)
        swapped = orientation in (5, 6, 7, 8)
        src_w, src_h = im.size
        oriented = (src_h, src_w) if swapped else (src_w, src_h)
        p = plan(oriented, width=width, height=height, fit=fit, max_dimension=limits.max_dimension)
        output = output_format or _KEPT_FORMATS.get(im.format or "")
        if output is None and im.format == "AVIF" and _frame_count(im, limits) > 1:
            # An AVIF sequence is an animation: as WebP it goes on playing, as JPEG or PNG one frame is left.
            output = OutputFormat.WEBP
        animated = output in _ANIMATED_OUTPUTS and im.format in _ANIMATED_INPUTS
        frames = _frame_count(im, limits) if animated else 1
        check_output(p, frames=frames, output=output, limits=limits)
        # From here on, work in the file's own (raw) frame and transpose at the very end.
        step = _FrameStep(
            out_size=(p.size[1], p.size[0]) if swapped else p.size,
            region=(p.region[1], p.region[0]) if swapped else p.region,
            original=(src_w, src_h),
            orientation=orientation,
            icc_profile=im.info.get("icc_profile"),
        )
        if frames > 1:
            assert output is not None
            return _render_animation(im, frames, step, output, options)
        _draft(im, step.out_size, step.region)
        _decode(im)
        pixels = step.apply(im)
        if output is None:
            output = OutputFormat.PNG if _has_transparency(pixels) else OutputFormat.JPEG
        data = _encode(pixels, output, options)
        return Rendered(data=data, format=output, width=pixels.width, height=pixels.height)
    finally:
        im.close()


@dataclass(frozen=True)
class _FrameStep:
    """What is done to every decoded frame: resample the planned region, orient, convert to sRGB."""

    out_size: tuple[int, int]
    region: tuple[float, float]
    original: tuple[int, int]
    orientation: int
    icc_profile: bytes | None

    def apply(self, im: Image.Image) -> Image.Image:
        pixels = _resample(_resampleable(im), self.out_size, self.region, original=self.original)
        if self.orientation in _TRANSPOSE_FOR_ORIENTATION:
            pixels = pixels.transpose(_TRANSPOSE_FOR_ORIENTATION[self.orientation])
        return _to_srgb(pixels, self.icc_profile)


@dataclass
class _Frame:
    pixels: Image.Image
    duration: int
    disposal: int


def _render_animation(
    im: Image.Image, frames: int, step: _FrameStep, output: OutputFormat, options: EncodeOptions
) -> Rendered:
    """Resize every frame; keep durations, the loop count and (GIF) disposal.

    The resized frames are held together until they are encoded: an APNG is stored opaque only when
    every frame is, a WebP is labelled transparent when any frame is, and the encoders want them all at
    once anyway (Pillow's PNG and WebP writers list them before they start; its GIF writer keeps a
    palette copy of each). That is 4 bytes per output pixel of every frame, and the APNG writer's own
    copies as many again, which IMAGE_MAX_ANIMATION_PIXELS bounds.
    """
    loop = im.info.get("loop")
    canvases = _apng_canvases(im, frames) if im.format == "PNG" else _canvases(im, frames)
    timeline: list[_Frame] = []
    for canvas in canvases:
        # Whole composited canvases; RGBA keeps each one's transparency through resizing.
        frame = _Frame(
            step.apply(canvas), int(im.info.get("duration", 100)), getattr(im, "disposal_method", 0)
        )
        if output is OutputFormat.GIF and timeline and _same_pixels(timeline[-1].pixels, frame.pixels):
            # Pillow's GIF writer merges such frames itself, and when one is left it trips over the list
            # of disposals meant for several.
            timeline[-1].duration += frame.duration
            continue
        timeline.append(frame)
    if not timeline:
        raise InvalidImage(f"The {im.format} animation has no frames.")
    if len(timeline) == 1:
        # Every frame came out the same: a still image.
        still = timeline[0].pixels
        return Rendered(
            _encode(still, output, options), format=output, width=still.width, height=still.height
        )

    transparent = output is not OutputFormat.GIF and any(_has_transparency(f.pixels) for f in timeline)
    if output is OutputFormat.PNG and not transparent:
        for frame in timeline:
            frame.pixels = frame.pixels.convert("RGB")  # a quarter fewer bytes to compress
    first = timeline[0].pixels
    first.info = {}
    size = (first.width, first.height)
    params: dict[str, Any] = {
        "save_all": True,
        "append_images": [frame.pixels for frame in timeline[1:]],
        "duration": [frame.duration for frame in timeline],
    }
    if (plays := _loop_count(loop, source=im.format, output=output)) is not None:
        params["loop"] = plays
    if output is OutputFormat.GIF:
        disposals = [frame.disposal for frame in timeline]
        uniform = len(set(disposals)) == 1
        params["disposal"] = disposals[0] if uniform else disposals
    pixels = size[0] * size[1] * len(timeline)
    if output is OutputFormat.GIF:
        data = _save(first, "GIF", optimize=True, **params)
    elif output is OutputFormat.PNG:
        # Every frame is a whole canvas: each replaces the one before (APNG's default disposal and blend).
        data = _save(first, "PNG", **_png_compression(pixels), **params)
    else:
        data = _save(first, "WEBP", quality=options.webp_quality, method=4, **params)
        if transparent:
            data = _with_webp_alpha_flag(data)
    return Rendered(data=data, format=output, width=size[0], height=size[1])


def _same_pixels(a: Image.Image, b: Image.Image) -> bool:
    return a.mode == b.mode and ImageChops.difference(a, b).getbbox(alpha_only=False) is None


# zlib's level 9 (what Pillow's `optimize` asks for) takes up to 13 times as long as level 6 for a few
# percent, and an enlarged, smooth image is its worst case: 2.6 s per megapixel against 0.25 s. It is
# worth it only on small outputs.
_PNG_LEVEL_9_UP_TO = 1_000_000


def _png_compression(pixels: int) -> dict[str, Any]:
    return {"optimize": True} if pixels <= _PNG_LEVEL_9_UP_TO else {"compress_level": 6}


def _loop_count(loop: int | None, *, source: str | None, output: OutputFormat) -> int | None:
    """The source's loop count in the output's terms; None leaves it out.

    A GIF counts repeats after the first play, and one without a count plays once. WebP and APNG count
    plays (0 is forever) and, without a count, loop forever.
    """
    if source != "GIF" or output is OutputFormat.GIF:
        return loop
    if loop is None:
        return 1
    return loop + 1 if loop else 0


def _canvases(im: Image.Image, frames: int) -> Iterator[Image.Image]:
    """Every frame of a GIF, WebP or AVIF animation, as Pillow composites it onto the canvas, in RGBA."""
    for index in range(frames):
        _decode(im, frame=index)
        yield im.convert("RGBA")


def _apng_canvases(im: Image.Image, frames: int) -> Iterator[Image.Image]:
    """Every frame of an APNG composited onto its canvas as browsers do, in RGBA.

    Pillow blends a frame "over" the canvas with `paste(mask=alpha)`, which is not the over operator:
    semi-transparent pixels (anti-aliased edges) come out darker and more transparent than they are. So
    Pillow is asked for each frame's own pixels only (blend "source", through the attribute its loader
    reads), and they are composited here, with the frame's disposal applied before the next one.
    """
    canvas = Image.new("RGBA", im.size)
    # A still image for viewers without animation may come first; the animation does not show it.
    first = 1 if im.info.get("default_image") else 0
    dispose: tuple[tuple[int, int], Image.Image] | None = None  # what the last frame's box goes back to
    for index in range(frames):
        with _broken_data_is_invalid("The PNG animation could not be decoded."):
            if index:
                im.seek(index)
            box = tuple(int(v) for v in im.info.get("bbox", (0, 0, *im.size)))
            blend, disposal = im.info.get("blend"), im.info.get("disposal")
            im.blend_op = Blend.OP_SOURCE
            im.load()
        if index < first:
            continue
        if dispose is not None:
            canvas.paste(dispose[1], dispose[0])
        pixels = im.convert("RGBA").crop(box)
        if disposal == Disposal.OP_PREVIOUS:
            dispose = (box[:2], canvas.crop(box))
        elif disposal == Disposal.OP_BACKGROUND:
            dispose = (box[:2], Image.new("RGBA", pixels.size))
        else:
            dispose = None
        if blend == Blend.OP_OVER:
            canvas.alpha_composite(pixels, box[:2])
        else:
            canvas.paste(pixels, box[:2])
        yield canvas.copy()


def _with_webp_alpha_flag(data: bytes) -> bytes:
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


def _clamp(value: int, maximum: int) -> int:
    return max(1, min(value, maximum))


def _open(src: BinaryIO, limits: Limits) -> Image.Image:
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
        _check_canvas(gif_canvas(src), limits)
    with _broken_data_is_invalid(f"The file looks like {fmt} but its header is unreadable."):
        im = Image.open(src, formats=[fmt])
        width, height = im.size
    if width < 1 or height < 1:
        im.close()
        raise InvalidImage("The image has no pixels.")
    try:
        _check_canvas(Canvas(width, height, frames=1), limits)
    except ImageTooLarge:
        im.close()
        raise
    if im.format == "WEBP" and im.mode == "RGB" and getattr(im, "is_animated", False):
        _read_canvas_alpha(im)
    return im


@dataclass(frozen=True)
class Canvas:
    """The canvas an image is decoded on, and how many frames are drawn on it."""

    width: int
    height: int
    frames: int


def _check_canvas(canvas: Canvas, limits: Limits) -> None:
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


def _read_canvas_alpha(im: Image.Image) -> None:
    """Decode an animated WebP with its alpha, which Pillow drops when the header says there is none.

    Frames are drawn on a canvas that starts transparent and is cleared to transparent between frames, so
    an animation of opaque frames smaller than the canvas (what libwebp writes for a transparent sticker)
    is transparent around them, yet its header's alpha flag, which says whether any *frame* has alpha,
    is off. Pillow then reads the RGBA canvas libwebp composites as RGBX and the transparency turns black.
    Its decoder takes the mode from these two attributes (Pillow 13; tests/test_pipeline.py notices if
    that changes).
    """
    im.rawmode = "RGBA"
    im._mode = "RGBA"


def _frame_count(im: Image.Image, limits: Limits) -> int:
    """Frames of an animation, counted from the file's structure without decoding, and checked."""
    with _broken_data_is_invalid(f"The {im.format} animation is corrupt."):
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


def _decode(im: Image.Image, frame: int = 0) -> None:
    """Decode one frame."""
    with _broken_data_is_invalid(f"The {im.format} image could not be decoded."):
        if frame:
            im.seek(frame)
        im.load()


@contextmanager
def _broken_data_is_invalid(message: str) -> Iterator[None]:
    """Turn what Pillow raises on broken data into InvalidImage.

    Its decoders raise a zoo (OSError, SyntaxError, ValueError, EOFError, struct.error...): all of them
    mean the upload does not decode. Running out of memory does not, and is not caught.
    """
    try:
        yield
    except MemoryError:
        raise
    except Exception as exc:
        raise InvalidImage(f"{message} ({exc})") from exc


def _orientation(im: Image.Image) -> int:
    if im.format in _SELF_ORIENTING:
        return 1
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:
        # A broken EXIF block is metadata we drop anyway; the pixels are still good.
        return 1
    return value if value in _TRANSPOSE_FOR_ORIENTATION else 1


def _draft(im: Image.Image, out_size: tuple[int, int], region: tuple[float, float]) -> None:
    """Ask a JPEG decoder for the smallest DCT scale that still leaves room for a clean resample."""
    if im.format != "JPEG":
        return
    scale = max(out_size[0] / region[0], out_size[1] / region[1])
    wanted = (
        math.ceil(im.width * scale * _DRAFT_GAP),
        math.ceil(im.height * scale * _DRAFT_GAP),
    )
    if wanted[0] < im.width and wanted[1] < im.height:
        im.draft(None, wanted)


def _resampleable(im: Image.Image) -> Image.Image:
    """Convert modes that cannot be resampled faithfully (palette, 1-bit, 16-bit, float)."""
    mode = im.mode
    if mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB")
    if mode == "PA":
        return im.convert("RGBA")
    if mode == "1":
        return im.convert("L")
    if mode.startswith("I;16") or mode == "I":
        # 16-bit samples: scale to 8 bits. A plain convert("L") clips, and everything turns white.
        return im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if mode == "F":
        return im.convert("L")
    if mode in ("La", "RGBa"):
        return im.convert(mode.upper())
    if mode not in ("L", "LA", "RGB", "RGBA", "CMYK"):
        return im.convert("RGBA" if "A" in im.getbands() else "RGB")
    return im


def source_box(
    decoded: tuple[int, int], *, original: tuple[int, int], region: tuple[float, float]
) -> tuple[float, float, float, float]:
    """The centred `region` of an image of size `original`, in the pixels of its decoded size.

    A JPEG draft decodes at a size rounded up from 1/2, 1/4 or 1/8 of the original, so the region is
    scaled to match. Floating point can put a full region a hair outside the image (2021 * (1011 /
    2021) is 1011.0000000000001), which Pillow refuses: the box is clamped to the image.
    """
    width, height = decoded
    if region == original:
        return (0.0, 0.0, float(width), float(height))
    crop_w = min(region[0] * width / original[0], width)
    crop_h = min(region[1] * height / original[1], height)
    left, top = max((width - crop_w) / 2, 0.0), max((height - crop_h) / 2, 0.0)
    return (left, top, min(left + crop_w, width), min(top + crop_h, height))


def _resample(
    im: Image.Image,
    out_size: tuple[int, int],
    region: tuple[float, float],
    *,
    original: tuple[int, int],
) -> Image.Image:
    box = source_box(im.size, original=original, region=region)
    if out_size == im.size and box == (0, 0, im.width, im.height):
        return im
    # After a DCT-domain draft the DCT has already filtered the fine detail away: bicubic is then as good
    # to the eye as Lanczos (43 dB against a full-size Lanczos resize) and cheaper.
    drafted = im.size != original
    resample = Image.Resampling.BICUBIC if drafted else Image.Resampling.LANCZOS
    return im.resize(out_size, resample, box=box, reducing_gap=_REDUCING_GAP)


_SRGB = ImageCms.createProfile("sRGB")


def _to_srgb(im: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Convert to sRGB (the colour space browsers assume for untagged images) and drop the profile."""
    if im.mode == "CMYK" or (icc_profile and im.mode in ("RGB", "RGBA")):
        if icc_profile:
            try:
                source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
                out_mode = "RGBA" if im.mode == "RGBA" else "RGB"
                converted = ImageCms.profileToProfile(im, source, _SRGB, outputMode=out_mode)
                if converted is not None:
                    return converted
            except (ImageCms.PyCMSError, OSError, ValueError):
                pass  # An unusable profile: fall back to the pixels as they are.
        if im.mode == "CMYK":
            return im.convert("RGB")
    return im


def _has_transparency(im: Image.Image) -> bool:
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


def _encode(im: Image.Image, output: OutputFormat, options: EncodeOptions) -> bytes:
    # Metadata never reaches the output: encoders fall back to `im.info` (a GIF comment, EXIF, XMP)
    # for anything not passed explicitly, so start from an empty one.
    im.info = {}
    if output is OutputFormat.JPEG:
        im = _flatten(im)
        plain = {"quality": options.jpeg_quality, "subsampling": "4:2:0"}
        return _optimized(im, "JPEG", {**plain, "optimize": True, "progressive": True}, plain)
    if output is OutputFormat.PNG:
        return _optimized(im, "PNG", _png_compression(im.width * im.height), {})
    if output in (OutputFormat.WEBP, OutputFormat.AVIF):
        if im.mode != "RGB":
            # An alpha channel that hides nothing would still be encoded.
            im = im.convert("RGBA" if _has_transparency(im) else "RGB")
        if output is OutputFormat.WEBP:
            return _save(im, "WEBP", quality=options.webp_quality, method=4)
        return _save(im, "AVIF", quality=options.avif_quality)
    if im.mode == "LA":
        im = im.convert("RGBA")
    return _optimized(im, "GIF", {"optimize": True}, {})


# Below this size, an optimized encoding's extra headers (progressive scans, say) can outweigh what it
# saves, so the plain encoding is tried too and the smaller kept: the stored file is never larger than a
# plain save of the same pixels. Above it, the optimized encoding is always the smaller one.
_TRY_PLAIN_BELOW = 32 * 1024


def _optimized(im: Image.Image, fmt: str, optimized: dict[str, Any], plain: dict[str, Any]) -> bytes:
    data = _save(im, fmt, **optimized)
    if len(data) < _TRY_PLAIN_BELOW:
        data = min(data, _save(im, fmt, **plain), key=len)
    return data


def _save(im: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **params)
    return buffer.getvalue()
