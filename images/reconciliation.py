"""Rows and stored files compared both ways: orphans (files without a row), losses (rows without a file),
corrupt files (bytes that do not match their name) and partial files left by a killed write; and
renditions (`renditions/<sha256>/…`) whose source file no row uses, orphans too, and stale renditions:
of a file a row uses, but not under any name a request gets now (made before a preset, a quality or the
AVIF speed changed: `renditions.is_current`).

`manage.py reconcile_storage` prints the result and, with `--fix`, removes the orphans, the stale
renditions and the left-over partial files. A failed upload can leave an orphan when the store or the
database failed while cleaning up (harmless, only space); a loss, or a row whose file is corrupt, means
data is gone and needs a person.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from images import storage
from images.models import Image
from images.renditions import Source, configured_presets, folder_of_rendition, is_current
from images.services import image_file_discard_unreferenced

T = TypeVar("T")
# Wraps an iterable to show progress: (items, label, total or None) -> the same items.
Progress = Callable[[Iterable[T], str, int | None], Iterable[T]]


@dataclass
class Reconciliation:
    stored: int  # files under images/ and private/images/
    referenced: int  # distinct names the rows point at
    rows: int
    orphans: list[str] = field(default_factory=list)  # stored, and no row points at them
    losses: dict[str, list[int]] = field(default_factory=dict)  # name -> ids of the rows that lost it
    # name -> ids of the rows that use it (none: an orphan too); its size or hash does not match its name
    corrupt: dict[str, list[int]] = field(default_factory=dict)
    # Temporary files of local writes untouched for storage.PARTIAL_MAX_AGE_SECONDS (left by a killed
    # process); younger ones belong to writes in progress and are not listed.
    partials: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # orphans and partial files deleted (with fix)
    renditions: int = 0  # files under renditions/
    # Renditions of a stored file that no row uses (its digest is no row's file's): derived, so removable.
    rendition_orphans: list[str] = field(default_factory=list)
    # Renditions of a file a row uses, under a name no request gets with the current settings (made
    # before a preset, a quality or the AVIF speed changed): never served again, so removable.
    rendition_stale: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return (
            not self.orphans
            and not self.losses
            and not self.corrupt
            and not self.partials
            and not self.rendition_orphans
            and not self.rendition_stale
        )


def _no_progress(items: Iterable[T], label: str, total: int | None) -> Iterable[T]:
    return items


def reconcile(
    *, fix: bool = False, verify: bool = False, progress: Progress = _no_progress
) -> Reconciliation:
    """Compare every stored file with the rows; with `fix`, delete the orphans and left-over partial files.

    A stored file is corrupt when its size differs from its rows' `size`, or with `verify` when the
    SHA-256 of its bytes is not the one in its name (this reads every file). A corrupt file that rows use
    is reported, never deleted; one that no row uses is an orphan, and `fix` removes it.

    Raises StorageUnavailable when the store cannot be listed. Safe while uploads go on: the storage is
    listed before the rows are read, a missing file is asked for again before it counts as lost (it may
    have been stored after the listing passed its place), and orphans are deleted with the same lock and
    reference check as a failed upload's cleanup, so a row being saved meanwhile keeps its file.
    """
    stored: dict[str, int] = {}
    renditions: list[str] = []
    partials: list[str] = []
    stale = time.time() - storage.PARTIAL_MAX_AGE_SECONDS
    for listed in progress(storage.list_files(), "stored files", None):
        if listed.partial:
            if listed.modified < stale:
                partials.append(listed.name)
        elif listed.name.startswith((storage.RENDITIONS_PREFIX, storage.PRIVATE_RENDITIONS_PREFIX)):
            renditions.append(listed.name)
        else:
            stored[listed.name] = listed.size
    rows = Image.objects.count()
    pairs = Image.objects.order_by().values_list("file", "size").distinct()
    sizes = dict(progress(pairs.iterator(chunk_size=2000), "rows", pairs.count()))

    result = Reconciliation(
        stored=len(stored),
        referenced=len(sizes),
        rows=rows,
        partials=sorted(partials),
        renditions=len(renditions),
    )
    result.orphans = sorted(stored.keys() - sizes.keys())
    # A private file's renditions are under the private prefix: each folder belongs to one stored name.
    sources = {storage.renditions_prefix_of(name) for name in sizes}
    result.rendition_orphans = sorted(name for name in renditions if folder_of_rendition(name) not in sources)
    if renditions:
        result.rendition_stale = _stale_renditions(sorted(set(renditions) - set(result.rendition_orphans)))
    lost = {name for name in sizes.keys() - stored.keys() if not storage.exists(name)}
    corrupt = {name for name, size in stored.items() if name in sizes and size != sizes[name]}
    if verify:
        checked = progress(sorted(stored.keys() - corrupt), "verifying", len(stored) - len(corrupt))
        corrupt.update(name for name in checked if not _matches_its_name(name))
    result.corrupt = {name: [] for name in sorted(corrupt)}
    bad = Image.objects.filter(file__in=[*lost, *corrupt]).order_by("id").values_list("id", "file")
    for image_id, name in bad:
        (result.losses if name in lost else result.corrupt).setdefault(name, []).append(image_id)
    if fix:
        for name in progress(result.orphans, "removing orphans", len(result.orphans)):
            if image_file_discard_unreferenced(name=name):
                result.removed.append(name)
        for name in result.partials:
            if storage.delete(name):
                result.removed.append(name)
        # A rendition is made from its source again when asked for, so removing one that a new row has
        # meanwhile come to use costs a render, never data.
        for name in progress(
            result.rendition_orphans, "removing orphan renditions", len(result.rendition_orphans)
        ):
            if storage.delete(name):
                result.removed.append(name)
        # Stale renditions: a server still running the old settings (during a rolling change) would
        # render one again when asked, a cost and never data.
        for name in progress(
            result.rendition_stale, "removing stale renditions", len(result.rendition_stale)
        ):
            if storage.delete(name):
                result.removed.append(name)
    return result


def _stale_renditions(names: list[str]) -> list[str]:
    """The renditions among `names` (each of a file some row uses) that are not current (`is_current`)
    for any row of that file."""
    folders = {folder_of_rendition(name) for name in names}
    sources: dict[str, list[Source]] = {}
    # Rows that share a file share its size and format, not their focal points: one source per point.
    facts = (
        Image.objects.order_by()
        .values_list("file", "width", "height", "format", "focal_x", "focal_y")
        .distinct()
    )
    for file, width, height, fmt, focal_x, focal_y in facts.iterator(chunk_size=2000):
        folder = storage.renditions_prefix_of(file)
        if folder in folders:
            focal = None if focal_x is None or focal_y is None else (focal_x, focal_y)
            source = Source(name=file, width=width, height=height, format=fmt, focal=focal)
            sources.setdefault(folder, []).append(source)
    presets = configured_presets()
    return [
        name
        for name in names
        if not any(
            is_current(source, name, presets=presets) for source in sources.get(folder_of_rendition(name), ())
        )
    ]


def _matches_its_name(name: str) -> bool:
    try:
        return storage.hash_of(name) == storage.digest_of(name)
    except FileNotFoundError:  # removed since the listing: not corrupt
        return True
