"""Where image files go: content-addressed names, save, delete, list, health. No HTTP here.

Only Django's storage API is used for reading and writing, so the backend (local files, S3) is a setting
(`config/storages.py`). This is the one module that knows backends exist: listing a bucket and probing it
cheaply are done the S3 way when the storage is S3, and local files are written by `AtomicFileSystemStorage`
(a file appears under its name whole, or not at all). Names are the SHA-256 of the stored bytes, so
identical content is stored once and a name never changes meaning; nothing of the user's input ever reaches
a path.

Every call to the store goes through one `Guard` per process (api/breakers.py): at most
`STORAGE_MAX_CONCURRENCY` at once, at most `STORAGE_MAX_WAITING` callers waiting for a turn (a waiting
caller holds its thread too; more only while calls keep beginning), a bounded wait (`STORAGE_WAIT_SECONDS`)
for it, and after a failure `STORAGE_RETRY_SECONDS` of failing fast (StorageUnavailable, a 503). A store
that hangs then holds those threads for its timeouts (config/storages.py), by default all but one of the
process's: requests that need only the database keep being answered.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import posixpath
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import FileSystemStorage, Storage, default_storage, storages

from api.breakers import Guard, Unavailable
from images import compat
from images.exceptions import StorageUnavailable

logger = logging.getLogger(__name__)

# Every stored image lives under this prefix; listing it lists them all.
PREFIX = "images/"
# Renditions of stored images (images/renditions.py): `renditions/<sha256 of the image file>/<key>.<ext>`.
RENDITIONS_PREFIX = "renditions/"
# Private images' files and their renditions, named the same way under `private/`: no unsigned URL reaches
# them (/media/ serves only `images/`, nginx passes only `images/`, the bucket policy lets anyone read only
# `images/*`). The same bytes uploaded as public and as private are two files, each with its own rows.
PRIVATE_PREFIX = "private/images/"
PRIVATE_RENDITIONS_PREFIX = "private/renditions/"
ALL_PREFIXES = (PREFIX, RENDITIONS_PREFIX, PRIVATE_PREFIX, PRIVATE_RENDITIONS_PREFIX)
# S3's DeleteObjects removes at most this many keys a request: a prefix is deleted in batches of it.
S3_DELETE_BATCH = 1000
# A readiness probe answers within this many seconds, even when the store hangs.
PROBE_TIMEOUT_SECONDS = 2.0
# A local file is written under `.<name>.<random>.partial` in its folder, then renamed into place.
PARTIAL_SUFFIX = ".partial"
# A partial file untouched for this long was left by a killed process (a write in progress touches it
# with every chunk, and no request lives this long): `reconcile_storage --fix` removes it.
PARTIAL_MAX_AGE_SECONDS = 10 * 60

# This process's calls to the store: capped, waited for a bounded time, failing fast after a failure.
guard = Guard(
    "file store",
    limit=lambda: settings.STORAGE_MAX_CONCURRENCY,
    wait=lambda: settings.STORAGE_WAIT_SECONDS,
    waiting=lambda: settings.STORAGE_MAX_WAITING,
    # Past STORAGE_MAX_WAITING, a caller waits only while calls keep beginning: a burst against a store that
    # answers queues, one that has stopped answering is refused within this time.
    grace=lambda: settings.STORAGE_TURNOVER_SECONDS,
    open_seconds=lambda: settings.STORAGE_RETRY_SECONDS,
)


def content_name(data: bytes, extension: str, *, private: bool = False) -> str:
    """`images/ab/cd/<sha256>.<ext>` (`private/images/…` for a private image): two levels of fan-out keep
    directories and listings small."""
    return name_for_digest(hashlib.sha256(data).hexdigest(), extension, private=private)


def name_for_digest(digest: str, extension: str, *, private: bool) -> str:
    prefix = PRIVATE_PREFIX if private else PREFIX
    return f"{prefix}{digest[:2]}/{digest[2:4]}/{digest}.{extension}"


def is_private_name(name: str) -> bool:
    """Whether a stored name is a private image's file or rendition."""
    return name.startswith((PRIVATE_PREFIX, PRIVATE_RENDITIONS_PREFIX))


def renditions_prefix_of(name: str) -> str:
    """Where the renditions of the stored file `name` live: `renditions/<sha256>/` or its private twin."""
    return f"{PRIVATE_RENDITIONS_PREFIX if is_private_name(name) else RENDITIONS_PREFIX}{digest_of(name)}/"


def digest_of(name: str) -> str:
    """The content hash a stored name carries (its stem)."""
    return name.rsplit("/", 1)[-1].split(".", 1)[0]


def store_as(name: str, data: bytes, *, media_type: str) -> bool:
    """Save `data` under `name` (a name that says what its bytes are: `content_name`, a rendition's
    parameters), unless a whole file is stored there already; True when this call wrote it.

    A file already under that name is reused only when it is whole (its size is `len(data)`); a truncated
    or otherwise broken one is written again. `media_type` becomes the object's Content-Type where the
    backend keeps one (S3). Raises StorageUnavailable when the store fails (down, timed out, denied, full);
    a failed write leaves nothing under the name (local files: the temporary file is removed; S3: an
    object appears only once it is complete).
    """
    try:
        with guard.call():
            size = _size_or_none(name)
            if size == len(data):
                return False
            if size is not None:
                logger.warning("%s holds %s bytes instead of %s; storing it again", name, size, len(data))
                if not is_local():  # a local file is replaced in one rename; S3 never writes over an object
                    default_storage.delete(name)
            # ContentFile wraps `data` without copying it; S3 streams it from there.
            content = ContentFile(data)
            content.content_type = media_type  # type: ignore[attr-defined]  # read by django-storages
            saved = default_storage.save(name, content)
    except Exception as exc:
        _log_failure(exc, "storing %s failed", name)
        raise StorageUnavailable("The file store is unavailable; nothing was saved.") from exc
    if saved != name:
        # A concurrent save of the same bytes won the race and S3 never overwrites: the storage picked
        # another name for this copy. Remove it (or leave an orphan, logged); the name holds the bytes.
        delete(saved)
        return False
    return True


def _log_failure(exc: Exception, message: str, *args: object) -> None:
    """A refusal of the guard is one line (it repeats for every call while the store is down); a failure
    of the store itself, with its traceback."""
    if isinstance(exc, Unavailable):
        logger.warning(message + ": %s", *args, exc)
    else:
        logger.exception(message, *args)


def _size_or_none(name: str) -> int | None:
    try:
        return default_storage.size(name)
    except FileNotFoundError:
        return None


def exists(name: str) -> bool:
    """Whether a file is stored under `name`; StorageUnavailable when the store cannot tell."""
    try:
        with guard.call():
            return default_storage.exists(name)
    except Exception as exc:
        _log_failure(exc, "checking %s failed", name)
        raise StorageUnavailable("The file store is unavailable.") from exc


def delete(name: str) -> bool:
    """Remove a stored file; False (logged, never raised) when that failed and it is now an orphan."""
    try:
        with guard.call():
            default_storage.delete(name)
    except Exception as exc:
        _log_failure(exc, "deleting %s failed; it is now an orphan", name)
        return False
    return True


@dataclass(frozen=True)
class Listed:
    """A stored file as a listing shows it."""

    name: str
    size: int
    modified: float  # seconds since the epoch
    partial: bool = False  # a local write's temporary file: in progress, or left by a killed process


def list_files(prefixes: tuple[str, ...] = ALL_PREFIXES) -> Iterator[Listed]:
    """Every file under `images/` and `renditions/` and their private twins (or `prefixes`), in no
    particular order;
    StorageUnavailable on failure.

    S3: one paginated listing per prefix (1000 keys a request), sizes included. Other backends:
    `listdir`, folder by folder (the filesystem's fan-out folders hold few entries each), and a `stat` of
    each file. Partial files (`partial=True`) are not stored files: callers tell them apart.
    """
    try:
        backend = storages["default"]
        # One turn for the whole listing: a command's (reconcile_storage), or one image's renditions.
        with guard.call():
            for prefix in prefixes:
                if _is_s3(backend):
                    yield from _s3_files(backend, prefix)
                elif backend.exists(prefix.rstrip("/")):
                    yield from _listdir_files(backend, prefix.rstrip("/"))
    except Exception as exc:
        _log_failure(exc, "listing the stored files failed")
        raise StorageUnavailable("The file store is unavailable.") from exc


def delete_prefix(prefix: str) -> bool:
    """Remove every file under `prefix` (a folder: it ends in `/`), and on the filesystem the emptied
    folder; False (logged, never raised) when the store failed and some remain.

    S3: one listing request and one DeleteObjects request per S3_DELETE_BATCH files, not one request per
    file (an image's few hundred renditions are one or two requests)."""
    try:
        names = [listed.name for listed in list_files((prefix,)) if not listed.partial]
    except StorageUnavailable:
        logger.error("listing %s failed; its files remain", prefix)
        return False
    backend = storages["default"]
    if names and _is_s3(backend):
        return _s3_delete_all(backend, names)
    removed = all([delete(name) for name in names])
    if removed and is_local():
        with contextlib.suppress(OSError):  # not empty (a write in progress) or already gone
            default_storage.delete(prefix.rstrip("/"))
    return removed


def hash_of(name: str) -> str:
    """The SHA-256 of a stored file's bytes, read in chunks; FileNotFoundError when it is not there,
    StorageUnavailable when the store fails."""
    digest = hashlib.sha256()
    try:
        with open_file(name) as file:
            for chunk in file.chunks():
                digest.update(chunk)
    except (FileNotFoundError, StorageUnavailable):
        raise
    except Exception as exc:
        logger.exception("reading %s failed", name)
        raise StorageUnavailable("The file store is unavailable.") from exc
    return digest.hexdigest()


def open_file(name: str, *, fetch: bool = True) -> File:
    """Open a stored file for reading; FileNotFoundError when it is not there, StorageUnavailable when the
    store fails.

    `fetch` (the default): its bytes fetched already (S3: into memory, or a temporary file past
    AWS_S3_MAX_MEMORY_SIZE), so that reading it never waits on the store outside the guard, and a file
    deleted just after it was opened is a FileNotFoundError here rather than an error halfway through an
    answer. Without it (a HEAD needs the size only) S3 is asked for the object's head alone. A local file,
    once open, stays readable whatever happens to its name.
    """
    try:
        with guard.call(answers=(FileNotFoundError,)):
            file = default_storage.open(name, "rb")
            if fetch:
                try:
                    file.open()  # S3: downloads the object now (django-storages would on the first read)
                    file.size  # noqa: B018  # known now, not asked of the store later
                except BaseException as exc:
                    file.close()
                    if isinstance(exc, Exception) and is_not_found(exc):
                        raise FileNotFoundError(f"{name} was deleted as it was opened") from exc
                    raise
            return file
    except FileNotFoundError:
        raise
    except Exception as exc:
        _log_failure(exc, "opening %s failed", name)
        raise StorageUnavailable("The file store is unavailable.") from exc


def is_not_found(exc: Exception) -> bool:
    """Whether a storage call failed because the object is not there (S3: a 404 from HEAD or GET)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404 or response.get("Error", {}).get(
        "Code"
    ) in ("404", "NoSuchKey", "NotFound")


def read_head(name: str, size: int) -> bytes:
    """The first `size` bytes of a stored file (fewer when it is shorter), without reading the rest (S3:
    one ranged GET); FileNotFoundError when it is not there, StorageUnavailable when the store fails."""
    try:
        backend = storages["default"]
        with guard.call(answers=(FileNotFoundError,)):
            if _is_s3(backend):
                key = _s3_key(backend, name)
                try:
                    answer = backend.connection.meta.client.get_object(
                        Bucket=backend.bucket_name, Key=key, Range=f"bytes=0-{size - 1}"
                    )
                except backend.connection.meta.client.exceptions.NoSuchKey as exc:
                    raise FileNotFoundError(name) from exc
                return answer["Body"].read()
            with default_storage.open(name, "rb") as file:
                return file.read(size)
    except FileNotFoundError:
        raise
    except Exception as exc:
        _log_failure(exc, "reading %s failed", name)
        raise StorageUnavailable("The file store is unavailable.") from exc


def internal_path(name: str) -> str:
    """Where a web server in front finds a stored file (images/sending.py): `fs/<name>` under MEDIA_ROOT,
    or `s3/<bucket>/<key>` in the S3 store."""
    backend = storages["default"]
    if _is_s3(backend):
        key = _s3_key(backend, name)
        return f"s3/{backend.bucket_name}/{key}"
    return f"fs/{name}"


def size_of(name: str) -> int:
    """Bytes of a stored file; FileNotFoundError when it is not there, StorageUnavailable when the store
    fails."""
    try:
        with guard.call(answers=(FileNotFoundError,)):
            return default_storage.size(name)
    except FileNotFoundError:
        raise
    except Exception as exc:
        _log_failure(exc, "asking the size of %s failed", name)
        raise StorageUnavailable("The file store is unavailable.") from exc


def is_local() -> bool:
    """True when files live on this machine's filesystem (and the app serves them itself)."""
    return isinstance(default_storage, FileSystemStorage)


def is_available() -> bool:
    """A cheap readiness probe: one small request (S3: HEAD of the bucket), no listing, no data.

    False at once while the guard is open (a call failed within STORAGE_RETRY_SECONDS); a failed probe
    opens it. The probe takes a turn only when one is free at once, bounded by its own short timeouts, so
    probes (a load balancer asks often) never hold more threads than the cap; while every turn is taken
    the store is in use, not known to fail, and the answer is True (a call that fails opens the guard).
    """
    try:
        with guard.call(wait=0.0):
            return _probe()
    except Unavailable as exc:
        if exc.busy:
            return True
        _log_failure(exc, "storage readiness check failed")
        return False
    except Exception as exc:
        _log_failure(exc, "storage readiness check failed")
        return False


def refuse_if_failing() -> None:
    """StorageUnavailable at once when a call now would be refused (the guard is open, or its calls are
    stalled): lets an upload skip the work whose result could not be stored."""
    if guard.refuses_now():
        raise StorageUnavailable("The file store is unavailable; nothing was saved.")


def _probe() -> bool:
    backend = storages["default"]
    if isinstance(backend, FileSystemStorage):
        location = Path(backend.location)
        location.mkdir(parents=True, exist_ok=True)
        return os.access(location, os.W_OK)
    if _is_s3(backend):
        # Fails for a missing bucket (404), missing rights (403), a store that is down or hangs.
        _probe_client(backend).head_bucket(Bucket=backend.bucket_name)
        return True
    backend.exists(f"{PREFIX}.readyz")
    return True


# --- Backend specifics --------------------------------------------------------------------------


def _is_s3(backend: Storage) -> bool:
    from storages.backends.s3 import S3Storage  # boto is loaded only when S3 is configured

    return isinstance(backend, S3Storage)


def _s3_files(backend: Any, prefix: str) -> Iterator[Listed]:
    client = backend.connection.meta.client
    prefix = _s3_key(backend, prefix)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=backend.bucket_name, Prefix=prefix):
        for entry in page.get("Contents", ()):
            name = entry["Key"].removeprefix(backend.location).lstrip("/")
            yield Listed(name=name, size=entry["Size"], modified=entry["LastModified"].timestamp())


def _s3_delete_all(backend: Any, names: list[str]) -> bool:
    """Delete `names` with DeleteObjects, S3_DELETE_BATCH keys a request; False (logged) when a request
    failed or refused some keys, which stay behind as orphans for `reconcile_storage --fix`."""
    client = backend.connection.meta.client
    keys = [_s3_key(backend, name) for name in names]
    removed = True
    for start in range(0, len(keys), S3_DELETE_BATCH):
        batch = keys[start : start + S3_DELETE_BATCH]
        try:
            with guard.call():
                answer = client.delete_objects(
                    Bucket=backend.bucket_name,
                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},  # Quiet: errors only
                )
        except Exception as exc:
            _log_failure(
                exc, "deleting %s files (from %s on) failed; they are now orphans", len(batch), batch[0]
            )
            removed = False
            continue
        for error in answer.get("Errors", ()):
            logger.error(
                "deleting %s failed (%s); it is now an orphan", error.get("Key"), error.get("Code", "unknown")
            )
            removed = False
    return removed


def _listdir_files(backend: Storage, folder: str) -> Iterator[Listed]:
    folders, files = backend.listdir(folder)
    for file in files:
        name = f"{folder}/{file}"
        try:
            facts = Path(backend.path(name)).stat()
        except FileNotFoundError:  # removed since the folder was listed
            continue
        yield Listed(name=name, size=facts.st_size, modified=facts.st_mtime, partial=_is_partial(file))
    for sub in folders:
        yield from _listdir_files(backend, f"{folder}/{sub}")


def _is_partial(filename: str) -> bool:
    return filename.startswith(".") and filename.endswith(PARTIAL_SUFFIX)


class AtomicFileSystemStorage(FileSystemStorage):
    """Local files that appear whole or not at all, never truncated under their final name.

    Each file is written to a hidden temporary file in its target folder (`.<name>.<random>.partial`),
    flushed and fsynced, then renamed into place (atomic on POSIX) and the folder fsynced, so the rename
    survives a power cut. Any failure (a full disk, an exception, a signal) removes the temporary file; a
    process killed outright leaves it behind under its hidden name, where `reconcile_storage` finds it.
    Saving over an existing name replaces it: names are content hashes, so the same name means the same
    bytes, and a reader holding the old file keeps reading it.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**{**options, "allow_overwrite": True})

    def _save(self, name: str, content: File) -> str:
        path = Path(self.path(name))
        fd, partial = _partial_file(path)
        try:
            with os.fdopen(fd, "wb") as file:
                # mkstemp makes the file readable by its owner only; the served file needs the usual mode.
                os.fchmod(
                    file.fileno(), 0o644 if self.file_permissions_mode is None else self.file_permissions_mode
                )
                for chunk in content.chunks():
                    file.write(chunk)
                file.flush()
                os.fsync(file.fileno())
            Path(partial).replace(path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                Path(partial).unlink()
            raise
        _fsync_folder(path.parent)
        return name


def _partial_file(path: Path) -> tuple[int, str]:
    """A new temporary file next to `path`, its folder made first.

    `delete_prefix` removes a folder it has emptied (a file's renditions, after its image was deleted),
    which may happen between the `mkdir` and the file's creation: the folder is made again. It never
    removes a folder that holds a temporary file, so once created the file stays put.
    """
    for _retry in range(2):
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# The probe's own client: the storage's client retries and waits for as long as an upload may take.
_probe_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _probe_client(backend: Any) -> Any:
    client = _probe_clients.get(backend)
    if client is None:
        from botocore.config import Config

        config = backend.client_config.merge(
            Config(
                connect_timeout=PROBE_TIMEOUT_SECONDS,
                read_timeout=PROBE_TIMEOUT_SECONDS,
                retries={"mode": "standard", "total_max_attempts": 1},
            )
        )
        client = compat.s3_session(backend).client(
            "s3",
            region_name=backend.region_name,
            use_ssl=backend.use_ssl,
            endpoint_url=backend.endpoint_url,
            config=config,
            verify=backend.verify,
        )
        _probe_clients[backend] = client
    return client


def _s3_key(backend: Any, name: str) -> str:
    """The bucket key of a stored name: under the backend's `location` (AWS_LOCATION), when it has one."""
    return posixpath.join(backend.location, name) if backend.location else name
