"""Reads at scale through the API: cursor pages, capped counts, conditional GET, what a page costs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from api.pagination import Position, decode_cursor, encode_cursor
from images.models import Image
from tests.lists import get_list, ids, local, walk
from tests.problems import assert_problem


def cursor_of(link: str) -> str:
    return link.split("cursor=", 1)[1].split("&", 1)[0]


# --- cursor (keyset) pages ------------------------------------------------------------------------


def test_cursor_mode_answers_next_previous_results_without_count(
    api: Client, many: Callable[[int], list[int]]
) -> None:
    many(3)
    body = get_list(api, cursor="").json()
    assert set(body) == {"next", "previous", "results"}
    assert len(body["results"]) == 3
    assert body["next"] is None
    assert body["previous"] is None


def test_cursor_walk_sees_every_image_once_in_list_order(
    api: Client, many: Callable[[int], list[int]]
) -> None:
    many(23)
    # Ties everywhere: only the id tie-break keeps keyset pages from repeating or skipping rows.
    Image.objects.update(created_at=timezone.now())
    pages = walk(api, "/images?cursor=&page_size=5", "next")
    assert [len(page) for page in pages] == [5, 5, 5, 5, 3]
    assert [i for page in pages for i in page] == ids(get_list(api, page_size=100))


def test_cursor_previous_links_walk_back_to_the_first_page(
    api: Client, many: Callable[[int], list[int]]
) -> None:
    many(23)
    Image.objects.update(created_at=timezone.now())
    forward_urls, url = [], "/images?cursor=&page_size=5"
    while url:
        forward_urls.append(url)
        url = api.get(url).json()["next"]
        url = local(url) if url else None
    forward = [ids(api.get(u)) for u in forward_urls]
    backward = walk(api, forward_urls[-1], "previous")
    assert backward == forward[::-1]


def test_cursor_walk_is_stable_while_images_are_added(api: Client, many: Callable[[int], list[int]]) -> None:
    before = many(10)
    first = get_list(api, cursor="", page_size=4).json()
    # New images arrive at the head of the list between two pages: a page-number walk would repeat rows.
    template = Image.objects.get(pk=before[0])
    for i in range(3):
        template.pk, template.title, template.created_at = None, f"new {i}", timezone.now()
        template.save()
    seen = [item["id"] for item in first["results"]]
    url = local(first["next"])
    while url:
        body = api.get(url).json()
        seen += [item["id"] for item in body["results"]]
        url = local(body["next"]) if body["next"] else None
    assert sorted(seen) == sorted(before)
    assert len(seen) == len(set(seen))


def test_cursor_mode_filters_by_title_and_keeps_the_filter_in_links(
    api: Client, create: Callable[..., Any]
) -> None:
    cats = [create(title=f"Cat {i}")["id"] for i in range(5)]
    create(title="dog")
    pages = walk(api, "/images?title=cat&cursor=&page_size=2", "next")
    assert [i for page in pages for i in page] == sorted(cats, reverse=True)


def test_cursor_mode_ignores_page(api: Client, many: Callable[[int], list[int]]) -> None:
    many(5)
    assert get_list(api, cursor="", page=9).json() == get_list(api, cursor="").json()


@pytest.mark.parametrize("cursor", ["x", "!!!", encode_cursor(Position(timezone.now(), 1))[:-2] + "@@"])
def test_cursor_that_does_not_decode_is_404_problem(api: Client, cursor: str) -> None:
    assert_problem(get_list(api, cursor=cursor), 404)


@pytest.mark.parametrize(
    "raw", ["n1.2.3", "x1.2", "n1.0", f"n1.{2**63}", "n99999999999999999999.1", "n.1", "p-1.-1"]
)
def test_decode_cursor_rejects_what_encode_cursor_never_makes(raw: str) -> None:
    import base64

    with pytest.raises(ValueError):
        decode_cursor(base64.urlsafe_b64encode(raw.encode()).decode().rstrip("="))


def test_cursor_round_trips_microseconds_and_direction() -> None:
    moment = dt.datetime(2026, 11, 27, 8, 0, 0, 123456, tzinfo=dt.UTC)
    for reverse in (False, True):
        assert decode_cursor(encode_cursor(Position(moment, 42, reverse))) == Position(moment, 42, reverse)


def test_cursor_page_size_is_validated_like_page_mode(api: Client) -> None:
    body = assert_problem(get_list(api, cursor="", page_size="0"), 400)
    assert [e["field"] for e in body["errors"]] == ["page_size"]


# --- counts ---------------------------------------------------------------------------------------


@pytest.fixture
def capped(settings: Any, many: Callable[[int], list[int]]) -> list[int]:
    """Seven images, "image 0" … "image 6" (all match "image"), counted exactly only up to 3; their ids."""
    settings.LIST_COUNT_CAP = 3
    return many(7)


def test_unfiltered_count_is_exact_past_the_cap(api: Client, capped: list[int]) -> None:
    body = get_list(api, page_size=2).json()
    assert body["count"] == 7
    assert "count_exact" not in body


def test_unfiltered_count_is_the_counters_whatever_the_base_list_filters(
    api: Client, capped: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whether the counter answers depends on `title`, not on whether the queryset has filters: a filter
    # every list carries (this one hides nothing) must not turn the exact, O(1) count into a capped one.
    from images import apis, selectors

    plain = selectors.image_list
    calls: list[str | None] = []

    def with_a_default_filter(*, title: str | None = None, **scope: Any) -> Any:
        calls.append(title)
        return plain(title=title, **scope).filter(size__gte=0)

    monkeypatch.setattr(selectors, "image_list", with_a_default_filter)
    monkeypatch.setattr(apis, "image_list", with_a_default_filter)
    body = get_list(api, page_size=2).json()
    assert calls  # the page was read from the filtered base list
    assert body["count"] == 7
    assert "count_exact" not in body


def test_filtered_count_past_the_cap_is_a_lower_bound(api: Client, capped: list[int]) -> None:
    body = get_list(api, title="image", page_size=2).json()
    assert body["count"] == 3
    assert body["count_exact"] is False
    assert body["next"] is not None


def test_filtered_count_within_the_cap_is_exact(api: Client, capped: list[int]) -> None:
    body = get_list(api, title="image 1", page_size=2).json()
    assert body["count"] == 1
    assert "count_exact" not in body


def test_capped_count_links_still_walk_every_match(api: Client, capped: list[int]) -> None:
    all_ids = capped
    pages = walk(api, "/images?title=image&page_size=2", "next")
    assert sorted(i for page in pages for i in page) == sorted(all_ids)
    # The last page knows the total, and says so.
    last = get_list(api, title="image", page_size=2, page=len(pages)).json()
    assert last["count"] == 7
    assert "count_exact" not in last
    # A page past the cap reports at least the rows it has shown to exist.
    middle = get_list(api, title="image", page_size=2, page=3).json()
    assert middle["count"] == 7  # rows 1-6 shown, a 7th announced by `next`
    assert middle["count_exact"] is False


def test_filtered_page_past_the_last_is_404_within_and_past_the_cap(api: Client, capped: list[int]) -> None:
    assert_problem(get_list(api, title="image 1", page=2), 404)
    assert_problem(get_list(api, title="image", page_size=2, page=5), 404)


def test_filtered_pages_are_in_list_order(api: Client, settings: Any, create: Callable[..., Any]) -> None:
    # Few matches (an exact count) and many (past the cap) are planned differently on PostgreSQL; both
    # must come out newest first with the id tie-break.
    made = [create(title=f"sun {i}")["id"] for i in range(6)]
    base = timezone.now()
    for offset, image_id in zip([2, 0, 3, 1, 1, 1], made, strict=True):
        Image.objects.filter(pk=image_id).update(created_at=base + dt.timedelta(minutes=offset))
    expected = list(
        Image.objects.filter(pk__in=made).order_by("-created_at", "-id").values_list("id", flat=True)
    )
    for cap in (100, 2):
        settings.LIST_COUNT_CAP = cap
        assert [i for page in walk(api, "/images?title=SUN&page_size=4", "next") for i in page] == expected


# --- what a page costs ----------------------------------------------------------------------------


def test_list_page_costs_two_queries(
    api: Client, many: Callable[[int], list[int]], django_assert_num_queries: Any
) -> None:
    many(25)
    # The count (one row of the counter table) and the page; no query per image.
    with django_assert_num_queries(2):
        assert len(get_list(api).json()["results"]) == 20


def test_filtered_list_page_costs_two_queries(
    api: Client, many: Callable[[int], list[int]], django_assert_num_queries: Any
) -> None:
    many(25)
    with django_assert_num_queries(2):
        assert len(get_list(api, title="image").json()["results"]) == 20


def test_cursor_page_costs_one_query(
    api: Client, many: Callable[[int], list[int]], django_assert_num_queries: Any
) -> None:
    many(25)
    first = get_list(api, cursor="").json()
    with django_assert_num_queries(1):
        assert len(api.get(local(first["next"])).json()["results"]) == 5


def test_detail_costs_one_query(
    api: Client, create: Callable[..., Any], django_assert_num_queries: Any
) -> None:
    image_id = create()["id"]
    with django_assert_num_queries(1):
        assert api.get(f"/images/{image_id}").status_code == 200


def test_list_reads_only_the_columns_it_answers(
    api: Client, many: Callable[[int], list[int]], django_assert_num_queries: Any
) -> None:
    many(3)
    with django_assert_num_queries(2) as queries:
        get_list(api)
    page_sql = queries.captured_queries[-1]["sql"]
    assert "title_folded" not in page_sql.split(" FROM ")[0]


# --- conditional GET ------------------------------------------------------------------------------


def test_detail_has_an_etag_and_if_none_match_answers_304(api: Client, create: Callable[..., Any]) -> None:
    image_id = create()["id"]
    first = api.get(f"/images/{image_id}")
    etag = first["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = api.get(f"/images/{image_id}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag
    # A weak form and a list of tags match too (RFC 9110's weak comparison).
    assert api.get(f"/images/{image_id}", headers={"If-None-Match": f'"x", W/{etag}'}).status_code == 304


def test_detail_etag_differs_between_images_and_a_stale_one_gets_the_body(
    api: Client, create: Callable[..., Any]
) -> None:
    a, b = create(title="a")["id"], create(title="b")["id"]
    etag_a = api.get(f"/images/{a}")["ETag"]
    assert api.get(f"/images/{b}")["ETag"] != etag_a
    response = api.get(f"/images/{b}", headers={"If-None-Match": etag_a})
    assert response.status_code == 200
    assert response.json()["id"] == b


def test_list_etag_changes_when_an_image_is_added(api: Client, create: Callable[..., Any]) -> None:
    create(title="one")
    etag = get_list(api)["ETag"]
    assert api.get("/images", headers={"If-None-Match": etag}).status_code == 304
    create(title="two")
    response = api.get("/images", headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert response["ETag"] != etag


def test_errors_have_no_etag(api: Client) -> None:
    assert "ETag" not in api.get("/images/12345")


# --- serialization ------------------------------------------------------------------------------------


def test_fast_representation_equals_the_model_serializers(
    api: Client, many: Callable[[int], list[int]]
) -> None:
    from rest_framework import serializers
    from rest_framework.test import APIRequestFactory

    from images.serializers import ImageOutputSerializer

    many(3)
    # Whole seconds too: their ISO form has no fraction, and both must agree on that.
    Image.objects.filter(pk=Image.objects.first().pk).update(
        created_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    )
    request = APIRequestFactory().get("/images")
    serializer = ImageOutputSerializer(context={"request": request})
    for image in Image.objects.all():
        assert serializer.to_representation(image) == serializers.ModelSerializer.to_representation(
            serializer, image
        )
