"""All or nothing: when the store or the database fails during an upload, rows and files still match.

Faults are injected where they happen in production: in the storage backend's write, in the SQL sent to the
database, and (tests/test_s3.py) in the S3 server itself. On both backends (`make test` runs them twice).
"""

from __future__ import annotations

import errno
import io
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from django.core.files.storage import storages
from django.db import OperationalError, connection

from images import storage
from images.models import Image
from images.services import image_create, image_file_discard_unreferenced
from tests.conftest import (
    assert_nothing_stored,
    assert_rows_match_stored_files,
    name_of,
    remove_stored_file,
    stored_names,
)
from tests.images import encode, quadrants
from tests.problems import assert_problem

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
    real_store = storage.store
    calls: list[storage.StoredFile] = []

    def store_then_lose_it(data: bytes, extension: str, *, media_type: str) -> storage.StoredFile:
        stored = real_store(data, extension, media_type=media_type)
        if not calls:
            remove_stored_file(stored.name)  # A's cleanup, between B's store and B's row
        calls.append(stored)
        return stored

    monkeypatch.setattr(storage, "store", store_then_lose_it)
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
def test_failed_upload_waits_for_a_concurrent_identical_upload_and_keeps_its_file() -> None:
    # Real concurrency, two threads with their own connections. A stores the file, fails to save its row
    # and cleans up; meanwhile B found the file stored and saves its row. A's cleanup must wait for B's
    # transaction (the per-name lock) and then see B's row, so the file stays.
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serializes every write transaction; the per-name lock is PostgreSQL's")
    raw = encode(quadrants(), "PNG")
    a_stored, b_inserted = threading.Event(), threading.Event()
    results: dict[str, Any] = {}

    def a_statement(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if INSERT_IMAGE.match(sql):
            results["a_failed"] = True
            raise OperationalError("server closed the connection unexpectedly")
        if "pg_advisory_xact_lock" in sql:
            a_stored.set()  # the file is stored before the first lock
            if results.get("a_failed"):
                b_inserted.wait(10)  # A's cleanup starts while B's row is saved but not committed
        return execute(sql, params, many, context)

    def b_statement(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        answer = execute(sql, params, many, context)
        if INSERT_IMAGE.match(sql):
            b_inserted.set()
            time.sleep(0.5)  # time for A to reach the lock and wait there; then B commits
        return answer

    def run(who: str, wrapper: Any) -> None:
        try:
            with connection.execute_wrapper(wrapper):
                results[who] = image_create(upload=io.BytesIO(raw), title=who)
        except Exception as exc:
            results[who] = exc
        finally:
            connection.close()

    a = threading.Thread(target=run, args=("a", a_statement))
    a.start()
    assert a_stored.wait(10)
    b = threading.Thread(target=run, args=("b", b_statement))
    b.start()
    a.join(20)
    b.join(20)
    assert isinstance(results["a"], OperationalError)
    assert isinstance(results["b"], Image)
    assert stored_names() == [results["b"].file.name]
    assert_rows_match_stored_files()
