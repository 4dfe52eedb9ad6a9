"""Placeholders (and perceptual hashes) for the images stored before they existed:
`manage.py backfill_placeholders`.

Walks the rows that lack a placeholder, a colour or a perceptual hash in id order, a batch at a time: reads
each batch's stored files (each file once, however many rows share it), computes the values from one small
version of the stored pixels (images.pixels.placeholders, images.pixels.hashing), then writes them in one
short transaction per batch, each value only to rows that still lack it. So it is:
- resumable: an interrupted run loses at most the batch in flight; the next run starts from the rows still
  lacking them;
- safe while the service is serving: no file is read inside a transaction (SQLite's write lock is held for
  the few UPDATEs of one batch only), new uploads already have both values and are never touched, and a row
  deleted meanwhile is simply not updated;
- honest about files it cannot use: a row whose file is missing or does not decode keeps NULLs and is
  reported (`manage.py reconcile_storage` says more); a store that fails stops the run (run it again later).
"""

from __future__ import annotations

import io
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import F, Q, QuerySet

from images import pipeline, storage
from images.exceptions import ImageTooLarge, InvalidImage, StorageUnavailable, UnsupportedFormat
from images.models import Image
from images.selectors import image_files_in_batches

logger = logging.getLogger(__name__)

# Files whose values are remembered, so rows far apart that share a file (seeded rows do) need it read
# only once; about 100 bytes each.
_REMEMBERED_FILES = 100_000


@dataclass
class Backfill:
    filled: int = 0  # rows that got a placeholder and colour
    hashed: int = 0  # rows that got a perceptual hash
    files_read: int = 0
    # name -> ids of the rows left without them: the file is missing or is not an image we can decode
    unusable: dict[str, list[int]] = field(default_factory=dict)


def lacking() -> QuerySet[Image]:
    """The rows without a placeholder, a colour or a perceptual hash."""
    return Image.objects.filter(_LACKS_PLACEHOLDER | Q(phash__isnull=True))


_LACKS_PLACEHOLDER = Q(placeholder__isnull=True) | Q(color__isnull=True)


def backfill_placeholders(*, batch: int = 500, done: Callable[[int], None] = lambda n: None) -> Backfill:
    """Fill `placeholder` and `color`, and `phash`, where they are missing, `batch` rows at a time.

    `done(n)` is called after each batch with the rows it finished (filled or found unusable). Raises
    StorageUnavailable when the store fails; what was written before stays.
    """
    result = Backfill()
    remembered: OrderedDict[str, tuple[pipeline.Placeholder, int] | None] = OrderedDict()
    for by_file in image_files_in_batches(rows=lacking(), batch=batch):
        _fill(by_file, result, remembered)
        done(sum(map(len, by_file.values())))
    return result


def backfill_batches(*, batch: int = 500) -> Iterator[dict[str, list[int]]]:
    """The rows lacking a placeholder or a perceptual hash, `batch` at a time, as stored names -> row ids:
    what `backfill_placeholders --queue` enqueues, one task per batch."""
    return image_files_in_batches(rows=lacking(), batch=batch)


def backfill_batch(by_file: dict[str, list[int]]) -> Backfill:
    """One batch (stored name -> row ids): only rows that still lack the values are written, so running it
    again fills nothing. Raises StorageUnavailable when the store fails."""
    result = Backfill()
    _fill(by_file, result, OrderedDict())
    return result


def _fill(
    by_file: dict[str, list[int]],
    result: Backfill,
    remembered: OrderedDict[str, tuple[pipeline.Placeholder, int] | None],
) -> None:
    # Outside any transaction: reading a file may take long (S3), and SQLite's write lock is global.
    for name in by_file:
        if name in remembered:
            remembered.move_to_end(name)
            continue
        remembered[name] = _describe_stored(name)
        result.files_read += 1
        if len(remembered) > _REMEMBERED_FILES:
            remembered.popitem(last=False)
    with transaction.atomic():
        for name, ids in by_file.items():
            summary = remembered[name]
            if summary is None:
                result.unusable.setdefault(name, []).extend(ids)
                continue
            described, phash = summary
            rows = Image.objects.filter(pk__in=ids)
            # Each value only where it is missing (an upload's own are never overwritten). A change of
            # what the object answers: a new version, and so a new ETag.
            result.filled += rows.filter(_LACKS_PLACEHOLDER).update(
                placeholder=described.thumbhash, color=described.color, version=F("version") + 1
            )
            band0, band1, band2 = pipeline.hash_bands(phash)
            result.hashed += rows.filter(phash__isnull=True).update(
                phash=pipeline.hash_to_signed(phash),
                phash_band0=band0,
                phash_band1=band1,
                phash_band2=band2,
                version=F("version") + 1,
            )


def _describe_stored(name: str) -> tuple[pipeline.Placeholder, int] | None:
    """The placeholder and perceptual hash of a stored file, read once; None when it is missing or does
    not decode."""
    try:
        with storage.open_file(name) as file:
            data = file.read()
    except FileNotFoundError:
        logger.warning("backfill: %s is missing", name)
        return None
    except Exception as exc:
        logger.exception("reading %s failed", name)
        raise StorageUnavailable("The file store is unavailable.") from exc
    try:
        return pipeline.stored_summary(io.BytesIO(data))
    except (InvalidImage, UnsupportedFormat, ImageTooLarge) as exc:
        logger.warning("backfill: %s cannot be used: %s", name, exc)
        return None
