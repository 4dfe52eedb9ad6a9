"""`manage.py reconcile_storage [--fix]`: do the rows and the stored files match, both ways?

Prints every orphan (a stored file no row points at) and every loss (a row whose file is gone); `--fix`
removes the orphans. Exits 1 when a row has lost its file (that needs a person), 2 when the storage cannot
be listed, 0 otherwise. Progress goes to stderr: a bar on a terminal, a plain line every so often elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from images.exceptions import StorageUnavailable
from images.reconciliation import reconcile

T = TypeVar("T")
# Without a terminal, one progress line per this many items (and one at the end).
LINE_EVERY = 10_000


class Command(BaseCommand):
    help = (
        "Compare image rows with stored files: report orphans (files without rows) and losses (rows "
        "without files); --fix removes the orphans. Exits 1 if a loss is found."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--fix", action="store_true", help="Remove orphaned files.")

    def handle(self, *args: Any, fix: bool, **options: Any) -> None:
        try:
            result = reconcile(fix=fix, progress=self._progress)
        except StorageUnavailable as exc:
            raise CommandError(f"{exc.message} Nothing was compared.", returncode=2) from exc

        removed = set(result.removed)
        for name in result.orphans:
            if name in removed:
                self.stdout.write(f"removed orphan {name}")
            else:
                self.stdout.write(f"orphan {name} (no row points at it)")
        for name, ids in result.losses.items():
            self.stdout.write(f"LOST {name} (rows {', '.join(map(str, ids))})")

        self.stdout.write(
            f"{result.stored} stored files, {result.rows} rows referencing {result.referenced} files: "
            f"{len(result.orphans)} orphans ({len(removed)} removed), {len(result.losses)} lost files."
        )
        if result.orphans and not fix:
            self.stdout.write("Run with --fix to remove the orphans.")
        if result.losses:
            rows = sum(len(ids) for ids in result.losses.values())
            raise CommandError(f"{rows} rows have lost their file.", returncode=1)

    def _progress(self, items: Iterable[T], label: str, total: int | None) -> Iterable[T]:
        stream = self.stderr._out  # the raw stream: the bar must control its own line endings
        if stream.isatty():
            return tqdm(items, desc=label, total=total, unit=" items", file=stream, leave=True)
        return self._lines(items, label, total)

    def _lines(self, items: Iterable[T], label: str, total: int | None) -> Iterator[T]:
        of = f" of {total}" if total is not None else ""
        count = 0
        for item in items:
            yield item
            count += 1
            if count % LINE_EVERY == 0:
                self.stderr.write(f"{label}: {count}{of}…")
        self.stderr.write(f"{label}: {count}{of}, done.")
