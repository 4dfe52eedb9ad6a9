"""`manage.py convert_masters [--batch N]`: rewrite the JPEG masters stored progressive (before issue 22)
as baseline, so that renditions decode them fast.

Safe to run while the service is serving, resumable (run it again after an interruption: files already
baseline are skipped after reading their first bytes); see images/masters.py. Progress goes to stderr: a
bar on a terminal, a plain line every so often elsewhere. Exits 1 when some files could not be converted
(missing or not decodable: they are listed), 2 when the store fails.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from images.exceptions import ServerBusy, StorageUnavailable
from images.management.progress import Progress
from images.masters import convert_masters, jpeg_rows

# Without a terminal, one progress line per this many rows (and one at the end).
LINE_EVERY = 1_000


class Command(BaseCommand):
    help = (
        "Rewrite the JPEG masters stored progressive as baseline (same quantization, close to lossless), "
        "so renditions decode them fast. Resumable, and safe while the service is serving."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=100, help="Rows read per batch (default 100).")

    def handle(self, *args: Any, batch: int, **options: Any) -> None:
        if batch < 1:
            raise CommandError("--batch must be at least 1.")
        progress = Progress(self.stderr, "convert_masters", total=jpeg_rows(), every=LINE_EVERY, unit=" rows")
        try:
            result = convert_masters(batch=batch, done=progress.update)
        except (StorageUnavailable, ServerBusy) as exc:  # the store down, or a file's lock held too long
            raise CommandError(f"{exc.message} Run it again later: it resumes.", returncode=2) from exc
        finally:
            progress.close()
        for name, ids in result.unusable.items():
            self.stdout.write(f"UNUSABLE {name} (rows {', '.join(map(str, ids))}): missing or not decodable")
        self.stdout.write(
            f"{result.converted} files rewritten baseline for {result.rows} images "
            f"({result.bytes_before:,} -> {result.bytes_after:,} bytes), {result.already} already baseline."
        )
        if result.unusable:
            raise CommandError(
                f"{len(result.unusable)} files could not be converted: missing or not decodable "
                "(see manage.py reconcile_storage).",
                returncode=1,
            )
