"""`manage.py backfill_placeholders [--batch N] [--queue]`: give the images stored before placeholders existed
their `placeholder` and `color`, and their perceptual hash (`phash`).

With `--queue`, the work is not done here: one task per batch is enqueued (`images.tasks`), for the task
workers to run (each batch retried on failure, a second run of one fills nothing), and the command ends at
once, saying how many batches and rows it enqueued.

Reads each stored file once, safe to run while the service is serving, resumable (run it again after an
interruption: it goes on with the rows still lacking them); see images/backfill.py. Progress goes to stderr:
a bar on a terminal, a plain line every so often elsewhere. Exits 1 when some rows could not be filled
(their file is missing or does not decode: they are listed), 2 when the store fails.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from images.backfill import backfill_batches, backfill_placeholders, lacking
from images.exceptions import StorageUnavailable
from images.management.progress import Progress
from images.tasks import backfill_placeholders_batch

# Without a terminal, one progress line per this many rows (and one at the end).
LINE_EVERY = 10_000


class Command(BaseCommand):
    help = (
        "Compute the placeholder, colour and perceptual hash of the images that lack them (uploaded before "
        "they existed), "
        "reading each stored file once. Resumable, and safe while the service is serving."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch", type=int, default=500, help="Rows per batch, one short transaction each (default 500)."
        )
        parser.add_argument(
            "--queue",
            action="store_true",
            help="Enqueue one task per batch for the task workers instead of doing the work here.",
        )

    def handle(self, *args: Any, batch: int, queue: bool = False, **options: Any) -> None:
        if batch < 1:
            raise CommandError("--batch must be at least 1.")
        if queue:
            self._enqueue(batch=batch)
            return
        progress = Progress(
            self.stderr, "backfill_placeholders", total=lacking().count(), every=LINE_EVERY, unit=" rows"
        )
        try:
            result = backfill_placeholders(batch=batch, done=progress.update)
        except StorageUnavailable as exc:
            raise CommandError(f"{exc.message} Run it again later: it resumes.", returncode=2) from exc
        finally:
            progress.close()
        for name, ids in result.unusable.items():
            self.stdout.write(f"UNUSABLE {name} (rows {', '.join(map(str, ids))}): missing or not decodable")
        self.stdout.write(f"{result.filled} images filled, {result.files_read} stored files read.")
        self.stdout.write(f"{result.hashed} images given a perceptual hash.")
        if result.unusable:
            rows = sum(len(ids) for ids in result.unusable.values())
            raise CommandError(
                f"{rows} rows were left without a placeholder: their file is missing or does not decode "
                "(see manage.py reconcile_storage).",
                returncode=1,
            )

    def _enqueue(self, *, batch: int) -> None:
        batches = rows = 0
        for files in backfill_batches(batch=batch):
            backfill_placeholders_batch.enqueue(files=files)
            batches += 1
            rows += sum(map(len, files.values()))
        self.stdout.write(f"{batches} batches enqueued ({rows} rows) for the task workers.")
