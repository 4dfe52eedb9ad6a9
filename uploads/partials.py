"""The bytes of resumable uploads in progress, kept in the file store every replica shares.

A tus upload arrives in chunks (PATCH requests), perhaps each to another replica. Each chunk is stored as
an object of its own, `uploads/partial/<upload id>/<start offset, 20 digits>.<random>`: S3 cannot append
to an object, and the same layout works on the filesystem (where the store writes a temporary file and
renames it: a chunk appears whole or not at all). The random part makes every attempt's name its own, so
two PATCHes at one offset never write over each other; which of them counts is decided by the row
(`uploads.resumable`), which lists the names of the chunks it confirmed, in order.

A chunk is received into a local temporary file first, in `READ_BYTES` pieces, its checksum computed as
it arrives: the request body is never held in memory whole, and nothing is stored before its checksum
is known to match. Only Django's storage API is used (`default_storage`), so the backend is a setting,
and every call takes a turn at the store's guard (`file_store_turn`) as images' own calls do.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Protocol
from uuid import UUID

from django.core.files import File
from django.core.files.storage import default_storage

from api.exceptions import ProblemError
from images.services import file_store_is_local, file_store_turn
from uploads.tus import Checksum, ChecksumMismatch, TusError

logger = logging.getLogger(__name__)

PREFIX = "uploads/partial/"
# Read from the request and copied between files this many bytes at a time.
READ_BYTES = 1024 * 1024
# A local temporary file stays in memory up to this size; a chunk is usually megabytes.
MEMORY_BYTES = 64 * 1024


class PartialStoreUnavailable(ProblemError):
    """The file store failed while keeping or reading a chunk; the upload's offset is unchanged."""

    status = 503
    code = "storage_unavailable"


class ChunkCutOff(TusError):
    """The request body ended before its Content-Length: the connection was cut. Nothing of it is kept;
    the client resumes from the offset a HEAD answers (tus allows a server to keep what arrived, but a
    chunk is only stored whole, so an offset never counts bytes that were not checked)."""

    status = 400
    code = "incomplete_body"


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


@dataclass(frozen=True)
class Partial:
    """A stored chunk object as a listing shows it."""

    upload_id: str
    name: str


def folder_of(upload_id: UUID | str) -> str:
    return f"{PREFIX}{upload_id}/"


def chunk_name(upload_id: UUID | str, start: int) -> str:
    """A new name for a chunk that starts at `start`; sorted names are in offset order."""
    return f"{folder_of(upload_id)}{start:020d}.{secrets.token_hex(8)}"


def receive(body: Readable, *, length: int, checksum: Checksum | None) -> IO[bytes]:
    """Read exactly `length` bytes of a request body into a temporary file (rewound), checking its
    checksum; ChunkCutOff when fewer arrive, ChecksumMismatch (460) when the digest differs.

    The caller closes the file (which removes it)."""
    digest = checksum.new() if checksum is not None else None
    file = tempfile.SpooledTemporaryFile(max_size=MEMORY_BYTES)  # noqa: SIM115 - returned to the caller
    try:
        remaining = length
        while remaining > 0:
            try:
                piece = body.read(min(READ_BYTES, remaining))
            except OSError:  # Django's UnreadablePostError: the connection broke mid-body
                piece = b""
            if not piece:
                raise ChunkCutOff(
                    f"The body ended after {length - remaining} of its {length} bytes; nothing of it was "
                    "kept. Resume from the offset HEAD answers."
                )
            if digest is not None:
                digest.update(piece)
            file.write(piece)
            remaining -= len(piece)
        if digest is not None and checksum is not None and digest.digest() != checksum.digest:
            raise ChecksumMismatch(
                f"The chunk's {checksum.algorithm} is not the one Upload-Checksum declared."
            )
        file.seek(0)
    except BaseException:
        file.close()
        raise
    return file


def store(name: str, file: IO[bytes]) -> None:
    """Keep a received chunk under `name` (whole, or not at all); PartialStoreUnavailable on failure."""
    try:
        with file_store_turn():
            saved = default_storage.save(name, File(file, name=name.rsplit("/", 1)[-1]))
    except Exception as exc:
        logger.exception("storing chunk %s failed", name)
        raise PartialStoreUnavailable("The file store is unavailable; the chunk was not kept.") from exc
    if saved != name:  # a fresh random name is never taken; if it were, this copy must not be confused
        delete(saved)
        raise PartialStoreUnavailable("The file store renamed the chunk; it was not kept.")


def delete(name: str) -> bool:
    """Remove one chunk object; False (logged) when the store failed and it is left for the sweep."""
    try:
        with file_store_turn():
            default_storage.delete(name)
    except Exception:
        logger.exception("deleting chunk %s failed; the sweep will remove it", name)
        return False
    return True


def delete_upload(upload_id: UUID | str) -> bool:
    """Remove every chunk object of an upload (and its folder on the filesystem); False when some remain."""
    folder = folder_of(upload_id)
    try:
        with file_store_turn(answers=(FileNotFoundError,)):
            _, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return True
    except Exception:
        logger.exception("listing %s failed; its chunks remain for the sweep", folder)
        return False
    removed = all([delete(folder + file) for file in files])
    if removed and file_store_is_local():  # the filesystem's emptied folder; S3 has no folders
        with contextlib.suppress(OSError):  # not empty (a chunk being written) or gone already
            default_storage.delete(folder.rstrip("/"))
    return removed


@contextlib.contextmanager
def assembled(names: Iterable[str]) -> Iterator[IO[bytes]]:
    """The chunks `names`, in order, copied into one local temporary file (rewound), `READ_BYTES` at a
    time; removed on exit. PartialStoreUnavailable when one cannot be read."""
    with tempfile.TemporaryFile() as whole:
        for name in names:
            try:
                # A chunk not there, or the local copy failing (a full disk), is no failure of the store.
                with (
                    file_store_turn(answers=(FileNotFoundError, _LocalCopyFailed)),
                    default_storage.open(name, "rb") as chunk,
                ):
                    while piece := chunk.read(READ_BYTES):
                        _write(whole, piece)
            except Exception as exc:
                logger.exception("reading chunk %s failed", name)
                raise PartialStoreUnavailable(
                    "The file store is unavailable; try the last chunk again."
                ) from exc
        whole.seek(0)
        yield whole


class _LocalCopyFailed(Exception):
    """Writing a chunk into the local temporary file failed (the local disk, not the store)."""


def _write(file: IO[bytes], piece: bytes) -> None:
    try:
        file.write(piece)
    except OSError as exc:
        raise _LocalCopyFailed(str(exc)) from exc


def listed() -> Iterator[Partial]:
    """Every chunk object in the store (and, on the filesystem, a write's leftover temporary file)."""
    try:
        with file_store_turn(answers=(FileNotFoundError,)):
            folders, _ = default_storage.listdir(PREFIX)
    except FileNotFoundError:
        return
    for upload_id in folders:
        try:
            with file_store_turn(answers=(FileNotFoundError,)):
                _, files = default_storage.listdir(folder_of(upload_id))
        except FileNotFoundError:
            continue
        for file in files:
            yield Partial(upload_id=upload_id, name=folder_of(upload_id) + file)


def modified(name: str) -> datetime | None:
    """When a chunk object was written; None when it is gone."""
    try:
        with file_store_turn(answers=(FileNotFoundError,)):
            return default_storage.get_modified_time(name)
    except FileNotFoundError:
        return None
