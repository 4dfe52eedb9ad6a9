"""`manage.py seed_images --count N [--batch B] [--seed S] [--random-phash] [--metadata]`: add N realistic
image rows, fast.

For load tests and benchmarks. A few real images are uploaded through `image_create` (so their files are
really stored and served); every other row points at one of those files, with a title drawn from a word
list (see `_seed_words`: a common word in about a third of the rows, rare ones in a few per hundred
thousand) and a creation date a little after the one before, ending now. Rows go in with `bulk_create`,
B per statement (COPY on PostgreSQL, a multi-row INSERT elsewhere), each batch in its own
transaction. Seeded rows have no perceptual hash (as rows stored before it existed), or with
`--random-phash` a random one each, as if every row were a picture of its own (for `similar_to` at
scale: bench/reads.py). With `--metadata` the n-th row of the run gets
`{"user": "u<n % 10000>", "album": "a<n % 97>"}` (a user's rows are one in ten thousand, an album's one
in 97), for the metadata filter. Progress goes to stderr: a bar on a terminal, a line per 100,000 rows
elsewhere.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import itertools
import json
import random
import time
from collections.abc import Iterator
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.utils import timezone
from PIL import Image as PILImage
from PIL import ImageDraw

from images import pipeline
from images.management.commands._seed_words import RARE_WORDS, WORDS
from images.management.progress import Progress
from images.models import Image
from images.services import image_create
from images.titles import fold

# The real images every seeded row points at: (width, height, Pillow format).
SAMPLES = [(1024, 768, "JPEG"), (768, 1024, "JPEG"), (512, 512, "PNG"), (960, 540, "WEBP")]
# Mean seconds between two seeded images (a million rows span about a year); some share a timestamp.
MEAN_GAP_SECONDS = 30
LINE_EVERY = 100_000


class Command(BaseCommand):
    help = "Insert N realistic image rows quickly (for load tests), pointing at a few real stored files."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, required=True, help="Rows to add.")
        parser.add_argument("--batch", type=int, default=5000, help="Rows per statement (default 5000).")
        parser.add_argument("--seed", type=int, default=None, help="Random seed, for repeatable titles.")
        parser.add_argument(
            "--random-phash",
            action="store_true",
            help="Give each seeded row a random perceptual hash (default: none, as older rows).",
        )
        parser.add_argument(
            "--metadata",
            action="store_true",
            help='Give the n-th row {"user": "u<n %% 10000>", "album": "a<n %% 97>"} (default: none).',
        )

    def handle(
        self,
        *args: Any,
        count: int,
        batch: int,
        seed: int | None,
        random_phash: bool = False,
        metadata: bool = False,
        **options: Any,
    ) -> None:
        if count < 0 or batch < 1:
            raise CommandError("--count must be 0 or more and --batch at least 1.")
        rng = random.Random(seed)  # noqa: S311 (titles and dates, not secrets)
        started = time.perf_counter()
        samples = [_upload_sample(rng, i, *spec) for i, spec in enumerate(SAMPLES[: min(count, 4)])]
        rows = _rows(rng, samples, count - len(samples), random_phash=random_phash, metadata=metadata)
        progress = Progress(
            self.stderr, "seed_images", total=count, initial=len(samples), unit=" rows", every=LINE_EVERY
        )
        columns = (*COLUMNS, "metadata") if metadata else COLUMNS
        insert = functools.partial(
            _copy if connection.vendor == "postgresql" else _bulk_create, columns=columns
        )
        for chunk in iter(lambda: list(itertools.islice(rows, batch)), []):
            with transaction.atomic():
                insert(chunk)
            progress.update(len(chunk))
        progress.close()
        seconds = time.perf_counter() - started
        self.stdout.write(f"Added {count} images in {seconds:.1f} s ({count / max(seconds, 1e-9):,.0f}/s).")


def _upload_sample(rng: random.Random, index: int, width: int, height: int, fmt: str) -> Image:
    """One real image, stored and saved through the upload path like any other."""
    im = PILImage.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(im)
    # Shapes that differ per sample, so each is stored as its own file.
    for _ in range(12 + index):
        x, y = rng.randrange(width), rng.randrange(height)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x, y, x + width // 6, y + height // 6), fill=colour)
    buffer = io.BytesIO()
    im.save(buffer, fmt)
    buffer.seek(0)
    return image_create(upload=buffer, filename=f"sample-{index}.{fmt.lower()}", title=_title(rng))


# The columns a seeded row sets; the others take their defaults.
COLUMNS = (
    "title",
    "title_folded",
    "file",
    "width",
    "height",
    "format",
    "size",
    "placeholder",
    "color",
    "created_at",
    "phash",
    "phash_band0",
    "phash_band1",
    "phash_band2",
)


def _rows(
    rng: random.Random,
    samples: list[Image],
    count: int,
    *,
    random_phash: bool = False,
    metadata: bool = False,
) -> Iterator[tuple[Any, ...]]:
    """`count` rows (values of COLUMNS, and the metadata if asked), oldest first, ending about now."""
    if not samples:
        return
    # A seeded row shares its sample's file, and so its placeholder and colour.
    files = [(s.file.name, s.width, s.height, s.format, s.size, s.placeholder, s.color) for s in samples]
    moment = timezone.now() - dt.timedelta(seconds=MEAN_GAP_SECONDS * count)
    for n in range(count):
        title = _title(rng)
        # One gap in ten is zero: equal timestamps happen, and the list's id tie-break must hold.
        if rng.random() >= 0.1:
            moment += dt.timedelta(seconds=rng.expovariate(1 / MEAN_GAP_SECONDS))
        hashed: tuple[int | None, ...] = (None, None, None, None)
        if random_phash:
            value = rng.getrandbits(64)
            hashed = (pipeline.hash_to_signed(value), *pipeline.hash_bands(value))
        row = (title, fold(title), *rng.choice(files), moment, *hashed)
        # Drawn from no random stream: the titles and dates stay those of the same seed without it.
        yield (*row, {"user": f"u{n % 10_000}", "album": f"a{n % 97}"}) if metadata else row


def _copy(rows: list[tuple[Any, ...]], *, columns: tuple[str, ...] = COLUMNS) -> None:
    """PostgreSQL's COPY: several times faster than a multi-row INSERT, both in Python and in the server.

    It runs the table's triggers like an INSERT does, so the image count stays exact.
    """
    table = connection.ops.quote_name(Image._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            # A dict (the metadata) as its JSON text, which the jsonb column reads.
            copy.write_row([json.dumps(v) if isinstance(v, dict) else v for v in row])


def _bulk_create(rows: list[tuple[Any, ...]], *, columns: tuple[str, ...] = COLUMNS) -> None:
    Image.objects.bulk_create(Image(**dict(zip(columns, row, strict=True))) for row in rows)


_WEIGHTS = list(itertools.accumulate(1 / rank for rank in range(1, len(WORDS) + 1)))


def _title(rng: random.Random) -> str:
    if rng.random() < 0.25:
        return f"{rng.choice(['IMG', 'DSC', 'PXL', 'GOPR'])}_{rng.randrange(10_000):04d}"
    words = rng.choices(WORDS, cum_weights=_WEIGHTS, k=rng.randint(2, 4))
    if rng.random() < 0.01:
        words.insert(rng.randrange(len(words) + 1), rng.choice(RARE_WORDS))
    title = " ".join(words)
    return title.capitalize() if rng.random() < 0.5 else title
