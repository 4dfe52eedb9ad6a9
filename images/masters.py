"""Masters stored before issue 22, made fast to decode: `manage.py convert_masters`.

An upload's stored file (its master) is what every rendition decodes; JPEG masters used to be written
progressive, which makes each rendition's decode 3-4x as costly (images/pixels/masters.py). This walks the
JPEG rows in id order, a batch at a time, reads the first bytes of each distinct file (one ranged read on
S3), and rewrites a progressive one as baseline with its own quantization tables (close to lossless):
1. the new bytes are stored under their own content name (nothing is overwritten);
2. under that name's lock, every row of the old file is pointed at it (one short transaction, `file` and
   `size`; width, height, placeholder and colour stay: the pixels are the same to within rounding);
3. the old file is deleted unless a row still uses it, under its own lock (as a failed upload's is), and
   then its renditions, which are rendered again from the new file on their next request.

So it is resumable (an interrupted run is run again: files already baseline are skipped after reading
their first bytes) and safe while the service is serving (a request holding the old name still finds its
file or answers 503; a rendition request after the switch renders from the new file). The image's `url`
and ETag change with its file, as any content-addressed name does.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import F

from images import locks, pipeline, renditions, storage
from images.exceptions import ImageTooLarge, InvalidImage, StorageUnavailable, UnsupportedFormat
from images.formats import OutputFormat
from images.models import Image
from images.selectors import image_files_in_batches
from images.services import image_file_discard_unreferenced

logger = logging.getLogger(__name__)


@dataclass
class Conversion:
    converted: int = 0  # files rewritten baseline
    rows: int = 0  # rows pointed at a rewritten file
    already: int = 0  # files that were baseline already
    bytes_before: int = 0  # of the files rewritten
    bytes_after: int = 0
    # name -> ids of the rows whose file is missing or does not decode: left as they are
    unusable: dict[str, list[int]] = field(default_factory=dict)


def jpeg_rows() -> int:
    """How many rows a run looks at (the progress bar's total)."""
    return Image.objects.filter(format=OutputFormat.JPEG.value).count()


def convert_masters(*, batch: int = 100, done: Callable[[int], None] = lambda n: None) -> Conversion:
    """Rewrite every progressive JPEG master baseline, `batch` rows at a time; `done(n)` after each batch.

    Raises StorageUnavailable when the store fails; what was converted before stays converted.
    """
    result = Conversion()
    seen: set[str] = set()
    jpegs = Image.objects.filter(format=OutputFormat.JPEG.value)
    for by_file in image_files_in_batches(rows=jpegs, batch=batch):
        for name, ids in by_file.items():
            if name in seen:  # a file shared by rows of an earlier batch: handled there
                continue
            seen.add(name)
            # Rows of a later batch may share the file, now under its new name: not looked at again.
            seen.add(_convert(name, ids, result))
        done(sum(map(len, by_file.values())))
    return result


def _read(name: str) -> bytes:
    with storage.open_file(name) as file:
        return file.read()


def _convert(name: str, ids: list[int], result: Conversion) -> str:
    """Convert one file if it is progressive; the name its rows have afterwards."""
    try:
        head = storage.read_head(name, pipeline.MASTER_HEAD_BYTES)
        progressive, data = pipeline.is_progressive_jpeg(head), None
        if progressive is None and len(head) == pipeline.MASTER_HEAD_BYTES:
            # Its frame header lies further on (metadata no upload leaves, but a file put there by hand).
            data = _read(name)
            progressive = pipeline.is_progressive_jpeg(data)
        if not progressive:
            result.already += 1
            return name
        data = data or _read(name)
    except FileNotFoundError:
        logger.warning("convert_masters: %s is missing", name)
        result.unusable.setdefault(name, []).extend(ids)
        return name
    except StorageUnavailable:
        raise
    except Exception as exc:
        logger.exception("reading %s failed", name)
        raise StorageUnavailable("The file store is unavailable.") from exc
    try:
        # Outside a decode slot: this command runs in a process of its own, one file at a time.
        new = pipeline.baseline_master(io.BytesIO(data))
    except (InvalidImage, UnsupportedFormat, ImageTooLarge) as exc:
        logger.warning("convert_masters: %s cannot be used: %s", name, exc)
        result.unusable.setdefault(name, []).extend(ids)
        return name
    # A private master stays private: its new file goes under the private prefix too.
    new_name = storage.content_name(new, OutputFormat.JPEG.extension, private=storage.is_private_name(name))
    storage.store_as(new_name, new, media_type=OutputFormat.JPEG.media_type)
    with locks.file_name_lock(new_name):
        # As in image_create: a cleanup may have removed the new file since it was stored.
        storage.store_as(new_name, new, media_type=OutputFormat.JPEG.media_type)
        with transaction.atomic():
            # Every row of the old file, including any saved since this batch was read.
            moved = Image.objects.filter(file=name).update(
                file=new_name, size=len(new), version=F("version") + 1
            )
    if image_file_discard_unreferenced(name=name):
        renditions.delete_renditions(storage.digest_of(name), private=storage.is_private_name(name))
    result.converted += 1
    result.rows += moved
    result.bytes_before += len(data)
    result.bytes_after += len(new)
    logger.info("master %s rewritten baseline as %s for %s rows", name, new_name, moved)
    return new_name
