"""Placeholders for the images stored before they existed: `manage.py backfill_placeholders`.

Walks the rows that lack a placeholder or a colour in id order, a batch at a time: reads each batch's
stored files (each file once, however many rows share it), computes both values from a small version of
the stored pixels (images.pixels.placeholders), then writes them in one short transaction per batch, only to
rows that still lack them. So it is:
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
    filled: int = 0  # rows that got both values
    files_read: int = 0
    # name -> ids of the rows left without them: the file is missing or is not an image we can decode
    unusable: dict[str, list[int]] = field(default_factory=dict)


def lacking() -> QuerySet[Image]:
    """The rows without a placeholder or a colour."""
    return Image.objects.filter(Q(placeholder__isnull=True) | Q(color__isnull=True))


def backfill_placeholders(*, batch: int = 500, done: Callable[[int], None] = lambda n: None) -> Backfill:
    """Fill `placeholder` and `color` where they are missing, `batch` rows at a time.

    `done(n)` is called after each batch with the rows it finished (filled or found unusable). Raises
    StorageUnavailable when the store fails; what was written before stays.
    """
    result = Backfill()
    remembered: OrderedDict[str, pipeline.Placeholder | None] = OrderedDict()
    for by_file in image_files_in_batches(rows=lacking(), batch=batch):
        _fill(by_file, result, remembered)
        done(sum(map(len, by_file.values())))
    return result


def backfill_batches(*, batch: int = 500) -> Iterator[dict[str, list[int]]]:
    """The rows lacking a placeholder, `batch` at a time, as stored names -> row ids: what
    `backfill_placeholders --queue` enqueues, one task per batch."""
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
    remembered: OrderedDict[str, pipeline.Placeholder | None],
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
            described = remembered[name]
            if described is None:
                result.unusable.setdefault(name, []).extend(ids)
                continue
            result.filled += (
                lacking()
                .filter(pk__in=ids)
                # A change of what the object answers: a new version, and so a new ETag.
                .update(placeholder=described.thumbhash, color=described.color, version=F("version") + 1)
            )


def _describe_stored(name: str) -> pipeline.Placeholder | None:
    """The placeholder of a stored file, read once; None when it is missing or does not decode."""
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
        return pipeline.stored_description(io.BytesIO(data))
    except (InvalidImage, UnsupportedFormat, ImageTooLarge) as exc:
        logger.warning("backfill: %s cannot be used: %s", name, exc)
        return None
