"""Pure image work: `render()` takes a binary stream and returns the stored bytes plus the facts about them.

Nothing here or in the modules it uses knows about Django, HTTP or storage, which keeps the pipeline fast
to test and swappable (Pillow today, libvips tomorrow) in a few files: this one plans the output and
does the sizing and colour; `decoding` opens a file safely and checks what it would cost to decode;
`animation` handles frames; `encoding` writes the result; `limits` says what a request may cost; `compat`
holds the one-liners that reach into Pillow's private names.

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

import dataclasses
import io
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import BinaryIO

from PIL import Image, ImageCms

from images.pixels import attention
from images.pixels.animation import ANIMATED_INPUTS, ANIMATED_OUTPUTS, render_animation
from images.pixels.decoding import (
    TRANSPOSE_FOR_ORIENTATION,
    decode,
    frame_count,
    open_image,
    read_orientation,
)
from images.pixels.encoding import EncodeOptions, OutputFormat, Rendered, encode, has_transparency
from images.pixels.errors import ImageTooLarge
from images.pixels.limits import Limits
from images.pixels.placeholders import PREVIEW_MAX, small_version

__all__ = [
    "EncodeOptions",
    "Fit",
    "Gravity",
    "Limits",
    "OutputFormat",
    "Plan",
    "Rendered",
    "check_output",
    "plan",
    "point_in_crop",
    "render",
    "source_box",
    "stored_preview",
]


class Fit(StrEnum):
    """How the image fills the requested box."""

    CONTAIN = "contain"  # scale to fit inside, keep the aspect ratio
    COVER = "cover"  # scale and crop to exactly the box (which part: `Gravity`)
    FILL = "fill"  # stretch to exactly the box


class Gravity(StrEnum):
    """Which part of the image a `cover` crop keeps. A focal point, when the image has one, wins over all
    three: the owner's choice is what every crop keeps."""

    CENTER = "center"  # the middle
    ATTENTION = "attention"  # the most salient region (images/pixels/attention.py)
    FOCAL = "focal"  # centred on the focal point (the middle when there is none)


# A point of an image as fractions of its width and height, (0, 0) the top left.
Point = tuple[float, float]
_MIDDLE: Point = (0.5, 0.5)

# A point of the oriented (displayed) image -> the same point of the file's raw pixels, for each EXIF
# orientation (tests/test_crops.py checks them against Pillow's transposes).
_TO_RAW = {
    1: lambda x, y: (x, y),
    2: lambda x, y: (1 - x, y),
    3: lambda x, y: (1 - x, 1 - y),
    4: lambda x, y: (x, 1 - y),
    5: lambda x, y: (y, x),
    6: lambda x, y: (y, 1 - x),
    7: lambda x, y: (1 - y, 1 - x),
    8: lambda x, y: (1 - y, x),
}
_TO_ORIENTED = {
    1: lambda u, v: (u, v),
    2: lambda u, v: (1 - u, v),
    3: lambda u, v: (1 - u, 1 - v),
    4: lambda u, v: (u, 1 - v),
    5: lambda u, v: (v, u),
    6: lambda u, v: (1 - v, u),
    7: lambda u, v: (1 - v, 1 - u),
    8: lambda u, v: (v, 1 - u),
}


def point_in_crop(point: Point, crop: tuple[float, float, float, float]) -> Point:
    """`point` (fractions of a source) as fractions of the part `crop` kept of it (`Rendered.crop`), kept
    inside it; rounded to 1/10000, as focal points are."""
    left, top, right, bottom = crop
    x = (point[0] - left) / (right - left) if right > left else 0.5
    y = (point[1] - top) / (bottom - top) if bottom > top else 0.5
    return (round(min(max(x, 0.0), 1.0), 4), round(min(max(y, 0.0), 1.0), 4))


def to_raw(point: Point, orientation: int) -> Point:
    """`point` of the oriented image, in the raw frame of a file with this EXIF orientation."""
    return _TO_RAW[orientation](*point)


def to_oriented(point: Point, orientation: int) -> Point:
    """`point` of a file's raw frame, in the image as displayed (the inverse of `to_raw`)."""
    return _TO_ORIENTED[orientation](*point)


# Formats that keep their own format on output; every other accepted input becomes PNG or JPEG.
_KEPT_FORMATS = {
    "JPEG": OutputFormat.JPEG,
    "PNG": OutputFormat.PNG,
    "GIF": OutputFormat.GIF,
    "WEBP": OutputFormat.WEBP,
}

# A JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) that still leaves at least this many times
# the output size, so the last resampling step has real pixels to work with. 1.25 rather than
# `Image.thumbnail`'s 2.0: a 4000 -> 800 px resize decodes at 1/4 instead of 1/2, 1.6x faster end to end,
# still 47 dB PSNR against a full-size Lanczos resize (bench/pipeline.py).
_DRAFT_GAP = 1.25

# Other formats decode whole; `reduce()` by an integer factor first while the factor stays above this.
_REDUCING_GAP = 3.0


@dataclass(frozen=True)
class Plan:
    """The output size, and the centred region of the source it is made from, in the oriented frame."""

    size: tuple[int, int]
    region: tuple[float, float]


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
    gravity: Gravity = Gravity.CENTER,
    focal: Point | None = None,
    output_format: OutputFormat | None = None,
    limits: Limits = Limits(),
    options: EncodeOptions = EncodeOptions(),
    preview: bool = False,
) -> Rendered:
    """Decode `src`, resize it as asked, and encode it for storage.

    `output_format` None keeps JPEG, PNG, GIF and WebP as they are and turns other formats into PNG (with
    transparency) or JPEG, but an animated AVIF into WebP. Animations stay animated when stored as GIF, WebP
    or PNG (APNG).

    A `cover` crop keeps the part `gravity` says; with a `focal` point (fractions of the displayed width
    and height) it is centred on that point as far as the image allows, whatever the gravity.
    `Rendered.crop` is the part of the source kept, as fractions of its displayed size.

    `preview`: also a small version (at most 64x64) of the first frame as stored, in `Rendered.preview`,
    for images.placeholders; made from the resized pixels, so it costs a fraction of a millisecond.

    Raises UnsupportedFormat (not an image we accept), InvalidImage (does not decode) and ImageTooLarge
    (over `limits`, found from the header before decoding).
    """
    im = open_image(src, limits)
    try:
        orientation = read_orientation(im)
        swapped = orientation in (5, 6, 7, 8)
        src_w, src_h = im.size
        oriented = (src_h, src_w) if swapped else (src_w, src_h)
        p = plan(oriented, width=width, height=height, fit=fit, max_dimension=limits.max_dimension)
        output = output_format or _KEPT_FORMATS.get(im.format or "")
        if output is None and im.format == "AVIF" and frame_count(im, limits) > 1:
            # An AVIF sequence is an animation: as WebP it goes on playing, as JPEG or PNG one frame is left.
            output = OutputFormat.WEBP
        animated = output in ANIMATED_OUTPUTS and im.format in ANIMATED_INPUTS
        frames = frame_count(im, limits) if animated else 1
        check_output(p, frames=frames, output=output, limits=limits)
        # From here on, work in the file's own (raw) frame and transpose at the very end.
        step = _FrameStep(
            out_size=(p.size[1], p.size[0]) if swapped else p.size,
            region=(p.region[1], p.region[0]) if swapped else p.region,
            original=(src_w, src_h),
            orientation=orientation,
            icc_profile=im.info.get("icc_profile"),
        )
        cropped = step.region != (float(src_w), float(src_h))
        if cropped and focal is not None:
            step = dataclasses.replace(step, center=to_raw(focal, orientation))
        # Attention looks at the (first) frame's pixels, so it is placed once they are decoded.
        salient = cropped and focal is None and gravity is Gravity.ATTENTION
        if frames > 1:
            assert output is not None
            first: list[Image.Image] = []
            placed: list[_FrameStep] = []

            def apply(frame: Image.Image) -> Image.Image:
                # Every frame is cut where the first frame's subject is: a crop that moved would shake.
                if not placed:
                    placed.append(step.placed(frame) if salient else step)
                pixels = placed[0].apply(frame)
                if preview and not first:
                    first.append(small_version(pixels))
                return pixels

            animation = render_animation(im, frames, apply, output, options, limits)
            crop = placed[0].crop(orientation) if placed else step.crop(orientation)
            return dataclasses.replace(animation, preview=first[0] if first else None, crop=crop)
        _draft(im, step.out_size, step.region)
        decode(im, limits)
        if salient:
            step = step.placed(im)
        pixels = step.apply(im)
        if output is None:
            output = OutputFormat.PNG if has_transparency(pixels) else OutputFormat.JPEG
        # Before encoding, which may flatten (JPEG): the preview is flattened the same way.
        small = small_version(pixels, on_white=output is OutputFormat.JPEG) if preview else None
        data = encode(pixels, output, options)
        return Rendered(
            data=data,
            format=output,
            width=pixels.width,
            height=pixels.height,
            preview=small,
            crop=step.crop(orientation),
        )
    except MemoryError as exc:
        # Within every limit, and still more than this server has: the image is too large for it here,
        # which the client should hear (413) rather than a 500.
        raise ImageTooLarge("Processing the image needs more memory than this server has.") from exc
    finally:
        im.close()


def stored_preview(src: BinaryIO, limits: Limits = Limits()) -> Image.Image:
    """A small version (at most 64x64) of the first frame of a stored file, read once.

    For files this pipeline wrote: already oriented, in sRGB, without metadata. A JPEG decodes at the
    smallest DCT scale that still covers the small version. Raises what `render` raises for a bad file.
    """
    im = open_image(src, limits)
    try:
        scale = min(PREVIEW_MAX / im.width, PREVIEW_MAX / im.height, 1.0)
        _draft(im, (math.ceil(im.width * scale), math.ceil(im.height * scale)), (im.width, im.height))
        decode(im, limits)
        return small_version(_resampleable(im))
    finally:
        im.close()


@dataclass(frozen=True)
class _FrameStep:
    """What is done to every decoded frame: resample the planned region, orient, convert to sRGB.

    `center`: where the region is centred, as fractions of the raw frame (kept inside the image)."""

    out_size: tuple[int, int]
    region: tuple[float, float]
    original: tuple[int, int]
    orientation: int
    icc_profile: bytes | None
    center: Point = _MIDDLE

    def placed(self, im: Image.Image) -> _FrameStep:
        """This step with its region centred on the most salient part of `im` (a decoded frame)."""
        width, height = im.size
        crop = (self.region[0] * width / self.original[0], self.region[1] * height / self.original[1])
        left, top, right, bottom = attention.salient_box(_resampleable(im), crop)
        return dataclasses.replace(self, center=((left + right) / 2 / width, (top + bottom) / 2 / height))

    def crop(self, orientation: int) -> tuple[float, float, float, float]:
        """The part of the source kept, as fractions of the displayed (oriented) image."""
        left, top, right, bottom = source_box(
            (1.0, 1.0), original=self.original, region=self.region, center=self.center
        )
        (x0, y0), (x1, y1) = to_oriented((left, top), orientation), to_oriented((right, bottom), orientation)
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

    def apply(self, im: Image.Image) -> Image.Image:
        pixels = _resample(
            _resampleable(im), self.out_size, self.region, original=self.original, center=self.center
        )
        if self.orientation in TRANSPOSE_FOR_ORIENTATION:
            pixels = pixels.transpose(TRANSPOSE_FOR_ORIENTATION[self.orientation])
        return _to_srgb(pixels, self.icc_profile)


def _clamp(value: int, maximum: int) -> int:
    return max(1, min(value, maximum))


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
    decoded: tuple[float, float],
    *,
    original: tuple[int, int],
    region: tuple[float, float],
    center: Point = _MIDDLE,
) -> tuple[float, float, float, float]:
    """The `region` of an image of size `original` centred on `center` (fractions of the image) as far
    as the image allows, in the pixels of its decoded size: the box always lies inside the image and so
    always holds `center`.

    A JPEG draft decodes at a size rounded up from 1/2, 1/4 or 1/8 of the original, so the region is
    scaled to match. Floating point can put a full region a hair outside the image (2021 * (1011 /
    2021) is 1011.0000000000001), which Pillow refuses: the box is clamped to the image.
    """
    width, height = decoded
    if region == original:
        return (0.0, 0.0, float(width), float(height))
    crop_w = min(region[0] * width / original[0], width)
    crop_h = min(region[1] * height / original[1], height)
    if center == _MIDDLE:
        left, top = max((width - crop_w) / 2, 0.0), max((height - crop_h) / 2, 0.0)
    else:
        left = min(max(center[0] * width - crop_w / 2, 0.0), width - crop_w)
        top = min(max(center[1] * height - crop_h / 2, 0.0), height - crop_h)
    return (left, top, min(left + crop_w, width), min(top + crop_h, height))


def _resample(
    im: Image.Image,
    out_size: tuple[int, int],
    region: tuple[float, float],
    *,
    original: tuple[int, int],
    center: Point = _MIDDLE,
) -> Image.Image:
    box = source_box(im.size, original=original, region=region, center=center)
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
