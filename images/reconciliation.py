"""Rows and stored files compared both ways: orphans (files without a row) and losses (rows without a file).

`manage.py reconcile_storage` prints the result and, with `--fix`, removes the orphans. A failed upload can
leave an orphan when the store or the database failed while cleaning up (harmless, only space); a loss
means data is gone and needs a person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from images import storage
from images.models import Image
from images.services import image_file_discard_unreferenced

T = TypeVar("T")
# Wraps an iterable to show progress: (items, label, total or None) -> the same items.
Progress = Callable[[Iterable[T], str, int | None], Iterable[T]]


@dataclass
class Reconciliation:
    stored: int  # files under images/
    referenced: int  # distinct names the rows point at
    rows: int
    orphans: list[str] = field(default_factory=list)  # stored, and no row points at them
    losses: dict[str, list[int]] = field(default_factory=dict)  # name -> ids of the rows that lost it
    removed: list[str] = field(default_factory=list)  # orphans deleted (with fix)

    @property
    def clean(self) -> bool:
        return not self.orphans and not self.losses


def _no_progress(items: Iterable[T], label: str, total: int | None) -> Iterable[T]:
    return items


def reconcile(*, fix: bool = False, progress: Progress = _no_progress) -> Reconciliation:
    """Compare every stored name with every name a row references; with `fix`, delete the orphans.

    Raises StorageUnavailable when the store cannot be listed. Safe while uploads go on: the storage is
    listed before the rows are read, a missing file is asked for again before it counts as lost (it may
    have been stored after the listing passed its place), and orphans are deleted with the same lock and
    reference check as a failed upload's cleanup, so a row being saved meanwhile keeps its file.
    """
    stored = set(progress(storage.list_names(), "stored files", None))
    names = Image.objects.order_by().values_list("file", flat=True).distinct()
    rows = Image.objects.count()
    referenced = set(progress(names.iterator(chunk_size=2000), "rows", names.count()))

    result = Reconciliation(stored=len(stored), referenced=len(referenced), rows=rows)
    result.orphans = sorted(stored - referenced)
    lost = [name for name in sorted(referenced - stored) if not storage.exists(name)]
    for image_id, name in Image.objects.filter(file__in=lost).order_by("id").values_list("id", "file"):
        result.losses.setdefault(name, []).append(image_id)
    if fix:
        for name in progress(result.orphans, "removing orphans", len(result.orphans)):
            if image_file_discard_unreferenced(name=name):
                result.removed.append(name)
    return result
