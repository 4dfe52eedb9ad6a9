"""Private images: who sees them (owner key, admin keys; 404 for everyone else), through every endpoint, and
the list that leaves them out, counts included (images/visibility.py, images/selectors.py)."""

# ruff: noqa: F811 (the fixtures of tests/private.py, named as parameters)

from __future__ import annotations

from typing import Any

import pytest

from images.models import Image
from images.selectors import image_count
from tests.conftest import assert_nothing_stored, stored_names
from tests.private import Upload, keys, private, upload_as, who  # noqa: F401 (fixtures)
from tests.problems import assert_problem

# --- Upload ------------------------------------------------------------------------------------


def test_an_upload_is_public_unless_it_says_otherwise(upload_as, keys):
    body = upload_as(keys["owner"]).json()
    assert body["visibility"] == "public"
    assert "sig=" not in body["url"]


def test_the_default_visibility_is_a_setting(upload_as, keys, settings):
    settings.IMAGE_DEFAULT_VISIBILITY = "private"
    assert upload_as(keys["owner"]).json()["visibility"] == "private"


def test_a_private_upload_answers_signed_urls_to_its_owner(private):
    assert private["visibility"] == "private"
    assert private["url"].startswith(f"http://testserver/images/{private['id']}/file?")
    for url in [private["url"], *private["presets"].values()]:
        assert "expires=" in url and "kid=" in url and "sig=" in url, url
    for candidate in private["srcset"].split(", "):
        url, width = candidate.rsplit(" ", 1)
        assert "sig=" in url and f"width={width.removesuffix('w')}" in url


def test_a_private_file_is_stored_apart_from_public_files(private):
    assert [name for name in stored_names() if not name.startswith("private/images/")] == []


def test_private_needs_keys_turned_on(upload_as, api, settings):
    response = upload_as(None, visibility="private")
    body = assert_problem(response, 400, field="visibility")
    assert "IMAGERY_AUTH" in str(body)
    assert_nothing_stored()


def test_an_unknown_visibility_is_a_400(upload_as, keys):
    assert_problem(upload_as(keys["owner"], visibility="secret"), 400, field="visibility")
    assert_nothing_stored()


# --- The object: detail, edit, delete -----------------------------------------------------------


@pytest.mark.parametrize(("caller", "status"), [("owner", 200), ("admin", 200), ("other", 404), (None, 404)])
def test_only_the_owner_and_admins_see_a_private_image(api, private, keys, caller, status):
    response = api.get(f"/images/{private['id']}", **who(keys, caller))
    assert response.status_code == status
    if status == 404:
        # Exactly what an unknown id answers: existence is not revealed.
        unknown = api.get("/images/999999", **who(keys, caller))
        assert response.json() == {**unknown.json(), "instance": response.json().get("instance")} or (
            response.json()["code"] == unknown.json()["code"]
        )
    else:
        assert response.json()["visibility"] == "private"


def test_under_auth_all_an_anonymous_read_of_a_private_image_is_401(api, private, settings):
    settings.IMAGERY_AUTH = "all"
    assert_problem(api.get(f"/images/{private['id']}"), 401)


@pytest.mark.parametrize("caller", ["other"])
def test_another_key_cannot_edit_or_delete_a_private_image_and_learns_nothing(api, private, keys, caller):
    path = f"/images/{private['id']}"
    assert_problem(api.patch(path, {"title": "x"}, content_type="application/json", **who(keys, caller)), 404)
    assert_problem(api.delete(path, **who(keys, caller)), 404)
    assert Image.objects.get(pk=private["id"]).title == "picture"


def test_another_key_editing_a_public_image_is_still_403(api, upload_as, keys):
    image = upload_as(keys["owner"]).json()
    response = api.patch(
        f"/images/{image['id']}", {"title": "x"}, content_type="application/json", **who(keys, "other")
    )
    assert_problem(response, 403)


def test_an_admin_may_delete_a_private_image(api, private, keys):
    assert api.delete(f"/images/{private['id']}", **who(keys, "admin")).status_code == 204
    assert_nothing_stored()


def test_the_owner_may_delete_a_private_image_and_its_renditions(api, private, keys, served):
    served(private["presets"]["thumb"])
    assert any(name.startswith("private/renditions/") for name in stored_names())
    assert api.delete(f"/images/{private['id']}", **who(keys, "owner")).status_code == 204
    assert_nothing_stored()


# --- Lists ------------------------------------------------------------------------------------------


@pytest.fixture
def mixed(upload_as: Upload, keys: dict[str, str]) -> dict[str, list[int]]:
    """Two public images, two private of `owner`, one private of `other`."""
    ids: dict[str, list[int]] = {"public": [], "owner": [], "other": []}
    for i in range(2):
        ids["public"].append(upload_as(keys["owner"], title=f"public {i}").json()["id"])
        ids["owner"].append(upload_as(keys["owner"], title=f"mine {i}", visibility="private").json()["id"])
    ids["other"].append(upload_as(keys["other"], title="theirs", visibility="private").json()["id"])
    return ids


def listed(response: Any) -> list[int]:
    assert response.status_code == 200, response.content
    return sorted(item["id"] for item in response.json()["results"])


@pytest.mark.parametrize("caller", [None, "owner", "other", "admin"])
def test_the_list_leaves_private_images_out_counts_included(api, mixed, keys, caller):
    response = api.get("/images", **who(keys, caller))
    assert listed(response) == sorted(mixed["public"])
    assert response.json()["count"] == 2
    # The filtered count and the keyset pages too.
    assert api.get("/images?title=i", **who(keys, caller)).json()["count"] == 2
    assert listed(api.get("/images?cursor=", **who(keys, caller))) == sorted(mixed["public"])


@pytest.mark.parametrize(("caller", "expected"), [("owner", "owner"), ("other", "other"), ("admin", "all")])
def test_visibility_private_lists_the_callers_own_or_all_for_an_admin(api, mixed, keys, caller, expected):
    response = api.get("/images?visibility=private", **who(keys, caller))
    ids = sorted(mixed["owner"] + mixed["other"]) if expected == "all" else sorted(mixed[expected])
    assert listed(response) == ids
    assert response.json()["count"] == len(ids)
    assert listed(api.get("/images?visibility=private&cursor=", **who(keys, caller))) == ids


def test_visibility_private_without_a_key_is_401(api, mixed):
    assert_problem(api.get("/images?visibility=private"), 401)


def test_the_counts_follow_inserts_changes_and_deletes(api, mixed, keys):
    assert (image_count(), image_count(visibility="private"), image_count(visibility="public")) == (5, 3, 2)
    Image.objects.filter(pk=mixed["owner"][0]).update(visibility="public")  # behind the app's back too
    assert image_count(visibility="private") == 2
    Image.objects.filter(pk__in=mixed["owner"] + mixed["other"]).delete()
    assert image_count(visibility="private") == 0
    assert image_count(visibility="public") == 2
    assert image_count(visibility="private") == Image.objects.filter(visibility="private").count()
    assert image_count() == Image.objects.count()
    # A bulk insert is one statement (PostgreSQL's statement triggers count it at once).
    row = Image.objects.get(pk=mixed["public"][0])
    Image.objects.bulk_create(
        Image(
            title=f"bulk {i}",
            title_folded=f"bulk {i}",
            file=row.file.name,
            width=row.width,
            height=row.height,
            format=row.format,
            size=row.size,
            visibility="private" if i % 2 else "public",
        )
        for i in range(5)
    )
    assert image_count(visibility="private") == 2 == Image.objects.filter(visibility="private").count()
    assert image_count() == Image.objects.count()


# --- Every access mode ------------------------------------------------------------------------------

# What each caller gets for a private image's object and its unsigned file, under each IMAGERY_AUTH (the
# image was made while keys were on; with `off`, a key sent still names its owner).
_MATRIX = {
    "off": {"owner": 200, "admin": 200, "other": 404, None: 404},
    "write": {"owner": 200, "admin": 200, "other": 404, None: 404},
    "all": {"owner": 200, "admin": 200, "other": 404, None: 401},
}


@pytest.mark.parametrize("mode", list(_MATRIX))
@pytest.mark.parametrize("caller", ["owner", "admin", "other", None])
def test_every_caller_under_every_access_mode(api, private, keys, settings, mode, caller):
    settings.IMAGERY_AUTH = mode
    status = _MATRIX[mode][caller]
    for path in [f"/images/{private['id']}", f"/images/{private['id']}/file"]:
        response = api.get(path, **who(keys, caller))
        assert response.status_code == status, (path, response.content)
    listed_ids = (
        [] if status == 401 else [i["id"] for i in api.get("/images", **who(keys, caller)).json()["results"]]
    )
    assert private["id"] not in listed_ids
    # Changing it: 404 for whoever may not see it (a key is needed to write except with `off`).
    response = api.patch(
        f"/images/{private['id']}", {"title": "x"}, content_type="application/json", **who(keys, caller)
    )
    expected = 200 if status == 200 else (404 if caller or mode == "off" else 401)
    assert response.status_code == expected, response.content
