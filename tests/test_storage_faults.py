"""All or nothing: when the store or the database fails during an upload, rows and files still match.

Faults are injected where they happen in production: in the storage backend's write (down to the chunks
written to a local file), in the SQL sent to the database, in a process killed mid-write, and
(tests/test_s3.py) in the S3 server itself. On both backends (`make test` runs them twice).
"""

from __future__ import annotations

import errno
import io
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from django.conf import settings as django_settings
from django.core.files.storage import storages
from django.core.management import call_command
from django.db import OperationalError, connection, connections
from django.test.client import MULTIPART_CONTENT
from PIL import Image as PILImage

from config.env import BASE_DIR
from images import locks, storage
from images.models import Image
from images.services import image_create, image_file_discard_unreferenced
from tests.conftest import (
    ORPHAN,
    Client,
    assert_nothing_stored,
    assert_rows_match_stored_files,
    name_of,
    put_stored_file,
    remove_stored_file,
    stored_names,
)
from tests.images import encode, quadrants
from tests.problems import assert_problem
from tests.races import lock_waiters, until

INSERT_IMAGE = re.compile(r'^\s*INSERT INTO "images_image"\s', re.IGNORECASE)
SAVEPOINTS = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")


@contextmanager
def database_failing(when: Callable[[str], bool], seen: list[str] | None = None) -> Iterator[None]:
    """Every SQL statement for which `when(sql)` holds fails as a lost connection does."""

    def fail(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if when(sql):
            if seen is not None:
                seen.extend(stored_names())  # what was stored when the database failed
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail):
        yield


# --- The store fails ------------------------------------------------------------------------------


STORAGE_FAULTS = {
    "disk full": OSError(errno.ENOSPC, "No space left on device"),
    "denied": ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObject"),
    "timeout": ReadTimeoutError(endpoint_url="http://s3.example.com/bucket/images/x.png"),
    "down": EndpointConnectionError(endpoint_url="http://s3.example.com/bucket/images/x.png"),
}


@pytest.mark.parametrize("fault", STORAGE_FAULTS.values(), ids=STORAGE_FAULTS.keys())
def test_storage_failing_on_save_answers_503_and_creates_no_row(
    upload: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, fault: Exception
) -> None:
    def failing_save(self: Any, name: str, content: Any) -> str:
        raise fault

    monkeypatch.setattr(type(storages["default"]), "_save", failing_save)
    body = assert_problem(upload(quadrants()), 503, "storage_unavailable")
    assert "nothing was saved" in body["detail"]
    assert_nothing_stored()


def test_upload_works_again_once_the_store_is_back(
    upload: Callable[..., Any], served: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_save(self: Any, name: str, content: Any) -> str:
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as patch:
        patch.setattr(type(storages["default"]), "_save", failing_save)
        assert_problem(upload(quadrants()), 503, "storage_unavailable")
    response = upload(quadrants())
    assert response.status_code == 201
    assert served(response.json()["url"]).size == (400, 200)
    assert_rows_match_stored_files()


# --- The database fails after the file was stored ------------------------------------------------


def test_database_failing_on_insert_removes_the_file_it_had_stored(upload: Callable[..., Any]) -> None:
    stored_at_failure: list[str] = []
    with database_failing(lambda sql: bool(INSERT_IMAGE.match(sql)), seen=stored_at_failure):
        response = upload(quadrants())
    assert_problem(response, 503, "database_unavailable")
    assert len(stored_at_failure) == 1  # the file was stored first…
    assert Image.objects.count() == 0  # …no row was saved…
    assert stored_names() == []  # …and the file is gone again.


def test_database_failing_on_insert_keeps_a_file_an_earlier_row_uses(
    upload: Callable[..., Any], served: Callable[..., Any]
) -> None:
    raw = encode(quadrants(), "PNG")
    first = upload(raw, title="first").json()
    with database_failing(lambda sql: bool(INSERT_IMAGE.match(sql))):
        assert_problem(upload(raw, title="second"), 503, "database_unavailable")
    assert list(Image.objects.values_list("title", flat=True)) == ["first"]
    assert stored_names() == [name_of(first)]
    assert served(first["url"]).size == (400, 200)


def test_failed_upload_never_deletes_a_file_that_a_row_references(upload: Callable[..., Any]) -> None:
    # The first row's file vanished (a loss). An identical upload stores it again, then its own row fails:
    # its cleanup must see the first row and keep the file it just stored, which heals the loss.
    raw = encode(quadrants(), "PNG")
    first = upload(raw, title="first").json()
    remove_stored_file(name_of(first))
    with database_failing(lambda sql: bool(INSERT_IMAGE.match(sql))):
        assert_problem(upload(raw, title="second"), 503, "database_unavailable")
    assert Image.objects.count() == 1
    assert stored_names() == [name_of(first)]


def test_database_gone_after_the_file_was_stored_leaves_at_most_an_orphan(
    upload: Callable[..., Any],
) -> None:
    # The database fails every query once the file is stored (as if it crashed between the two): the
    # cleanup cannot ask whether a row uses the file, so it keeps it. No row, one unreferenced file,
    # which `reconcile_storage --fix` removes (tests/test_reconcile.py).
    with database_failing(lambda sql: not sql.lstrip().upper().startswith(SAVEPOINTS)):
        response = upload(quadrants())
    assert_problem(response, 503, "database_unavailable")
    assert Image.objects.count() == 0
    [orphan] = stored_names()
    assert orphan.startswith("images/")
    assert image_file_discard_unreferenced(name=orphan) is True  # what `reconcile_storage --fix` does
    assert_rows_match_stored_files()


# --- Concurrent identical uploads ----------------------------------------------------------------


def test_file_removed_by_a_concurrent_failed_upload_is_stored_again(
    upload: Callable[..., Any], served: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Request A stored the file and then failed to save its row; its cleanup removed the file just after
    # this request (B) found it stored. B checks again under the lock before saving its row, and stores
    # the file again: B's row never points at nothing.
    real_store = storage.store_as
    calls: list[str] = []

    def store_then_lose_it(name: str, data: bytes, *, media_type: str) -> bool:
        created = real_store(name, data, media_type=media_type)
        if not calls:
            remove_stored_file(name)  # A's cleanup, between B's store and B's row
        calls.append(name)
        return created

    monkeypatch.setattr(storage, "store_as", store_then_lose_it)
    response = upload(quadrants())
    assert response.status_code == 201
    assert len(calls) == 2  # stored, then checked (and stored again) under the lock
    assert stored_names() == [name_of(response.json())]
    assert served(response.json()["url"]).size == (400, 200)


def test_identical_uploads_store_one_file_for_both_rows(upload: Callable[..., Any]) -> None:
    raw = encode(quadrants(), "PNG")
    first, second = upload(raw, title="a").json(), upload(raw, title="b").json()
    assert first["url"] == second["url"]
    assert stored_names() == [name_of(first)]
    assert Image.objects.filter(file=name_of(first)).count() == 2


@pytest.mark.django_db(transaction=True)
def test_failed_upload_waits_for_a_concurrent_identical_upload_and_keeps_its_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Real concurrency, two threads with their own connections. A stores the file, fails to save its row
    # and cleans up; meanwhile B found the file stored and saves its row. A's cleanup must wait for B's
    # transaction (the per-name lock) and then see B's row, so the file stays.
    raw = encode(quadrants(), "PNG")
    a_stored, b_inserted = threading.Event(), threading.Event()
    results: dict[str, Any] = {}
    real_lock = locks.file_name_lock

    @contextmanager
    def lock(name: str) -> Iterator[None]:
        if threading.current_thread().name == "a":
            a_stored.set()  # the file is stored before the first lock
            if results.get("a_failed"):
                b_inserted.wait(10)  # A's cleanup starts while B's row is saved but not committed
        with real_lock(name):
            yield

    monkeypatch.setattr(locks, "file_name_lock", lock)

    def a_statement(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if INSERT_IMAGE.match(sql):
            results["a_failed"] = True
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    def b_statement(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        answer = execute(sql, params, many, context)
        if INSERT_IMAGE.match(sql):
            b_inserted.set()
            # B commits only once A's cleanup waits for the lock that B holds.
            results["a_waited"] = until(lambda: lock_waiters(context["connection"]) > 0)
        return answer

    def run(who: str, wrapper: Any) -> None:
        try:
            with connection.execute_wrapper(wrapper):
                results[who] = image_create(upload=io.BytesIO(raw), title=who)
        except Exception as exc:
            results[who] = exc
        finally:
            connection.close()

    a = threading.Thread(target=run, args=("a", a_statement), name="a")
    a.start()
    assert a_stored.wait(10)
    b = threading.Thread(target=run, args=("b", b_statement), name="b")
    b.start()
    a.join(20)
    b.join(20)
    assert results["a_waited"]
    assert isinstance(results["a"], OperationalError)
    assert isinstance(results["b"], Image)
    assert stored_names() == [results["b"].file.name]
    assert_rows_match_stored_files()


# --- Local files are whole or absent --------------------------------------------------------------


def noise(seed: int = 12) -> PILImage.Image:
    """An image whose PNG is several of the storage's 64 KiB chunks (noise does not compress)."""
    return PILImage.frombytes("RGB", (256, 256), random.Random(seed).randbytes(256 * 256 * 3))


class HookedFile:
    """A file the storage opened for writing; `hook(n)` runs before its n-th write (n counts from 1)."""

    def __init__(self, file: Any, hook: Callable[[int], None]) -> None:
        self._file, self._hook, self._writes = file, hook, 0

    def write(self, data: bytes) -> int:
        self._writes += 1
        self._hook(self._writes)
        return self._file.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def __enter__(self) -> HookedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()


@contextmanager
def local_writes(hook: Callable[[int], None]) -> Iterator[None]:
    """Every file the filesystem storage writes calls `hook(n)` before its n-th chunk.

    Django's FileSystemStorage and ours both write through a file object from `os.fdopen`: the fault lands
    where a full disk or a killed process would stop the write.
    """
    real_fdopen = os.fdopen

    def fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        file = real_fdopen(fd, mode, *args, **kwargs)
        return HookedFile(file, hook) if "w" in mode else file

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fdopen", fdopen)
        yield


@pytest.fixture
def local_files(file_storage: str) -> None:
    if file_storage != "filesystem":
        pytest.skip("about writing local files; an S3 object appears only once it is complete")


def partial_files() -> list[Path]:
    return sorted(Path(django_settings.MEDIA_ROOT).rglob(".*.partial"))


def test_disk_filling_up_during_a_write_leaves_no_file_and_no_partial_file(
    local_files: None, upload: Callable[..., Any], served: Callable[..., Any]
) -> None:
    def disk_fills(write: int) -> None:
        if write == 2:  # the first chunk is on disk, the second does not fit
            raise OSError(errno.ENOSPC, "No space left on device")

    raw = encode(noise(), "PNG")
    with local_writes(disk_fills):
        assert_problem(upload(raw), 503, "storage_unavailable")
    assert_nothing_stored()  # no row, nothing under the final name, no temporary file
    response = upload(raw)  # space again: the same upload works, and its file is whole
    assert response.status_code == 201
    assert served(response.json()["url"]).tobytes() == noise().tobytes()


# Runs image_create in another process that stops after writing the first chunk, until it is killed.
KILLED_WRITER = """
import os, sys
import django

django.setup()
from images.services import image_create

real_fdopen = os.fdopen

class StopsAfterTheFirstChunk:
    def __init__(self, file):
        self.file, self.writes = file, 0

    def write(self, data):
        self.writes += 1
        if self.writes == 2:
            print("first chunk written", flush=True)
            sys.stdin.readline()  # blocks until the test kills this process
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()

def fdopen(fd, mode="r", *args, **kwargs):
    file = real_fdopen(fd, mode, *args, **kwargs)
    return StopsAfterTheFirstChunk(file) if "w" in mode else file

os.fdopen = fdopen
with open(sys.argv[1], "rb") as upload:
    image_create(upload=upload)
"""


def test_process_killed_during_a_write_leaves_no_file_under_the_final_name(
    local_files: None, upload: Callable[..., Any], served: Callable[..., Any], tmp_path: Path
) -> None:
    raw = encode(noise(), "PNG")
    (tmp_path / "upload.png").write_bytes(raw)
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("IMAGERY_TEST", "DATABASE_URL"))},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "IMAGERY_ENV": "development",
        "STORAGE_BACKEND": "filesystem",
        "MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
        "DATA_DIR": str(tmp_path),
    }
    with subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path / "upload.png")],
        cwd=BASE_DIR,
        env=environ,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as writer:
        try:
            assert writer.stdout is not None
            assert writer.stdout.readline() == "first chunk written\n"
        finally:
            writer.kill()  # SIGKILL: no cleanup of any kind runs
            writer.wait(10)
    assert writer.returncode == -signal.SIGKILL

    [partial] = partial_files()
    assert [p for p in stored_names() if not Path(p).name.startswith(".")] == []  # nothing under a final name

    response = upload(raw)  # the same upload, later: stored whole
    assert response.status_code == 201
    assert served(response.json()["url"]).tobytes() == noise().tobytes()
    assert partial.parent == (Path(django_settings.MEDIA_ROOT) / name_of(response.json())).parent

    # reconcile_storage leaves a young partial file alone (a write in progress), reports an old one, and
    # --fix removes it.
    out = io.StringIO()
    call_command("reconcile_storage", stdout=out, stderr=io.StringIO())
    assert "0 partial files" in out.getvalue()
    old = time.time() - storage.PARTIAL_MAX_AGE_SECONDS - 60
    os.utime(partial, (old, old))
    call_command("reconcile_storage", stdout=out, stderr=io.StringIO())
    relative = partial.relative_to(django_settings.MEDIA_ROOT).as_posix()
    assert f"partial file {relative} (left by a write that was killed)" in out.getvalue()
    call_command("reconcile_storage", "--fix", stdout=out, stderr=io.StringIO())
    assert f"removed partial file {relative}" in out.getvalue()
    assert partial_files() == []


def test_truncated_file_under_the_final_name_is_repaired_by_the_next_identical_upload(
    upload: Callable[..., Any], served: Callable[..., Any]
) -> None:
    # What the old in-place writes left behind: a row whose file was cut short.
    raw = encode(noise(), "PNG")
    first = upload(raw, title="first").json()
    name = name_of(first)
    put_stored_file(name, raw[: len(raw) // 3])  # any prefix: it is not the stored file's size

    second = upload(raw, title="second")
    assert second.status_code == 201
    assert name_of(second.json()) == name
    assert served(first["url"]).tobytes() == noise().tobytes()  # both rows' file, whole again
    assert stored_names() == [name]


@pytest.mark.django_db(transaction=True)
def test_identical_uploads_racing_get_one_whole_file(
    local_files: None, api: Client, served: Callable[..., Any], settings: Any
) -> None:
    # Both requests write the same file at once: each waits after its first chunk until the other has
    # written its own first chunk. Neither may answer with a URL before the file is whole.
    settings.STORAGE_MAX_CONCURRENCY = 2  # both writes under way at once, whatever the cap the suite sets
    raw = encode(noise(), "PNG")
    both_writing = threading.Barrier(2, timeout=20)
    answers: dict[str, Any] = {}

    def after_the_first_chunk(write: int) -> None:
        if write == 2:
            both_writing.wait()

    def post(title: str) -> None:
        try:
            file = io.BytesIO(raw)
            file.name = "noise.png"
            answers[title] = Client().post(
                "/images", {"image": file, "title": title}, content_type=MULTIPART_CONTENT
            )
        finally:
            connections.close_all()

    with local_writes(after_the_first_chunk):
        threads = [threading.Thread(target=post, args=(title,)) for title in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert [answers[t].status_code for t in ("a", "b")] == [201, 201]
    [name] = {name_of(answers[t].json()) for t in ("a", "b")}
    assert stored_names() == [name]
    for title in ("a", "b"):
        assert served(answers[title].json()["url"]).tobytes() == noise().tobytes()
    assert Image.objects.filter(file=name).count() == 2


# --- No storage call holds the database --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_no_storage_call_happens_inside_a_database_transaction(
    upload: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # On SQLite a write transaction holds the one write lock of the whole database: a storage call inside
    # it (an S3 request that retries for seconds) would hold up every upload's insert meanwhile.
    backend = type(storages["default"])
    calls: list[tuple[str, bool]] = []  # (method, inside a transaction)

    def watched(method: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(self: Any, *args: Any) -> Any:
            calls.append((method, connection.in_atomic_block))
            return real(self, *args)

        return call

    for method in ("_save", "delete", "exists", "size", "open", "listdir"):
        monkeypatch.setattr(backend, method, watched(method, getattr(backend, method)))

    raw = encode(quadrants(), "PNG")
    assert upload(raw, title="stored").status_code == 201
    assert upload(raw, title="found").status_code == 201
    with database_failing(lambda sql: bool(INSERT_IMAGE.match(sql))):  # stored, then removed again
        assert_problem(upload(quadrants((20, 40))), 503, "database_unavailable")
    put_stored_file(ORPHAN, b"left by a crash")
    call_command("reconcile_storage", "--fix", stdout=io.StringIO(), stderr=io.StringIO())

    assert {"_save", "delete"} <= {method for method, _ in calls}
    assert [method for method, inside in calls if inside] == []


# --- A lock held by a stalled request costs its waiters a bounded wait ---------------------------------


def named(raw: bytes) -> io.BytesIO:
    file = io.BytesIO(raw)
    file.name = "quadrants.png"
    return file


@pytest.mark.django_db(transaction=True)
def test_an_upload_waiting_for_a_files_lock_held_too_long_answers_503_and_saves_nothing(
    api: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The holder stands for a request whose call to the store hangs under the file's lock (an identical
    # upload, a delete): a request waiting for that lock waits as long as the database waits for its own
    # locks, then answers 503, instead of holding its thread for as long as the holder is stalled. (The
    # database's lock wait is set short for this test: only the waiting connection's.)
    raw = encode(quadrants(), "PNG")
    first = api.post("/images", {"image": named(raw), "title": "first"}, content_type=MULTIPART_CONTENT)
    assert first.status_code == 201
    name = name_of(first.json())
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with locks.file_name_lock(name):
                holding.set()
                release.wait(30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    try:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET statement_timeout = '300ms'")
        else:
            monkeypatch.setitem(connection.settings_dict["OPTIONS"], "timeout", 0.3)
        second = api.post("/images", {"image": named(raw), "title": "second"}, content_type=MULTIPART_CONTENT)
        assert holder.is_alive()  # answered while the lock was still held
    finally:
        release.set()
        holder.join(10)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("RESET statement_timeout")
    assert_problem(second, 503, "server_busy")
    assert int(second["Retry-After"]) > 0
    assert list(Image.objects.values_list("title", flat=True)) == ["first"]
    assert stored_names() == [name]
    # The lock free again, the same upload goes through.
    monkeypatch.undo()
    third = api.post("/images", {"image": named(raw), "title": "third"}, content_type=MULTIPART_CONTENT)
    assert third.status_code == 201 and name_of(third.json()) == name
