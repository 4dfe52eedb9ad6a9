"""`manage.py reconcile_storage [--verify] [--fix]`: orphans, losses and corrupt files on either backend, its
output, its exit codes."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.storage import storages
from django.core.management import CommandError, call_command

from images.models import Image
from tests.conftest import ORPHAN, name_of, put_stored_file, remove_stored_file, stored_names
from tests.images import encode, quadrants


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def reconcile_storage(*args: str, stderr: io.StringIO | None = None) -> str:
    out = io.StringIO()
    call_command("reconcile_storage", *args, stdout=out, stderr=stderr or io.StringIO())
    return out.getvalue()


def test_reconcile_finds_nothing_when_rows_and_files_match(upload: Callable[..., Any]) -> None:
    upload(quadrants((40, 20)), title="a")
    upload(quadrants((40, 20)), title="same file")
    upload(quadrants((20, 40)), title="b")
    report = reconcile_storage()
    assert "2 stored files, 3 rows referencing 2 files: 0 orphans (0 removed), 0 lost files." in report
    assert "orphan " not in report and "LOST" not in report


def test_reconcile_reports_an_orphan_and_fix_removes_it(upload: Callable[..., Any]) -> None:
    kept = name_of(upload(quadrants()).json())
    put_stored_file(ORPHAN, b"left by a crash")

    report = reconcile_storage()
    assert f"orphan {ORPHAN} (no row points at it)" in report
    assert "1 orphans (0 removed), 0 lost files" in report
    assert "Run with --fix" in report
    assert stored_names() == sorted([kept, ORPHAN])  # reporting changes nothing

    report = reconcile_storage("--fix")
    assert f"removed orphan {ORPHAN}" in report
    assert stored_names() == [kept]
    assert "0 orphans" in reconcile_storage()


def test_reconcile_reports_a_loss_and_exits_non_zero(upload: Callable[..., Any]) -> None:
    first = upload(quadrants(), title="first").json()
    second = upload(quadrants(), title="second").json()
    upload(quadrants((20, 40)), title="fine")
    remove_stored_file(name_of(first))

    for args in ((), ("--fix",)):  # --fix never touches rows or their files
        out = io.StringIO()
        with pytest.raises(CommandError, match="2 rows have lost their file") as error:
            call_command("reconcile_storage", *args, stdout=out, stderr=io.StringIO())
        assert error.value.returncode == 1
        assert f"LOST {name_of(first)} (rows {first['id']}, {second['id']})" in out.getvalue()
        assert Image.objects.count() == 3

    Image.objects.filter(file=name_of(first)).delete()  # the operator's decision; leaves the rest matching
    assert "0 lost files" in reconcile_storage()


def test_reconcile_exits_2_when_the_storage_cannot_be_listed(
    upload: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    upload(quadrants())

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("the store does not answer")

    backend = storages["default"]
    with monkeypatch.context() as patch, pytest.raises(CommandError, match="unavailable") as error:
        if hasattr(backend, "bucket_name"):
            patch.setattr(type(backend.connection.meta.client), "get_paginator", unreachable)
        else:
            patch.setattr(type(backend), "listdir", unreachable)
        reconcile_storage()
    assert error.value.returncode == 2


def test_reconcile_prints_plain_progress_lines_without_a_terminal(upload: Callable[..., Any]) -> None:
    upload(quadrants())
    progress = io.StringIO()
    reconcile_storage(stderr=progress)
    assert progress.getvalue().splitlines() == ["stored files: 1, done.", "rows: 1 of 1, done."]


def test_reconcile_draws_a_progress_bar_on_a_terminal(upload: Callable[..., Any]) -> None:
    upload(quadrants())
    put_stored_file(ORPHAN, b"left by a crash")
    terminal = Terminal()
    reconcile_storage("--fix", stderr=terminal)
    bar = terminal.getvalue()
    assert "\r" in bar and "100%" in bar and "removing orphans" in bar
    assert "done." not in bar


def test_reconcile_reports_a_row_whose_file_is_truncated_and_fix_keeps_it(
    upload: Callable[..., Any], served: Callable[..., Any]
) -> None:
    raw = encode(quadrants(), "PNG")
    body = upload(raw).json()
    name = name_of(body)
    put_stored_file(name, raw[:100])  # cut short, as an in-place write that failed leaves it

    for args in ((), ("--fix",)):  # a row uses it: reported, never deleted
        out = io.StringIO()
        with pytest.raises(
            CommandError, match="1 rows have lost their file or their file is corrupt"
        ) as error:
            call_command("reconcile_storage", *args, stdout=out, stderr=io.StringIO())
        assert error.value.returncode == 1
        assert f"CORRUPT {name} (rows {body['id']}): not the bytes its name says" in out.getvalue()
        assert "1 corrupt files (1 used by rows)" in out.getvalue()
        assert stored_names() == [name]

    assert upload(raw).status_code == 201  # the same image uploaded again repairs the file
    assert served(body["url"]).size == (400, 200)
    assert "0 corrupt files" in reconcile_storage()


def test_reconcile_verify_finds_files_whose_bytes_do_not_match_their_name(
    upload: Callable[..., Any], served: Callable[..., Any]
) -> None:
    raw = encode(quadrants(), "PNG")
    body = upload(raw).json()
    name, stored_bytes = name_of(body), served(body["url"]).served_bytes
    put_stored_file(name, bytes(body["size"]))  # the right size, the wrong bytes: only a hash tells
    put_stored_file(ORPHAN, b"left by a crash")  # its name is not the hash of these bytes

    report = reconcile_storage()
    assert "CORRUPT" not in report and "0 corrupt files" in report
    assert f"orphan {ORPHAN} (no row points at it)" in report

    out = io.StringIO()
    with pytest.raises(CommandError, match="1 rows"):
        call_command("reconcile_storage", "--verify", "--fix", stdout=out, stderr=io.StringIO())
    assert f"CORRUPT {name} (rows {body['id']})" in out.getvalue()
    assert f"removed orphan {ORPHAN}, corrupt" in out.getvalue()  # no row used it
    assert "2 corrupt files (1 used by rows)" in out.getvalue()
    assert stored_names() == [name]

    put_stored_file(name, stored_bytes)  # restored from a backup
    assert "0 corrupt files" in reconcile_storage("--verify")
