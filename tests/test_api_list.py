"""GET /images and GET /images/{id}: the list's shape, order, pages and title filter, and one image."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from images.models import Image
from images.titles import TITLE_MAX_LENGTH
from tests.conftest import files_url
from tests.images import quadrants
from tests.lists import IMAGE_FIELDS, get_list, ids, walk
from tests.problems import assert_problem

# --- shape ----------------------------------------------------------------------------------------


def test_list_body_has_count_next_previous_results(api: Client, create: Callable[..., Any]) -> None:
    create()
    body = get_list(api).json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 1
    assert body["next"] is None
    assert body["previous"] is None


def test_list_of_nothing_is_empty(api: Client) -> None:
    response = get_list(api)
    assert response.status_code == 200
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_list_item_has_exactly_the_image_fields(api: Client, create: Callable[..., Any]) -> None:
    create()
    (item,) = get_list(api).json()["results"]
    assert set(item) == IMAGE_FIELDS


def test_list_item_url_is_absolute_media_url(api: Client, create: Callable[..., Any]) -> None:
    create()
    (item,) = get_list(api).json()["results"]
    assert item["url"].startswith(files_url())  # http://testserver/media/ on the filesystem


def test_post_list_and_detail_answer_the_same_object(api: Client, create: Callable[..., Any]) -> None:
    created = create(title="same everywhere")
    (listed,) = get_list(api).json()["results"]
    detail = api.get(f"/images/{created['id']}").json()
    assert set(created) == IMAGE_FIELDS
    assert listed == created
    assert detail == created


# --- order ----------------------------------------------------------------------------------------


def test_list_orders_newest_first(api: Client, create: Callable[..., Any]) -> None:
    created = [create(title=f"image {i}")["id"] for i in range(4)]
    # Dates that disagree with the id order, so sorting by id alone would fail.
    base = timezone.now()
    for offset, image_id in zip([2, 0, 3, 1], created, strict=True):
        Image.objects.filter(pk=image_id).update(created_at=base + dt.timedelta(minutes=offset))
    newest_first = list(Image.objects.order_by("-created_at").values_list("id", flat=True))
    assert newest_first != sorted(created, reverse=True)
    assert ids(get_list(api)) == newest_first


def test_list_breaks_created_at_ties_by_id_descending(api: Client, create: Callable[..., Any]) -> None:
    created = [create(title=f"image {i}")["id"] for i in range(4)]
    Image.objects.update(created_at=timezone.now())
    assert ids(get_list(api)) == sorted(created, reverse=True)


# --- pagination -----------------------------------------------------------------------------------


def test_list_default_page_size_is_20(api: Client, many: Callable[[int], list[int]]) -> None:
    many(25)
    body = get_list(api).json()
    assert body["count"] == 25
    assert len(body["results"]) == 20
    assert body["next"] is not None


def test_list_page_size_param_sets_the_page_length(api: Client, many: Callable[[int], list[int]]) -> None:
    many(12)
    body = get_list(api, page_size=5).json()
    assert len(body["results"]) == 5
    assert body["count"] == 12


def test_list_page_size_is_capped_at_100(api: Client, many: Callable[[int], list[int]]) -> None:
    many(105)
    first = get_list(api, page_size=500).json()
    second = get_list(api, page_size=500, page=2).json()
    assert len(first["results"]) == 100
    assert len(second["results"]) == 5
    assert first["count"] == 105


def test_list_walks_every_image_exactly_once(api: Client, many: Callable[[int], list[int]]) -> None:
    all_ids = many(23)
    # Ties everywhere: only the id tie-break keeps the pages from repeating or skipping rows.
    Image.objects.update(created_at=timezone.now())
    pages = walk(api, "/images?page_size=5", "next")
    seen = [i for page in pages for i in page]
    assert [len(page) for page in pages] == [5, 5, 5, 5, 3]
    assert len(seen) == len(set(seen))
    assert sorted(seen) == sorted(all_ids)


def test_list_previous_links_walk_back_to_the_first_page(
    api: Client, many: Callable[[int], list[int]]
) -> None:
    many(23)
    forward = walk(api, "/images?page_size=5", "next")
    backward = walk(api, f"/images?page_size=5&page={len(forward)}", "previous")
    assert backward == forward[::-1]


def test_list_page_beyond_the_last_is_404_problem(api: Client, many: Callable[[int], list[int]]) -> None:
    many(3)
    assert_problem(get_list(api, page=2), 404)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("page", "0"),
        ("page", "abc"),
        ("page", "-1"),
        ("page_size", "0"),
        ("page_size", "abc"),
        # isdigit() is true for these, int() refuses them: once a 500.
        ("page", "²"),
        ("page_size", "²"),
        # More digits than int() converts (4300): once a 500.
        ("page", "9" * 5000),
        ("page_size", "9" * 5000),
        # Past any 64-bit integer: 400, never a database error.
        ("page", "9" * 30),
        ("page_size", "9" * 30),
        ("page", ""),
        ("page_size", ""),
    ],
)
def test_list_rejects_bad_page_params_naming_the_field(
    api: Client, create: Callable[..., Any], param: str, value: str
) -> None:
    create()
    body = assert_problem(get_list(api, **{param: value}), 400)
    assert [e["field"] for e in body["errors"]] == [param]


# --- title filter ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "title"),
    [
        ("sunset", "Big SUNSET"),
        ("über", "ÜBER Alles"),
        ("ÜBER", "über alles"),
        ("straße", "STRASSE"),
        ("STRASSE", "Straße"),
        ("ddle", "the middle one"),
    ],
)
def test_list_title_filter_matches_ignoring_case(
    api: Client, create: Callable[..., Any], query: str, title: str
) -> None:
    wanted = create(title=title)["id"]
    create(title="something else")
    response = get_list(api, title=query)
    assert response.json()["count"] == 1
    assert ids(response) == [wanted]


def test_list_title_filter_without_match_is_empty(api: Client, create: Callable[..., Any]) -> None:
    create(title="Big sunset")
    body = get_list(api, title="sunrise").json()
    assert body["count"] == 0
    assert body["results"] == []


@pytest.mark.parametrize(
    ("query", "literal", "wildcard_match"),
    [("100%", "100% done", "100 done"), ("a_b", "a_b", "axb")],
)
def test_list_title_filter_matches_wildcards_literally(
    api: Client, create: Callable[..., Any], query: str, literal: str, wildcard_match: str
) -> None:
    wanted = create(title=literal)["id"]
    create(title=wildcard_match)
    assert ids(get_list(api, title=query)) == [wanted]


@pytest.mark.parametrize("title", ["", "   "])
def test_list_empty_title_filter_counts_as_absent(
    api: Client, many: Callable[[int], list[int]], title: str
) -> None:
    many(3)
    assert get_list(api, title=title).json() == get_list(api).json()


def test_list_title_filter_with_a_nul_is_400_problem(api: Client) -> None:
    body = assert_problem(get_list(api, title="a\x00b"), 400)
    assert [e["field"] for e in body["errors"]] == ["title"]


def test_list_title_filter_longer_than_a_title_is_400_problem(api: Client) -> None:
    body = assert_problem(get_list(api, title="x" * (TITLE_MAX_LENGTH + 1)), 400)
    assert [e["field"] for e in body["errors"]] == ["title"]


def test_list_title_filter_is_paginated_and_counted(api: Client, create: Callable[..., Any]) -> None:
    matching = [create(title=f"cat {i}")["id"] for i in range(5)]
    for i in range(3):
        create(title=f"dog {i}")
    pages = walk(api, "/images?title=CAT&page_size=2", "next")
    assert get_list(api, title="CAT", page_size=2).json()["count"] == len(matching)
    assert sorted(i for page in pages for i in page) == sorted(matching)


# --- detail ---------------------------------------------------------------------------------------


def test_detail_answers_the_image(api: Client, create: Callable[..., Any]) -> None:
    created = create(title="one")
    response = api.get(f"/images/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created


def test_detail_with_trailing_slash_answers_the_same(api: Client, create: Callable[..., Any]) -> None:
    created = create(title="one")
    response = api.get(f"/images/{created['id']}/")
    assert response.status_code == 200
    assert response.json() == created


@pytest.mark.parametrize(
    "path",
    [
        "/images/{missing}",
        "/images/{missing}/",
        "/images/99999999999999999999999",
        "/images/abc",
        "/images/²",
        "/images/\u0661",
    ],
)
def test_detail_of_unknown_id_is_404_problem(api: Client, create: Callable[..., Any], path: str) -> None:
    missing = create()["id"] + 1
    assert_problem(api.get(path.format(missing=missing)), 404)


# --- trailing slash on the collection -------------------------------------------------------------


def test_list_with_trailing_slash_answers_the_same(api: Client, create: Callable[..., Any]) -> None:
    create()
    response = api.get("/images/")
    assert response.status_code == 200
    assert response.json() == get_list(api).json()


def test_upload_with_trailing_slash_creates_without_redirect(api: Client, upload: Callable[..., Any]) -> None:
    response = upload(quadrants((8, 4)), title="slashed", path="/images/")
    assert response.status_code == 201
    assert api.get(f"/images/{response.json()['id']}").json() == response.json()
