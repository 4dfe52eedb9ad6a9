"""A private image's bytes are never reachable without a signature: stored under `private/`, which neither
/media/ (images/files.py), nginx nor the bucket policy serves; content shared with a public image is never
shared as a file; a change of visibility moves the file crash-safe (images/services.py::image_update)."""

from __future__ import annotations

from typing import Any

import pytest

from images import services
from images.models import Image
from images.reconciliation import reconcile
from tests.conftest import assert_nothing_stored, files_url, put_stored_file, stored_names
from tests.private import keys, private, upload_as, who  # noqa: F401 (fixtures)
from tests.problems import assert_problem

# ruff: noqa: F811 (the fixtures of tests/private.py, named as parameters)


def private_files() -> list[str]:
    return [name for name in stored_names() if name.startswith("private/images/")]


def public_files() -> list[str]:
    return [name for name in stored_names() if name.startswith("images/")]


def test_a_private_file_is_not_served_by_its_storage_url(api, private):
    """Filesystem: /media/ serves only images/…; S3: the bucket policy lets anonymous reads reach only
    images/* (moto enforces bucket policies for anonymous requests, as S3 and MinIO do)."""
    [name] = private_files()
    response = api.get(f"{files_url()}{name}")
    assert response.status_code in (403, 404), response.status_code
    # The same file under the public prefix would be served: the prefix is what keeps it private.
    put_stored_file(name.removeprefix("private/"), b"public bytes")
    assert api.get(f"{files_url()}{name.removeprefix('private/')}").status_code == 200
    reconcile(fix=True)  # the placed copy is an orphan: the test ends clean


def test_no_answer_names_the_private_file(api, private, keys):
    """Neither the object, its file's ETag nor its headers say where the private file is stored."""
    [name] = private_files()
    digest = name.rsplit("/", 1)[-1].split(".")[0]
    detail = api.get(f"/images/{private['id']}", **who(keys, "owner"))
    assert digest not in detail.content.decode()
    assert "/media/" not in private["url"] and "private/" not in private["url"]


def test_the_same_bytes_public_and_private_are_two_files(api, upload_as, keys):
    public = upload_as(keys["owner"]).json()
    secret = upload_as(keys["owner"], visibility="private").json()
    assert len(public_files()) == 1 and len(private_files()) == 1
    # Deleting the private one leaves the public one's file, and the other way round.
    assert api.delete(f"/images/{secret['id']}", **who(keys, "owner")).status_code == 204
    assert len(public_files()) == 1 and private_files() == []
    assert api.get(public["url"]).status_code == 200
    secret = upload_as(keys["owner"], visibility="private").json()
    assert api.delete(f"/images/{public['id']}", **who(keys, "owner")).status_code == 204
    assert public_files() == [] and len(private_files()) == 1
    assert api.get(secret["url"].removeprefix("http://testserver")).status_code == 200


def test_making_an_image_private_moves_its_file_and_drops_its_public_renditions(api, upload_as, keys):
    image = upload_as(keys["owner"]).json()
    assert api.get(f"/images/{image['id']}/file?width=20").status_code == 200
    assert any(name.startswith("renditions/") for name in stored_names())
    response = api.patch(
        f"/images/{image['id']}",
        {"visibility": "private"},
        content_type="application/json",
        **who(keys, "owner"),
    )
    assert response.status_code == 200, response.content
    moved = response.json()
    assert moved["visibility"] == "private" and "sig=" in moved["url"]
    assert [n for n in stored_names() if not n.startswith("private/")] == []
    assert len(private_files()) == 1
    # The old public URL answers nothing now; the signed one serves the same pixels.
    assert api.get(image["url"]).status_code in (403, 404)
    assert_problem(api.get(f"/images/{image['id']}/file"), 404)
    assert api.get(moved["url"].removeprefix("http://testserver")).status_code == 200


def test_making_it_public_again_moves_it_back(api, private, keys):
    response = api.patch(
        f"/images/{private['id']}",
        {"visibility": "public"},
        content_type="application/json",
        **who(keys, "owner"),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["visibility"] == "public"
    assert private_files() == [] and len(public_files()) == 1
    assert api.get(body["url"]).status_code == 200
    assert api.get(f"/images/{private['id']}/file").status_code == 200  # anonymous now


def test_making_a_shared_file_private_keeps_the_other_rows_file(api, upload_as, keys):
    first = upload_as(keys["owner"]).json()
    second = upload_as(keys["owner"]).json()
    api.patch(
        f"/images/{first['id']}",
        {"visibility": "private"},
        content_type="application/json",
        **who(keys, "owner"),
    )
    assert len(public_files()) == 1 and len(private_files()) == 1
    assert api.get(second["url"]).status_code == 200


def test_private_via_patch_needs_keys_turned_on(api, upload_as):
    image = upload_as(None).json()
    response = api.patch(f"/images/{image['id']}", {"visibility": "private"}, content_type="application/json")
    assert_problem(response, 400, field="visibility")
    assert Image.objects.get(pk=image["id"]).visibility == "public"
    assert len(public_files()) == 1 and private_files() == []


def test_a_change_that_loses_its_precondition_leaves_the_file_where_it_was(api, private, keys):
    response = api.patch(
        f"/images/{private['id']}",
        {"visibility": "public"},
        content_type="application/json",
        HTTP_IF_MATCH='"stale"',
        **who(keys, "owner"),
    )
    assert_problem(response, 412)
    assert len(private_files()) == 1 and public_files() == []


class Killed(BaseException):
    """A process killed at this point: nothing after it runs, no cleanup."""


def test_killed_after_the_copy_every_row_keeps_its_file_and_reconcile_finds_one_orphan(
    api, private, keys, monkeypatch
):
    def killed(**kwargs: Any) -> Any:
        raise Killed

    monkeypatch.setattr(services, "_image_save", killed)
    monkeypatch.setattr(services, "image_file_discard_unreferenced", lambda **kwargs: False)  # no cleanup
    with pytest.raises(Killed):
        services.image_update(image_id=private["id"], visibility="public")
    monkeypatch.undo()
    report = reconcile()
    assert not report.losses and len(report.orphans) == 1 and report.orphans[0].startswith("images/")
    assert Image.objects.get(pk=private["id"]).file.name.startswith("private/images/")
    reconcile(fix=True)
    assert reconcile().clean


def test_killed_after_the_row_switched_the_old_file_is_an_orphan_nothing_is_lost(
    api, private, keys, monkeypatch
):
    def killed(**kwargs: Any) -> Any:
        raise Killed

    monkeypatch.setattr(services, "image_file_discard_unreferenced", killed)
    with pytest.raises(Killed):
        services.image_update(image_id=private["id"], visibility="public")
    monkeypatch.undo()
    report = reconcile()
    assert not report.losses and len(report.orphans) == 1 and report.orphans[0].startswith("private/images/")
    assert Image.objects.get(pk=private["id"]).file.name.startswith("images/")
    reconcile(fix=True)
    assert reconcile().clean


def test_reconcile_knows_private_renditions(api, private, keys):
    assert api.get(private["presets"]["thumb"].removeprefix("http://testserver")).status_code == 200
    [rendition] = [n for n in stored_names() if n.startswith("private/renditions/")]
    report = reconcile()
    assert report.clean, report  # current, of a row's file: neither orphan nor stale
    # A private rendition of a file no private row uses is an orphan (even if a public row has the bytes).
    put_stored_file(rendition.replace("/thumb.", "/w8.", 1), b"x")
    assert reconcile().rendition_stale == [rendition.replace("/thumb.", "/w8.", 1)]
    api.delete(f"/images/{private['id']}", **who(keys, "owner"))
    assert_nothing_stored()
