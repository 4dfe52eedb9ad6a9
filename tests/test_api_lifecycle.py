"""Deleting and editing images through the API: gone means gone, and nothing lost on the way."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.files.storage import storages
from django.core.management import call_command
from django.db import OperationalError, connection
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from images import locks, storage
from images.models import Image
from images.reconciliation import reconcile
from images.services import image_create, image_delete, image_update
from tests.conftest import assert_rows_match_stored_files, name_of, stored_names
from tests.images import encode, png_upload, quadrants
from tests.lists import get_list, ids, local, walk
from tests.problems import assert_problem
from tests.races import lock_waiters, until

JSON = "application/json"


def patch(api: Any, image_id: int, body: Any, content_type: str = JSON, **headers: str) -> Any:
    data = json.dumps(body) if content_type == JSON else body
    return api.patch(f"/images/{image_id}", data, content_type=content_type, headers=headers)


# --- DELETE -----------------------------------------------------------------------------------------


def test_delete_answers_204_and_the_image_and_its_file_are_gone(api, create):
    body = create(title="wrong photo")
    response = api.delete(f"/images/{body['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(api.get(f"/images/{body['id']}"), 404)
    assert body["id"] not in ids(get_list(api))
    assert stored_names() == []
    assert_problem(api.delete(f"/images/{body['id']}"), 404)


@pytest.mark.parametrize("image_id", ["999999", "²", "99999999999999999999999"])
def test_delete_of_an_unknown_image_is_404(api, image_id):
    assert_problem(api.delete(f"/images/{image_id}"), 404)


def test_a_file_shared_by_identical_uploads_goes_with_the_last_of_them(api, upload, served):
    raw = encode(quadrants((60, 40)), "PNG")
    first, second = (upload(raw, title=title).json() for title in ("first", "second"))
    assert name_of(first) == name_of(second)
    assert api.delete(f"/images/{first['id']}").status_code == 204
    assert stored_names() == [name_of(second)]
    assert served(second["url"]).size == (60, 40)
    assert api.delete(f"/images/{second['id']}").status_code == 204
    assert stored_names() == []


def test_renditions_go_with_the_last_image_that_uses_their_file(api, upload):
    raw = encode(quadrants((200, 100)), "PNG")
    first, second = (upload(raw, title=title).json() for title in ("first", "second"))
    assert api.get(f"/images/{first['id']}/file", {"width": 40, "format": "webp"}).status_code == 200
    assert api.get(f"/images/{first['id']}/file", {"preset": "thumb"}).status_code == 200
    renditions = [name for name in stored_names() if name.startswith("renditions/")]
    assert len(renditions) == 2
    assert api.delete(f"/images/{first['id']}").status_code == 204
    assert sorted(stored_names()) == sorted([name_of(second), *renditions])  # the other image uses them
    assert api.delete(f"/images/{second['id']}").status_code == 204
    assert stored_names() == []


def test_delete_with_the_store_down_answers_204_and_leaves_an_orphan_for_reconcile(api, create, monkeypatch):
    body = create()

    def store_down(self: Any, name: str) -> None:
        raise ConnectionError("the store is down")

    monkeypatch.setattr(type(storages["default"]), "delete", store_down)
    assert api.delete(f"/images/{body['id']}").status_code == 204
    monkeypatch.undo()
    assert not Image.objects.filter(pk=body["id"]).exists()
    assert stored_names() == [name_of(body)]
    report = reconcile(fix=True)
    assert report.orphans == [name_of(body)] and report.removed == [name_of(body)]
    assert stored_names() == []


def test_delete_with_the_database_down_answers_503_and_changes_nothing(api, create):
    body = create()

    def fail_deletes(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.lstrip().upper().startswith("DELETE"):
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail_deletes):
        response = api.delete(f"/images/{body['id']}")
    assert_problem(response, 503)
    assert Image.objects.filter(pk=body["id"]).exists()
    assert stored_names() == [name_of(body)]


def test_counts_and_cursor_pages_stay_right_across_deletes(api, create):
    made = [create(title=f"beach {i}")["id"] for i in range(7)]  # newest last
    first = get_list(api, cursor="", page_size=3)
    assert ids(first) == made[::-1][:3]
    # Delete one image on the page already seen and two on pages not yet seen.
    for image_id in (made[5], made[3], made[0]):
        assert api.delete(f"/images/{image_id}").status_code == 204
    rest = walk(api, local(first.json()["next"]), "next")
    assert [image_id for page in rest for image_id in page] == [made[2], made[1]]
    assert get_list(api).json()["count"] == 4
    assert get_list(api, title="beach").json()["count"] == 4


def test_a_capped_filtered_count_stays_right_across_deletes(api, create, settings):
    settings.LIST_COUNT_CAP = 2
    made = [create(title=f"dune {i}")["id"] for i in range(4)]
    assert get_list(api, title="dune", page_size=1).json()["count_exact"] is False
    for image_id in made[:2]:
        assert api.delete(f"/images/{image_id}").status_code == 204
    body = get_list(api, title="dune", page_size=1).json()
    assert (body["count"], body.get("count_exact", True)) == (2, True)


# --- PATCH ------------------------------------------------------------------------------------------


def test_patch_changes_the_title_and_the_search_follows(api, create):
    body = create(title="wrong title")
    response = patch(api, body["id"], {"title": "  sunset over the bay  "})
    assert response.status_code == 200
    assert response.json() == {**body, "title": "sunset over the bay"}
    assert api.get(f"/images/{body['id']}").json()["title"] == "sunset over the bay"
    assert ids(get_list(api, title="SUNSET")) == [body["id"]]
    assert ids(get_list(api, title="wrong")) == []


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", "title=from+a+form"),
        (MULTIPART_CONTENT, encode_multipart(BOUNDARY, {"title": "from a form"})),
    ],
)
def test_patch_takes_a_form_too(api, create, content_type, body):
    image = create()
    response = patch(api, image["id"], body, content_type=content_type)
    assert response.status_code == 200, response.content
    assert response.json()["title"] == "from a form"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 256}, "title"),
        ({"title": "a\x00b"}, "title"),
        ({"title": 42}, "title"),
        ({"title": None}, "title"),
        ({}, "title"),
        ({"title": "fine", "width": 10}, "width"),
        ({"title": "fine", "image": "x"}, "image"),
        ([{"title": "in a list"}], "non_field_errors"),
    ],
)
def test_patch_refuses_a_bad_title_or_any_other_field_and_changes_nothing(api, create, body, field):
    image = create(title="kept")
    assert_problem(patch(api, image["id"], body), 400, field=field)
    assert api.get(f"/images/{image['id']}").json() == image


def test_patch_of_an_unknown_image_is_404(api):
    assert_problem(patch(api, 999999, {"title": "x"}), 404)


def test_patch_with_the_current_etag_changes_and_with_a_stale_one_is_412(api, create):
    image = create(title="v1")
    etag = api.get(f"/images/{image['id']}")["ETag"]
    changed = patch(api, image["id"], {"title": "v2"}, **{"If-Match": etag})
    assert changed.status_code == 200
    assert changed["ETag"] == api.get(f"/images/{image['id']}")["ETag"] != etag
    stale = patch(api, image["id"], {"title": "v3"}, **{"If-Match": etag})
    assert_problem(stale, 412, code="precondition_failed")
    assert api.get(f"/images/{image['id']}").json()["title"] == "v2"


@pytest.mark.parametrize(("if_match", "status"), [("*", 200), ('"nope", *', 200), ("W/{etag}", 412)])
def test_if_match_star_matches_and_a_weak_tag_never_does(api, create, if_match, status):
    image = create()
    etag = api.get(f"/images/{image['id']}")["ETag"]
    response = patch(api, image["id"], {"title": "new"}, **{"If-Match": if_match.format(etag=etag)})
    assert response.status_code == status


def test_the_etag_is_the_same_through_every_host_name_and_a_patch_through_another_is_no_412(
    api, create, settings
):
    settings.ALLOWED_HOSTS = ["testserver", "images.example.com"]
    image = create(title="v1")
    here = api.get(f"/images/{image['id']}")
    there = api.get(f"/images/{image['id']}", headers={"Host": "images.example.com"})
    assert there.json()["srcset"] != here.json()["srcset"]  # other absolute URLs, the same object
    assert there["ETag"] == here["ETag"]
    assert (
        api.get(
            f"/images/{image['id']}", headers={"Host": "images.example.com", "If-None-Match": here["ETag"]}
        ).status_code
        == 304
    )
    changed = patch(
        api, image["id"], {"title": "v2"}, **{"Host": "images.example.com", "If-Match": here["ETag"]}
    )
    assert changed.status_code == 200, changed.content
    assert changed["ETag"] == api.get(f"/images/{image['id']}")["ETag"] != here["ETag"]


def test_a_title_changed_and_changed_back_has_a_new_etag(api, create):
    image = create(title="v1")
    etag = api.get(f"/images/{image['id']}")["ETag"]
    assert patch(api, image["id"], {"title": "v2"}).status_code == 200
    assert patch(api, image["id"], {"title": "v1"}).status_code == 200
    assert api.get(f"/images/{image['id']}")["ETag"] != etag  # someone changed it meanwhile
    assert_problem(
        patch(api, image["id"], {"title": "v3"}, **{"If-Match": etag}), 412, code="precondition_failed"
    )
    assert api.get(f"/images/{image['id']}").json()["title"] == "v1"


@pytest.mark.parametrize(
    ("if_match", "status"),
    [("{etag}", 204), ("*", 204), ('"nope", {etag}', 204), ("W/{etag}", 412), ('"nope"', 412)],
)
def test_delete_honours_if_match_star_matches_and_a_weak_tag_never_does(api, create, if_match, status):
    image = create()
    etag = api.get(f"/images/{image['id']}")["ETag"]
    response = api.delete(f"/images/{image['id']}", headers={"If-Match": if_match.format(etag=etag)})
    assert response.status_code == status
    if status == 412:
        assert_problem(response, 412, code="precondition_failed")
        assert api.get(f"/images/{image['id']}").status_code == 200
        assert stored_names() == [name_of(image)]
    else:
        assert_problem(api.get(f"/images/{image['id']}"), 404)
        assert stored_names() == []


def test_delete_with_a_stale_etag_is_412_and_deletes_nothing(api, create):
    image = create(title="v1")
    etag = api.get(f"/images/{image['id']}")["ETag"]
    assert patch(api, image["id"], {"title": "v2"}).status_code == 200
    assert_problem(
        api.delete(f"/images/{image['id']}", headers={"If-Match": etag}), 412, code="precondition_failed"
    )
    assert api.get(f"/images/{image['id']}").json()["title"] == "v2"
    assert stored_names() == [name_of(image)]
    fresh = api.get(f"/images/{image['id']}")["ETag"]
    assert api.delete(f"/images/{image['id']}", headers={"If-Match": fresh}).status_code == 204


def test_a_delete_checks_if_match_against_the_row_it_deletes(api, create, monkeypatch):
    # Another client's change commits after the DELETE's view has read the row, before the row is deleted:
    # the If-Match that named the row as it was read no longer matches, so nothing is deleted.
    image = create(title="as read")
    etag = api.get(f"/images/{image['id']}")["ETag"]
    real_lock = locks.file_name_lock

    @contextmanager
    def lock(name: str) -> Iterator[None]:
        with real_lock(name):
            image_update(image_id=image["id"], title="changed meanwhile")
            yield

    monkeypatch.setattr(locks, "file_name_lock", lock)
    response = api.delete(f"/images/{image['id']}", headers={"If-Match": etag})
    monkeypatch.undo()
    assert_problem(response, 412, code="precondition_failed")
    assert api.get(f"/images/{image['id']}").json()["title"] == "changed meanwhile"
    assert stored_names() == [name_of(image)]


# --- Who may ----------------------------------------------------------------------------------------


def make_key(name: str, *, admin: bool = False) -> str:
    out = io.StringIO()
    call_command("apikey", "create", name, *(["--admin"] if admin else []), stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


@pytest.fixture
def keys(db: None) -> dict[str, str]:
    return {"owner": make_key("owner"), "other": make_key("other"), "admin": make_key("admin", admin=True)}


CHANGES = {
    "delete": (lambda api, image_id, **h: api.delete(f"/images/{image_id}", headers=h), 204),
    "patch": (lambda api, image_id, **h: patch(api, image_id, {"title": "changed"}, **h), 200),
}


@pytest.mark.parametrize("mode", ["write", "all"])
@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize(("who", "status"), [("owner", None), ("admin", None), ("other", 403), (None, 401)])
def test_only_the_uploading_key_or_an_admin_key_may_change_an_image(
    api, settings, keys, mode, change, who, status
):
    settings.IMAGERY_AUTH = mode
    owner = {"Authorization": f"Bearer {keys['owner']}"}
    image_id = api.post("/images", {**png_upload(), "title": "original"}, headers=owner).json()["id"]
    send, done = CHANGES[change]
    headers = {"Authorization": f"Bearer {keys[who]}"} if who else {}
    response = send(api, image_id, **headers)
    if status is None:
        assert response.status_code == done, response.content
    else:
        assert_problem(response, status)
        kept = api.get(f"/images/{image_id}", headers=owner)
        assert kept.status_code == 200  # not deleted
        assert kept.json()["title"] != "changed"
        assert kept.json()["title"] == "original"


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_with_open_access_anyone_may_change_an_image(api, create, change):
    send, done = CHANGES[change]
    assert send(api, create()["id"]).status_code == done


def test_the_apikey_command_makes_and_lists_admin_keys(db):
    make_key("root", admin=True)
    make_key("app")
    listing = io.StringIO()
    call_command("apikey", "list", stdout=listing)
    roles = dict(line.split("\t")[::4] for line in listing.getvalue().splitlines())
    assert roles == {"root": "admin", "app": "uploader"}


# --- Races ------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_delete_never_removes_the_file_of_a_concurrent_identical_upload(monkeypatch):
    # The delete removes the last row of a file and, still holding the per-name lock, the file; an upload
    # of the same bytes found the file stored and waits for the lock. Once it has it, it must see the file
    # gone and store it again before saving its row.
    raw = encode(quadrants(), "PNG")
    old = image_create(upload=io.BytesIO(raw), title="old")
    results: dict[str, Any] = {}
    real_delete = storage.delete

    def delete_once_the_upload_waits(name: str) -> bool:
        results["upload_waited"] = until(lambda: lock_waiters(connection) > 0)
        return real_delete(name)

    monkeypatch.setattr(storage, "delete", delete_once_the_upload_waits)

    def run(who: str, work: Callable[[], Any]) -> None:
        try:
            results[who] = work()
        except Exception as exc:
            results[who] = exc
        finally:
            connection.close()

    stored, held = threading.Event(), threading.Event()
    real_lock = locks.file_name_lock

    @contextmanager
    def lock(name: str) -> Iterator[None]:
        if threading.current_thread().name == "upload":
            stored.set()  # the upload's `store` has seen the file there
        with real_lock(name):
            if threading.current_thread().name == "delete":
                held.set()
            yield

    monkeypatch.setattr(locks, "file_name_lock", lock)
    deleter = threading.Thread(target=run, args=("delete", lambda: image_delete(image=old)), name="delete")
    uploader = threading.Thread(
        target=run, args=("upload", lambda: image_create(upload=io.BytesIO(raw), title="new")), name="upload"
    )
    # The delete takes the lock first; the upload then finds the file stored and waits for the lock.
    deleter.start()
    assert held.wait(10)
    uploader.start()
    assert stored.wait(10)
    deleter.join(20)
    uploader.join(20)
    assert results["upload_waited"]
    assert results["delete"] is None
    assert isinstance(results["upload"], Image)
    assert stored_names() == [results["upload"].file.name]
    assert_rows_match_stored_files()
