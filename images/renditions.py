"""Renditions: an image at the size and in the format a screen needs, rendered once from its stored file.

A request (`width`, `height` or `preset`, and `format`) is resolved against the image's row alone, with no
storage call, into a `Spec`: the concrete size and output format and the rendition's canonical name,
`renditions/<sha256 of the stored file>/<key>.<recipe>.<ext>` (`w320.1f0c9a2b7d.webp`,
`thumb.8e41d07c2a.avif`).
Sizes are rounded up to a fixed ladder and never exceed the stored image, so an image has a few dozen
possible renditions, not millions; identical files share them, and every rendition of a file is one prefix.
The recipe is a short digest of what made the file besides its source (the resolved size and fit, so a
preset's definition; for a crop its gravity and the image's focal point; the output format and the
encoder settings that shape its bytes): a changed setting
gives new names and ETags instead of serving the old file for a year, and `reconcile_storage` finds the
files no current name points at (`is_current`).

The first request renders it with `processing.render` (the upload's limits, encoder settings and decode
slot) and stores it; later requests stream the stored file. A rendition file is whole or absent (the
storage writes atomically), and concurrent first requests each answer the bytes they rendered, which are
identical.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NoReturn

from django.conf import settings
from django.core.files.base import File

from api.throttling import RenderCharge, RenderCost
from images import locks, pipeline, render_costs, storage
from images.exceptions import (
    ImageTooLarge,
    InvalidImage,
    RenditionTooLarge,
    StorageUnavailable,
    UnsupportedFormat,
)
from images.formats import Fit, Gravity, OutputFormat
from images.models import Image
from images.pipeline import EncodeOptions
from images.selectors import image_file_in_use

logger = logging.getLogger(__name__)

# Every rendition lives under this prefix, then a folder per stored source file (its SHA-256).
PREFIX = storage.RENDITIONS_PREFIX
# Part of every recipe: raise it when a change of the code changes the pixels or bytes a rendition gets
# (a new resampling filter, say), so that stored renditions are made again under new names.
RECIPE_VERSION = 1
# Hex digits of the recipe's SHA-256 in a name: 40 bits, against the handful of recipes one key ever has.
RECIPE_LENGTH = 10


def _ladder() -> tuple[int, ...]:
    """16, then 20 * 2^(k/5) (15 % apart, through 20, 40, 80, 160, 320, 640, 1280, 2560), then 4096."""
    steps = [16]
    k = 0
    while (step := round(20 * 2 ** (k / 5))) < 4096:
        steps.append(step)
        k += 1
    return (*steps, 4096)


# The widths (and heights) a rendition may have, besides the stored image's own.
LADDER = _ladder()


class RenditionFormat(StrEnum):
    """What a client may ask for: a concrete format, or `auto` (chosen by the Accept header)."""

    AUTO = "auto"
    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    AVIF = "avif"


# Stored formats that may hold an animation or transparency: `auto` never picks AVIF or JPEG for them,
# since knowing whether they do would mean reading the file on every request. What the fallback (no
# WebP or AVIF in Accept) is, for each stored format: the nearest format that keeps what it may hold.
_FALLBACK = {
    "jpeg": OutputFormat.JPEG,
    "png": OutputFormat.PNG,
    "gif": OutputFormat.GIF,
    "webp": OutputFormat.PNG,  # transparency, and an animation as APNG
    "avif": OutputFormat.PNG,  # a stored AVIF is a still, maybe transparent
}
_MAY_ANIMATE = {"png", "gif", "webp"}


@dataclass(frozen=True)
class Preset:
    """A named variant (`IMAGE_PRESETS`): a box, or one side, and how the image fills the box; a `cover`
    crop's gravity (None: IMAGE_DEFAULT_GRAVITY)."""

    width: int | None
    height: int | None
    fit: Fit = Fit.CONTAIN
    gravity: Gravity | None = None


# Preset names: short, lower case, and never one of the ladder's keys (`w320`, `h240`).
PRESET_NAME = re.compile(r"(?![wh][0-9]+$)[a-z][a-z0-9_-]{0,31}")


def presets_from_setting(raw: Mapping[str, Any]) -> dict[str, Preset]:
    """`IMAGE_PRESETS` (name -> {"width", "height", "fit", "gravity"}) as Presets; ValueError naming what
    is wrong."""
    if not isinstance(raw, Mapping):
        raise ValueError("an object: name -> {width, height, fit}")
    presets = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not PRESET_NAME.fullmatch(name):
            raise ValueError(f"preset name {name!r}: lower-case letters, digits, _ and -, not w<N> or h<N>")
        if not isinstance(value, Mapping) or not set(value) <= {"width", "height", "fit", "gravity"}:
            raise ValueError(f"preset {name}: an object with width, height, fit and gravity")
        sides = [value.get("width"), value.get("height")]
        if not any(sides) or not all(s is None or (type(s) is int and 1 <= s <= LADDER[-1]) for s in sides):
            raise ValueError(f"preset {name}: width and/or height, whole numbers from 1 to {LADDER[-1]}")
        fit = Fit(value.get("fit", Fit.CONTAIN.value))
        if fit is not Fit.CONTAIN and None in sides:
            raise ValueError(f"preset {name}: fit {fit} needs both width and height")
        gravity = None
        if "gravity" in value:
            if value["gravity"] not in Gravity.__members__.values():
                raise ValueError(f"preset {name}: gravity is one of {', '.join(Gravity)}")
            if fit is not Fit.COVER:
                raise ValueError(f"preset {name}: gravity is for fit cover (a crop)")
            gravity = Gravity(value["gravity"])
        presets[name] = Preset(width=sides[0], height=sides[1], fit=fit, gravity=gravity)
    return presets


# IMAGE_PRESETS as last parsed: (the setting's value then, its presets). Every rendition request reads the
# presets (the query's check, then resolve); parsing them each time was a visible part of a stored one.
_parsed_presets: tuple[Any, dict[str, Preset]] | None = None


def configured_presets() -> dict[str, Preset]:
    """IMAGE_PRESETS as Presets, parsed again only when the setting's value changes (tests change it)."""
    global _parsed_presets
    raw = settings.IMAGE_PRESETS
    parsed = _parsed_presets
    if parsed is None or parsed[0] != raw:
        parsed = (copy.deepcopy(raw), presets_from_setting(raw))
        _parsed_presets = parsed
    return dict(parsed[1])


@dataclass(frozen=True)
class Source:
    """What a rendition is made from: the stored file, as its row describes it (no storage call)."""

    name: str  # images/ab/cd/<sha256>.<ext>
    width: int
    height: int
    format: str  # an OutputFormat value
    # The image's focal point (fractions of its width and height), which its crops keep: images that share
    # a stored file may have different ones, so it is part of a crop's name.
    focal: tuple[float, float] | None = None

    @property
    def digest(self) -> str:
        return storage.digest_of(self.name)


@dataclass(frozen=True)
class Spec:
    """A resolved request: what to render, under which name, and how to answer."""

    key: str  # w320, h240, a preset's name
    width: int | None  # what processing.render is asked for
    height: int | None
    fit: Fit
    output: OutputFormat
    size: tuple[int, int]  # the rendition's size (as planned; the pipeline rounds the same way)
    negotiated: bool  # the format came from Accept: the answer varies with it
    original: bool  # the stored file itself answers (same size and format)
    recipe: str = ""  # what made the file besides its source (`recipe_of`); empty for the original
    gravity: Gravity = Gravity.CENTER  # a `cover` crop's: what processing.render is asked for
    focal: tuple[float, float] | None = None  # a `cover` crop's: the image's focal point

    def name(self, source: Source) -> str:
        if self.original:
            return source.name
        # A private image's renditions live under the private prefix, as its file does.
        folder = storage.renditions_prefix_of(source.name)
        return f"{folder}{self.key}.{self.recipe}.{self.output.extension}"

    def etag(self, source: Source) -> str:
        """Strong, from the name: a rendition's name says what it is, as a stored file's hash does."""
        if self.original:
            return f'"{source.digest}"'
        return f'"{source.digest}.{self.key}.{self.recipe}.{self.output.extension}"'


def recipe_of(
    *,
    width: int | None,
    height: int | None,
    fit: Fit,
    size: tuple[int, int],
    output: OutputFormat,
    gravity: Gravity = Gravity.CENTER,
    focal: tuple[float, float] | None = None,
) -> str:
    """A short digest of how a rendition is made from its source under the current settings: what the
    pipeline is asked for (for a crop, where it is placed: the focal point, or attention), and the encoder
    settings that shape `output`'s bytes (`IMAGE_JPEG_QUALITY` for JPEG, `IMAGE_AVIF_QUALITY` and
    `IMAGE_AVIF_SPEED` for AVIF…). The limits are left out: they refuse work, they never change what is
    made."""
    return _recipe_digest(
        width, height, fit, size, output, pipeline.encode_options(), _placement(fit, gravity, focal)
    )


def _placement(fit: Fit, gravity: Gravity, focal: tuple[float, float] | None) -> tuple[Any, ...] | None:
    """What places a crop, for its recipe; None for a centred one (and anything but a crop), so the names
    of centred crops made before gravity existed stay current."""
    if fit is not Fit.COVER:
        return None
    if focal is not None:
        return ("focal", *focal)
    if gravity is Gravity.ATTENTION:
        return ("attention",)
    return None


@functools.lru_cache(maxsize=4096)
def _recipe_digest(
    width: int | None,
    height: int | None,
    fit: Fit,
    size: tuple[int, int],
    output: OutputFormat,
    options: EncodeOptions,
    placement: tuple[Any, ...] | None,
) -> str:
    # Every request for a rendition asks: cached, as a stored rendition's whole answer takes about 1 ms.
    facts = [RECIPE_VERSION, width, height, fit.value, size, output.value, options.shaping(output)]
    if placement is not None:
        facts.append(placement)
    text = json.dumps(facts, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:RECIPE_LENGTH]


def ladder_step(asked: int, stored: int) -> int:
    """`asked` rounded up to the ladder, never beyond `stored` (past the ladder's top: `stored`)."""
    for step in LADDER:
        if step >= asked:
            return min(step, stored)
    return stored


def resolve(
    source: Source,
    *,
    width: int | None = None,
    height: int | None = None,
    preset: str | None = None,
    output_format: RenditionFormat | None = None,
    accept: str = "",
    presets: Mapping[str, Preset] | None = None,
) -> Spec:
    """The rendition a request asks for, from the row alone. At most one of width, height and preset
    (the input serializer checks); a preset name must be in `presets` (KeyError otherwise).

    `output_format` None is `auto`, except that a request with no parameter at all is the stored file.
    """
    sw, sh = source.width, source.height
    if width is None and height is None and preset is None and output_format is None:
        key = f"w{sw}"
        stored = OutputFormat(source.format)
        return Spec(key, None, None, Fit.CONTAIN, stored, (sw, sh), negotiated=False, original=True)
    key, fit, gravity, ask_w, ask_h, size = _sized(
        source, width=width, height=height, preset=preset, presets=presets
    )
    asked = output_format or RenditionFormat.AUTO
    output, negotiated = negotiate(asked, accept, stored_format=source.format, size=size)
    return _spec(source, key, fit, gravity, ask_w, ask_h, size, output, negotiated=negotiated)


def _sized(
    source: Source,
    *,
    width: int | None,
    height: int | None,
    preset: str | None,
    presets: Mapping[str, Preset] | None,
) -> tuple[str, Fit, Gravity, int | None, int | None, tuple[int, int]]:
    """The key, fit, gravity, what to ask the pipeline for and the output size, for a size request."""
    sw, sh = source.width, source.height
    fit, ask_w, ask_h = Fit.CONTAIN, None, None
    gravity = Gravity.CENTER
    if preset is not None:
        p = (presets if presets is not None else configured_presets())[preset]
        key, fit = preset, p.fit
        gravity = p.gravity or Gravity(settings.IMAGE_DEFAULT_GRAVITY)
        ask_w, ask_h, size = _preset_size(p, (sw, sh))
    elif width is not None:
        ask_w = ladder_step(width, sw)
        key, size = f"w{ask_w}", (ask_w, max(1, round(sh * ask_w / sw)))
    elif height is not None:
        ask_h = ladder_step(height, sh)
        key, size = f"h{ask_h}", (max(1, round(sw * ask_h / sh)), ask_h)
    else:
        key, size = f"w{sw}", (sw, sh)
    if size == (sw, sh):
        # Full size, whatever was asked: one name for it, and no resize.
        key, fit, ask_w, ask_h = (key if preset is not None else f"w{sw}"), Fit.CONTAIN, None, None
    if fit is not Fit.COVER:
        gravity = Gravity.CENTER
    return key, fit, gravity, ask_w, ask_h, size


def _spec(
    source: Source,
    key: str,
    fit: Fit,
    gravity: Gravity,
    ask_w: int | None,
    ask_h: int | None,
    size: tuple[int, int],
    output: OutputFormat,
    *,
    negotiated: bool,
) -> Spec:
    if size == (source.width, source.height) and output.value == source.format:
        return Spec(key, None, None, Fit.CONTAIN, output, size, negotiated, original=True)
    # Only a crop has a place: the focal point is no part of a scaled rendition's name (its pixels are
    # the same wherever the point is).
    focal = source.focal if fit is Fit.COVER else None
    recipe = recipe_of(
        width=ask_w, height=ask_h, fit=fit, size=size, output=output, gravity=gravity, focal=focal
    )
    return Spec(
        key,
        ask_w,
        ask_h,
        fit,
        output,
        size,
        negotiated,
        original=False,
        recipe=recipe,
        gravity=gravity,
        focal=focal,
    )


# A rendition's file name: its key, its recipe and its extension.
_RENDITION_FILE = re.compile(r"(?P<key>[a-z][a-z0-9_-]*)\.(?P<recipe>[0-9a-f]+)\.(?P<ext>[a-z]+)")
_BY_EXTENSION = {output.extension: output for output in OutputFormat}
_LADDER_KEY = re.compile(r"(?P<side>[wh])(?P<pixels>[1-9][0-9]{0,5})")


def is_current(source: Source, name: str, *, presets: Mapping[str, Preset] | None = None) -> bool:
    """Whether `name` (`renditions/<digest>/<key>.<recipe>.<ext>`) is the name a request for a rendition
    of `source` gets under the current settings; False for a rendition made under other settings (a
    preset changed or gone, another quality, another AVIF speed), of another file, or named before
    recipes were: nothing will ask for it again."""
    folder, _, filename = name.rpartition("/")
    parsed = _RENDITION_FILE.fullmatch(filename)
    if (
        f"{folder}/" != storage.renditions_prefix_of(source.name)
        or parsed is None
        or parsed["ext"] not in _BY_EXTENSION
    ):
        return False
    key = parsed["key"]
    presets = presets if presets is not None else configured_presets()
    if (ladder := _LADDER_KEY.fullmatch(key)) is not None:
        side = "width" if ladder["side"] == "w" else "height"
        asked: dict[str, Any] = {side: int(ladder["pixels"])}
    elif key in presets:
        asked = {"preset": key}
    else:
        return False
    sized = _sized(
        source,
        width=asked.get("width"),
        height=asked.get("height"),
        preset=asked.get("preset"),
        presets=presets,
    )
    spec = _spec(source, *sized, _BY_EXTENSION[parsed["ext"]], negotiated=False)
    return spec.name(source) == name


def _preset_size(p: Preset, stored: tuple[int, int]) -> tuple[int | None, int | None, tuple[int, int]]:
    """The width and height to ask the pipeline for, and the output size: never larger than stored."""
    sw, sh = stored
    if p.width is not None and p.height is not None:
        if p.fit is Fit.CONTAIN:
            scale = min(p.width / sw, p.height / sh)
            if scale >= 1:
                return None, None, stored
            size = (max(1, round(sw * scale)), max(1, round(sh * scale)))
            return p.width, p.height, size
        # A crop (or a stretch) to the box's shape, the box shrunk until it fits inside the image.
        shrink = min(1.0, sw / p.width, sh / p.height)
        size = (max(1, round(p.width * shrink)), max(1, round(p.height * shrink)))
        return size[0], size[1], size
    if p.width is not None:
        w = min(p.width, sw)
        return w, None, (w, max(1, round(sh * w / sw)))
    assert p.height is not None
    h = min(p.height, sh)
    return None, h, (max(1, round(sw * h / sh)), h)


def accepts(accept: str, media_type: str) -> bool:
    """Whether an Accept header names `media_type` (with a q above 0); wildcards do not count."""
    for part in accept.split(","):
        kind, *params = (item.strip() for item in part.split(";"))
        if kind.lower() != media_type:
            continue
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


def negotiate(
    asked: RenditionFormat, accept: str, *, stored_format: str, size: tuple[int, int]
) -> tuple[OutputFormat, bool]:
    """The output format, and whether it came from Accept (the answer then varies with it).

    `auto`: AVIF when Accept names it, the stored file cannot be animated and the rendition is at most
    IMAGE_RENDITION_AUTO_AVIF_MAX_PIXELS (AVIF encodes slowly: see the README); else WebP when Accept names
    it; else the stored format's fallback (JPEG for a JPEG; PNG, or GIF for a GIF, where transparency or
    an animation may be).
    """
    if asked is not RenditionFormat.AUTO:
        return OutputFormat(asked.value), False
    avif_ok = size[0] * size[1] <= settings.IMAGE_RENDITION_AUTO_AVIF_MAX_PIXELS
    if stored_format not in _MAY_ANIMATE and avif_ok and accepts(accept, "image/avif"):
        return OutputFormat.AVIF, True
    if accepts(accept, "image/webp"):
        return OutputFormat.WEBP, True
    return _FALLBACK[stored_format], True


# --- The object's ready-made URLs -----------------------------------------------------------------


def srcset(file_url: str, stored_width: int) -> str:
    """`<img srcset>`: every ladder width below the stored one, then the stored width itself.

    A list page builds one per row: one join of cached pieces (`320 320w`), a microsecond or two.
    """
    return f"{file_url}?width=" + f", {file_url}?width=".join(_srcset_pieces(stored_width))


@functools.lru_cache(maxsize=1024)
def _srcset_pieces(stored_width: int) -> tuple[str, ...]:
    widths = [*(w for w in LADDER if w < stored_width), stored_width]
    return tuple(f"{w} {w}w" for w in widths)


def preset_urls(
    file_url: str, names: list[str], *, focal: tuple[float, float] | None = None
) -> dict[str, str]:
    """Each preset's URL; a crop's carries the image's focal point (`&focal=x,y`), so that a new focal
    point is a new URL for every cache that keeps the old crop (they are cached as immutable)."""
    if focal is None:
        return {name: f"{file_url}?preset={name}" for name in names}
    crops = crop_presets()
    tag = focal_tag(focal)
    return {name: f"{file_url}?preset={name}" + (f"&focal={tag}" if name in crops else "") for name in names}


def crop_presets() -> set[str]:
    """The presets that crop (fit `cover`): the ones a focal point places."""
    return {name for name, p in configured_presets().items() if p.fit is Fit.COVER}


def focal_tag(focal: tuple[float, float]) -> str:
    """A focal point as a URL carries it: `x,y`, each as short as it is (`0.25,0.7`)."""
    return ",".join(f"{v:.4f}".rstrip("0").rstrip(".") if v else "0" for v in focal)


# --- Stored renditions ------------------------------------------------------------------------------


@dataclass
class Served:
    """What answers a rendition request: a stored file (opened), or bytes rendered just now."""

    file: File | None
    data: bytes | None
    size: int


def rendition_open(source: Source, spec: Spec, *, fetch: bool = False) -> Served | None:
    """The stored rendition (or the stored file itself), opened; None when it is not rendered yet.

    `fetch`: its bytes read now (`storage.open_file`), for an answer that sends them. Raises
    StorageUnavailable when the store cannot tell, Image.DoesNotExist when the image was deleted since its
    row was read.
    """
    name = spec.name(source)
    try:
        file = storage.open_file(name, fetch=fetch)
        return Served(file=file, data=None, size=file.size)
    except FileNotFoundError as exc:
        if spec.original:
            _source_missing(source, exc)
        return None


def _source_missing(source: Source, exc: FileNotFoundError) -> NoReturn:
    """The stored file was not there: deleted with its last row since the request read it (Image.DoesNotExist,
    a 404, as if the request had come a moment later), or lost (logged; StorageUnavailable)."""
    if not image_file_in_use(name=source.name):
        raise Image.DoesNotExist("The image was deleted.") from exc
    # A row whose file is gone: data lost (reconcile_storage reports it), not the client's fault.
    logger.error("the stored file %s is missing", source.name)
    raise StorageUnavailable("The image's stored file cannot be read.") from exc


def rendition_cost(source: Source, spec: Spec) -> RenderCost:
    """What rendering `spec` is expected to cost (CPU, bytes stored), from the row alone."""
    return render_costs.estimate(
        source_size=(source.width, source.height),
        source_format=source.format,
        output_size=spec.size,
        output=spec.output,
    )


def rendition_create(source: Source, spec: Spec, *, charge: RenderCharge | None = None) -> Served:
    """Render the rendition from the stored file, store it under its name, and answer its bytes.

    Takes a decode slot like an upload, with the upload's limits and encoder settings (ImageTooLarge past
    them). Concurrent calls may both render; the store keeps one whole file and each answers the same
    bytes. Raises StorageUnavailable when the source cannot be read or the rendition cannot be stored, and
    Image.DoesNotExist when the image was deleted meanwhile (what this stored is then removed). `charge`,
    the render budgets' charge of the estimate, is settled with what the work measured, whatever happens.
    """
    started = render_costs.thread_cpu()
    work = _Work()
    try:
        return _render_and_store(source, spec, work)
    finally:
        if charge is not None:
            charge.settle(
                render_costs.measured(
                    estimated=charge.estimate,
                    output=spec.output,
                    cpu_seconds=render_costs.thread_cpu() - started,
                    stored_bytes=work.stored_bytes,
                    rendered=work.rendered,
                )
            )


@dataclass
class _Work:
    """How far a first render got: whether it rendered, and the bytes it stored."""

    rendered: bool = False
    stored_bytes: int = 0


def _render_and_store(source: Source, spec: Spec, work: _Work) -> Served:
    try:
        src = storage.open_file(source.name, fetch=True)
    except FileNotFoundError as exc:
        _source_missing(source, exc)
    except Exception as exc:
        logger.exception("opening %s failed", source.name)
        raise StorageUnavailable("The file store is unavailable.") from exc
    try:
        rendered = pipeline.render(
            src,
            width=spec.width,
            height=spec.height,
            fit=spec.fit,
            gravity=spec.gravity,
            focal=spec.focal,
            output_format=spec.output,
        )
    except ImageTooLarge as exc:
        # Over a limit of this deployment (IMAGE_MAX_AVIF_PIXELS, say): about the request, not an upload.
        raise RenditionTooLarge(exc.message) from exc
    except (InvalidImage, UnsupportedFormat) as exc:
        # The stored file does not decode: corrupt in the store (reconcile_storage --verify finds it).
        logger.exception("the stored file %s does not decode", source.name)
        raise StorageUnavailable("The image's stored file cannot be read.") from exc
    finally:
        src.close()
    work.rendered = True
    name = spec.name(source)
    if storage.store_as(name, rendered.data, media_type=rendered.format.media_type):
        work.stored_bytes = len(rendered.data)
    _keep_only_while_used(source)
    logger.info(
        "rendition %s rendered: %sx%s, %s bytes", name, rendered.width, rendered.height, len(rendered.data)
    )
    return Served(file=None, data=rendered.data, size=len(rendered.data))


def _keep_only_while_used(source: Source) -> None:
    """After storing a rendition: when no row uses its source any more, remove the source's renditions and
    raise Image.DoesNotExist.

    A render that began before a DELETE of its image may store after that delete removed the renditions;
    left there, it would be served by `/media/` or the bucket until `reconcile_storage --fix`. Under the
    per-name lock that `image_delete` holds while it deletes the row and the file, a row is either still
    there (and the delete, which removes the renditions after it, removes this one too) or gone.
    """
    with locks.file_name_lock(source.name):
        if image_file_in_use(name=source.name):
            return
        delete_renditions(source.digest, private=storage.is_private_name(source.name))
    logger.info("the image of %s was deleted while it rendered; its renditions are removed", source.name)
    raise Image.DoesNotExist("The image was deleted.")


def delete_crops(source: Source) -> None:
    """Remove the stored crops of `source` as its focal point placed them: after that point changed, no
    request asks for them again. Their names are computed (a crop preset in each format), so nothing is
    listed; a failure leaves them for `reconcile_storage --fix` (stale), never served. A render of the old
    crop that stores after this leaves one the same way."""
    for preset in sorted(crop_presets()):
        key, fit, gravity, ask_w, ask_h, size = _sized(
            source, width=None, height=None, preset=preset, presets=None
        )
        for output in OutputFormat:
            spec = _spec(source, key, fit, gravity, ask_w, ask_h, size, output, negotiated=False)
            if not spec.original:
                storage.delete(spec.name(source))


def delete_renditions(digest: str, *, private: bool = False) -> bool:
    """Remove every rendition of the stored file whose SHA-256 is `digest` (the prefix
    `renditions/<digest>/`, or `private/renditions/<digest>/`); False (logged, never raised) when the store
    failed and some remain."""
    prefix = storage.PRIVATE_RENDITIONS_PREFIX if private else PREFIX
    return storage.delete_prefix(f"{prefix}{digest}/")


def digest_of_rendition(name: str) -> str:
    """The source digest a rendition's name carries: `renditions/<digest>/<key>.<ext>` (or private)."""
    return name.removeprefix(storage.PRIVATE_RENDITIONS_PREFIX).removeprefix(PREFIX).split("/", 1)[0]


def folder_of_rendition(name: str) -> str:
    """The folder of a rendition: `storage.renditions_prefix_of` its source's name."""
    return name.rsplit("/", 1)[0] + "/"
