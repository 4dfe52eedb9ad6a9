"""`manage.py reconcile_storage [--verify] [--fix]`: do the rows and the stored files match, both ways?

Prints every orphan (a stored file no row points at), every loss (a row whose file is gone), every corrupt
file (its size differs from its rows' `size`, or with `--verify` its bytes do not hash to its name), every
partial file a killed write left behind, every rendition whose source no row uses, and every stale
rendition (not under a name any request gets with the current presets and encoder settings); `--fix`
removes the orphans (corrupt ones and renditions included), the stale renditions and the partial files,
never a file a row uses. Exits 1
when a row has lost its file or its file is corrupt (that needs a person), 2 when the storage cannot be
listed or read, 0 otherwise. Progress goes to stderr: a bar on a terminal, a plain line every so often
elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.module_loading import import_string

from images.exceptions import StorageUnavailable
from images.management.progress import Progress
from images.reconciliation import reconcile

T = TypeVar("T")
# Without a terminal, one progress line per this many items (and one at the end).
LINE_EVERY = 10_000


class Command(BaseCommand):
    help = (
        "Compare image rows with stored files: report orphans (files without rows), losses (rows without "
        "files), corrupt files, partial files left by killed writes and stale renditions; --fix removes "
        "the orphans, the stale renditions and the partial files. Exits 1 if a row lost its file or its "
        "file is corrupt."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--fix", action="store_true", help="Remove orphaned, stale and partial files.")
        parser.add_argument(
            "--verify", action="store_true", help="Also hash every stored file against its name (reads all)."
        )

    def handle(self, *args: Any, fix: bool, verify: bool, **options: Any) -> None:
        try:
            result = reconcile(fix=fix, verify=verify, progress=self._progress)
        except StorageUnavailable as exc:
            raise CommandError(f"{exc.message} Nothing was compared.", returncode=2) from exc

        removed = set(result.removed)
        for name in result.orphans:
            corrupt = ", corrupt" if name in result.corrupt else ""
            if name in removed:
                self.stdout.write(f"removed orphan {name}{corrupt}")
            else:
                self.stdout.write(f"orphan {name} (no row points at it{corrupt})")
        for name, ids in result.losses.items():
            self.stdout.write(f"LOST {name} (rows {', '.join(map(str, ids))})")
        damaged = {name: ids for name, ids in result.corrupt.items() if ids}
        for name, ids in damaged.items():
            self.stdout.write(
                f"CORRUPT {name} (rows {', '.join(map(str, ids))}): not the bytes its name says"
            )
        for name in result.rendition_orphans:
            if name in removed:
                self.stdout.write(f"removed orphan rendition {name}")
            else:
                self.stdout.write(f"orphan rendition {name} (no row uses its source)")
        for name in result.rendition_stale:
            if name in removed:
                self.stdout.write(f"removed stale rendition {name}")
            else:
                self.stdout.write(
                    f"stale rendition {name} (made with presets or encoder settings since changed)"
                )
        for name in result.partials:
            if name in removed:
                self.stdout.write(f"removed partial file {name}")
            else:
                self.stdout.write(f"partial file {name} (left by a write that was killed)")

        self.stdout.write(
            f"{result.stored} stored files, {result.rows} rows referencing {result.referenced} files: "
            f"{len(result.orphans)} orphans ({len(removed & set(result.orphans))} removed), "
            f"{len(result.losses)} lost files."
        )
        self.stdout.write(
            f"{len(result.corrupt)} corrupt files ({len(damaged)} used by rows), "
            f"{len(result.partials)} partial files ({len(removed & set(result.partials))} removed)."
        )
        if result.renditions:
            self.stdout.write(
                f"{result.renditions} renditions: {len(result.rendition_orphans)} orphans "
                f"({len(removed & set(result.rendition_orphans))} removed), "
                f"{len(result.rendition_stale)} stale ({len(removed & set(result.rendition_stale))} removed)."
            )
        # What other apps keep in the store and sweep themselves (uploads: the chunks of resumable uploads
        # that expired or ended), named by STORAGE_SWEEPS so that images imports none of them.
        swept = 0
        for label, path in settings.STORAGE_SWEEPS.items():
            count = import_string(path)(fix=fix)
            swept += count
            self.stdout.write(f"{count} {label} {'removed' if fix else 'to remove'}.")
        if (
            result.orphans or result.partials or result.rendition_orphans or result.rendition_stale or swept
        ) and not fix:
            self.stdout.write("Run with --fix to remove the orphans, stale renditions and partial files.")
        if result.losses or damaged:
            rows = sum(len(ids) for ids in [*result.losses.values(), *damaged.values()])
            raise CommandError(f"{rows} rows have lost their file or their file is corrupt.", returncode=1)

    def _progress(self, items: Iterable[T], label: str, total: int | None) -> Iterable[T]:
        return Progress(self.stderr, label, total=total, every=LINE_EVERY).track(items)
