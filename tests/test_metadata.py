"""`metadata`, the app's own data on an image: its rule (images/metadata.py), set on upload and PATCH,
answered in every object, and the list's filter `metadata.KEY=VALUE` (on SQLite by JSON1, on PostgreSQL
by containment through the GIN index). Run on both: DATABASE_URL=postgres://... for PostgreSQL."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from images.exceptions import InvalidMetadata
from images.metadata import (
    MAX_SAFE_INTEGER,
    METADATA_MAX_BYTES,
    canonical_json,
    filter_values,
    parse_metadata_json,
    validate_metadata,
)
from images.models import Image
from images.selectors import image_list
from images.services import image_create
from images.services import validate_metadata as services_validate_metadata
from tests.images import encode, quadrants
from tests.lists import ids, local, walk
from tests.private import Upload, auth, keys, upload_as  # noqa: F401 (fixtures)
from tests.problems import assert_problem

JSON = "application/json"
Create = Callable[..., dict[str, Any]]


def with_metadata(create: Create, metadata: Any, title: str = "picture", **fields: Any) -> dict[str, Any]:
    return create(title=title, metadata=json.dumps(metadata), **fields)


def patch(api: Client, image_id: int, body: Any, **headers: str) -> Any:
    return api.patch(f"/images/{image_id}", json.dumps(body), content_type=JSON, headers=headers)


def listed(api: Client, **params: Any) -> Any:
    response = api.get("/images", params)
    assert response.status_code == 200, response.content
    return response


def padded(size: int) -> dict[str, str]:
    """An object whose canonical encoding is exactly `size` bytes (`{"k":"…"}` is 8 bytes besides)."""
    return {"k": "x" * (size - 8)}


# --- the rule ---------------------------------------------------------------------------------------


GOOD = {
    "user": "u42",
    "album": 7,
    "score": 0.5,
    "starred": True,
    "hidden": False,
    "note": "über - 東京\n",
    "a-b_c.d:e": "",
    "n": -MAX_SAFE_INTEGER,
    "x" * 64: MAX_SAFE_INTEGER,
}


def test_a_valid_object_is_kept_as_it_is() -> None:
    assert validate_metadata(GOOD) == GOOD
    assert validate_metadata({}) == {}


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (padded(METADATA_MAX_BYTES + 1), "too_large"),
        # Counted in UTF-8 bytes: 1021 two-byte characters are 2042 bytes, plus `{"k":""}`.
        ({"k": "é" * 1021}, "too_large"),
        ({"nested": {"a": 1}}, "invalid_value"),
        ({"list": [1, 2]}, "invalid_value"),
        ({"empty": None}, "invalid_value"),
        ({"": 1}, "invalid_key"),
        ({"x" * 65: 1}, "invalid_key"),
        ({"a=b": 1}, "invalid_key"),
        ({"a&b": 1}, "invalid_key"),
        ({"a b": 1}, "invalid_key"),
        ({"a\nb": 1}, "invalid_key"),
        ({"a\x00": 1}, "invalid_key"),
        ({"é": 1}, "invalid_key"),
        ({"a[b]": 1}, "invalid_key"),
        ({"nan": float("nan")}, "invalid_value"),
        ({"inf": float("inf")}, "invalid_value"),
        ({"big": MAX_SAFE_INTEGER + 1}, "invalid_value"),
        ({"small": -MAX_SAFE_INTEGER - 1}, "invalid_value"),
        ({"huge": 1e300}, "invalid_value"),
        ({"nul": "a\x00b"}, "invalid_value"),
        ({"surrogate": "\ud800"}, "invalid_value"),
        ([["a", 1]], "not_an_object"),
        ("text", "not_an_object"),
    ],
)
def test_the_rule_refuses_every_bad_class(value: Any, code: str) -> None:
    with pytest.raises(InvalidMetadata) as raised:
        validate_metadata(value)
    assert raised.value.code == code
    assert raised.value.field == "metadata"


def test_the_limit_is_the_canonical_encoding_in_bytes() -> None:
    assert len(canonical_json(padded(METADATA_MAX_BYTES))) == METADATA_MAX_BYTES
    assert validate_metadata(padded(METADATA_MAX_BYTES)) == padded(METADATA_MAX_BYTES)
    # 1020 two-byte characters: 2040 + 8 = 2048 bytes, whatever the characters' count.
    assert validate_metadata({"k": "é" * 1020}) == {"k": "é" * 1020}


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ('{"n": NaN}', "invalid_json"),
        ('{"n": Infinity}', "invalid_json"),
        ('{"n": -Infinity}', "invalid_json"),
        ('{"a": 1, "a": 2}', "invalid_key"),
        ('{"a": 1', "invalid_json"),
        ("[1]", "not_an_object"),
        ('"text"', "not_an_object"),
        ("[" * 5000 + "]" * 5000, "invalid_json"),
        ("{" + " " * 20000 + "}", "too_large"),
    ],
)
def test_form_json_text_is_parsed_strictly(text: str, code: str) -> None:
    with pytest.raises(InvalidMetadata) as raised:
        parse_metadata_json(text)
    assert raised.value.code == code


def test_services_export_the_one_validator() -> None:
    # The uploads/ app may import images.services only.
    assert services_validate_metadata is validate_metadata


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("u42", ["u42"]),
        ("5", ["5", 5]),
        ("5.0", ["5.0", 5.0]),
        ("-2.5e1", ["-2.5e1", -25.0]),
        ("05", ["05"]),
        ("5.", ["5."]),
        ("true", ["true", True]),
        ("True", ["True"]),
        ("1e400", ["1e400"]),
        (str(MAX_SAFE_INTEGER + 1), [str(MAX_SAFE_INTEGER + 1)]),
        ("", [""]),
    ],
)
def test_what_a_filter_text_matches(text: str, values: list[Any]) -> None:
    found = filter_values(text)
    assert found == values
    assert [type(v) for v in found] == [type(v) for v in values]


# --- hypothesis: the rule's properties -------------------------------------------------------------

KEYS = st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True)
SCALARS = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=200),
    st.booleans(),
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.floats(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER, allow_nan=False, allow_infinity=False),
)
VALID = st.dictionaries(KEYS, SCALARS, max_size=12).filter(
    lambda d: len(canonical_json(d)) <= METADATA_MAX_BYTES
)
OVERSIZED = st.dictionaries(KEYS, SCALARS, min_size=1, max_size=60).map(
    lambda d: {**d, "pad": "ü" * (METADATA_MAX_BYTES // 2)}
)


@given(VALID)
def test_any_valid_object_round_trips_through_the_rule_and_json(value: dict[str, Any]) -> None:
    validated = validate_metadata(value)
    assert validated == value
    assert parse_metadata_json(json.dumps(value)) == value
    assert parse_metadata_json(canonical_json(value).decode()) == value


@given(OVERSIZED)
def test_any_object_over_2_kb_is_refused(value: dict[str, Any]) -> None:
    assert len(canonical_json(value)) > METADATA_MAX_BYTES
    with pytest.raises(InvalidMetadata) as raised:
        validate_metadata(value)
    assert raised.value.code == "too_large"


@pytest.mark.django_db
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=VALID)
def test_any_valid_object_round_trips_through_the_database(value: dict[str, Any]) -> None:
    image = Image.objects.create(
        title="t",
        title_folded="t",
        file="images/x.png",
        width=1,
        height=1,
        format="png",
        size=1,
        metadata=validate_metadata(value),
    )
    stored = Image.objects.get(pk=image.pk).metadata
    # Compared as text too: 5 and 5.0 are equal in Python, and must come back as they went in.
    assert canonical_json(stored) == canonical_json(validate_metadata(value))
    image.delete()


# --- upload, PATCH, every object --------------------------------------------------------------------


def test_upload_with_metadata_answers_it_everywhere(api: Client, create: Create) -> None:
    image = with_metadata(create, GOOD)
    assert image["metadata"] == GOOD
    assert api.get(f"/images/{image['id']}").json()["metadata"] == GOOD
    (item,) = listed(api).json()["results"]
    assert item["metadata"] == GOOD
    (item,) = listed(api, cursor="").json()["results"]
    assert item["metadata"] == GOOD


def test_upload_without_metadata_or_with_an_empty_field_has_an_empty_object(
    api: Client, create: Create
) -> None:
    assert create()["metadata"] == {}
    assert create(metadata="")["metadata"] == {}
    assert create(metadata="{}")["metadata"] == {}


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ('{"a": {"b": 1}}', "invalid_value"),
        ('{"bad key": 1}', "invalid_key"),
        ('{"n": NaN}', "invalid_json"),
        ('{"n": null}', "invalid_value"),
        ("not json", "invalid_json"),
        ("[]", "not_an_object"),
        (json.dumps(padded(METADATA_MAX_BYTES + 1)), "too_large"),
    ],
)
def test_upload_with_bad_metadata_is_a_400_that_stores_nothing(
    upload: Callable[..., Any], text: str, code: str
) -> None:
    response = upload(quadrants((8, 4)), metadata=text)
    assert_problem(response, 400, code, field="metadata")
    assert not Image.objects.exists()


def test_upload_at_the_limit_is_accepted(create: Create) -> None:
    assert with_metadata(create, padded(METADATA_MAX_BYTES))["metadata"] == padded(METADATA_MAX_BYTES)


def test_patch_replaces_the_whole_object_and_changes_the_etag(api: Client, create: Create) -> None:
    image = with_metadata(create, {"user": "u1", "album": 3})
    before = api.get(f"/images/{image['id']}")
    response = patch(api, image["id"], {"metadata": {"user": "u2"}}, **{"If-Match": before["ETag"]})
    assert response.status_code == 200, response.content
    assert response.json()["metadata"] == {"user": "u2"}  # `album` is gone: a replace, not a merge
    assert response["ETag"] != before["ETag"]
    after = api.get(f"/images/{image['id']}")
    assert after.json()["metadata"] == {"user": "u2"}
    assert after["ETag"] == response["ETag"]
    # The old ETag no longer matches.
    stale = patch(api, image["id"], {"metadata": {}}, **{"If-Match": before["ETag"]})
    assert_problem(stale, 412)
    emptied = patch(api, image["id"], {"metadata": {}})
    assert emptied.json()["metadata"] == {}


def test_patch_of_the_title_keeps_the_metadata(api: Client, create: Create) -> None:
    image = with_metadata(create, {"user": "u1"})
    response = patch(api, image["id"], {"title": "renamed"})
    assert response.json()["metadata"] == {"user": "u1"}


@pytest.mark.parametrize(
    "body",
    [
        {"metadata": {"a": [1]}},
        {"metadata": {"a": None}},
        {"metadata": None},
        {"metadata": "{}"},
        {"metadata": {"a=b": 1}},
        {"metadata": {"big": 2**64}},
        {"metadata": padded(METADATA_MAX_BYTES + 1)},
        {"metadata": {"ok": 1}, "title": ""},
    ],
)
def test_patch_with_bad_metadata_is_a_400_that_changes_nothing(
    api: Client, create: Create, body: Any
) -> None:
    image = with_metadata(create, {"user": "u1"})
    before = api.get(f"/images/{image['id']}")
    response = patch(api, image["id"], body)
    assert_problem(response, 400)
    after = api.get(f"/images/{image['id']}")
    assert after.json() == before.json()
    assert after["ETag"] == before["ETag"]


def test_patch_with_nan_in_the_json_body_is_a_400(api: Client, create: Create) -> None:
    image = create()
    response = api.patch(f"/images/{image['id']}", '{"metadata": {"n": NaN}}', content_type=JSON)
    assert_problem(response, 400)
    assert api.get(f"/images/{image['id']}").json()["metadata"] == {}


@pytest.mark.parametrize("field", ["metadata", "title"])
def test_patch_with_a_body_nested_too_deep_for_the_parser_is_a_400(
    api: Client, create: Create, field: str
) -> None:
    image = create()
    body = f'{{"{field}": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert_problem(api.patch(f"/images/{image['id']}", body, content_type=JSON), 400)
    assert api.get(f"/images/{image['id']}").json()["metadata"] == {}


def test_patch_that_names_no_changeable_field_says_metadata_is_one(api: Client, create: Create) -> None:
    image = create()
    body = assert_problem(patch(api, image["id"], {"width": 3}), 400, field="width")
    assert "`metadata`" in body["errors"][0]["message"]


@pytest.mark.django_db
def test_image_create_checks_the_rule_itself() -> None:
    """For the callers that reach the service without a serializer (the uploads/ app)."""
    with pytest.raises(InvalidMetadata):
        image_create(upload=_png(), metadata={"a": {"b": 1}})
    assert not Image.objects.exists()


def _png() -> io.BytesIO:
    return io.BytesIO(encode(quadrants((8, 4)), "PNG"))


# --- the filter -------------------------------------------------------------------------------------


@pytest.fixture
def catalogue(create: Create) -> dict[str, int]:
    """Images with metadata to filter, by name -> id (created in this order, so listed newest first)."""
    made = {}
    for name, metadata, title in [
        ("u1-a", {"user": "u1", "album": "a"}, "beach"),
        ("u1-b", {"user": "u1", "album": "b"}, "mountain"),
        ("u2-a", {"user": "u2", "album": "a"}, "beach"),
        ("n5", {"n": 5, "flag": True}, "numbers"),
        ("n5.0", {"n": 5.0, "flag": False}, "numbers"),
        ("s5", {"n": "5", "flag": "true"}, "strings"),
        ("one", {"n": 1, "flag": 1}, "one"),
        ("s05", {"n": "05"}, "strings"),
        ("unicode", {"place": "Zürich 東京"}, "unicode"),
        ("escapes", {"quote": 'say "hi" \\ 100% _ok_ / \u00e9\n'}, "escapes"),
        ("none", {}, "nothing"),
    ]:
        made[name] = with_metadata(create, metadata, title=title)["id"]
    return made


def names(response: Any, catalogue: dict[str, int]) -> list[str]:
    by_id = {v: k for k, v in catalogue.items()}
    return [by_id[i] for i in ids(response)]


def test_filter_by_one_key(api: Client, catalogue: dict[str, int]) -> None:
    response = listed(api, **{"metadata.user": "u1"})
    assert names(response, catalogue) == ["u1-b", "u1-a"]
    assert response.json()["count"] == 2


def test_filter_by_several_keys_all_must_match(api: Client, catalogue: dict[str, int]) -> None:
    assert names(listed(api, **{"metadata.user": "u1", "metadata.album": "a"}), catalogue) == ["u1-a"]
    assert names(listed(api, **{"metadata.user": "u2", "metadata.album": "b"}), catalogue) == []


def test_filter_value_matches_the_string_and_an_equal_number(api: Client, catalogue: dict[str, int]) -> None:
    assert names(listed(api, **{"metadata.n": "5"}), catalogue) == ["s5", "n5.0", "n5"]
    assert names(listed(api, **{"metadata.n": "5.0"}), catalogue) == ["n5.0", "n5"]
    assert names(listed(api, **{"metadata.n": "05"}), catalogue) == ["s05"]
    assert names(listed(api, **{"metadata.n": "1"}), catalogue) == ["one"]


def test_filter_true_matches_the_boolean_and_the_string_never_the_number_1(
    api: Client, catalogue: dict[str, int]
) -> None:
    # JSON1 reads `true` as 1: the type is compared too.
    assert names(listed(api, **{"metadata.flag": "true"}), catalogue) == ["s5", "n5"]
    assert names(listed(api, **{"metadata.flag": "false"}), catalogue) == ["n5.0"]
    assert names(listed(api, **{"metadata.flag": "1"}), catalogue) == ["one"]


def test_filter_is_exact_and_unicode_safe(api: Client, catalogue: dict[str, int]) -> None:
    assert names(listed(api, **{"metadata.place": "Zürich 東京"}), catalogue) == ["unicode"]
    assert names(listed(api, **{"metadata.place": "zürich 東京"}), catalogue) == []
    # What JSON escapes (quotes, backslashes, control and non-ASCII characters) and what LIKE would read.
    assert names(listed(api, **{"metadata.quote": 'say "hi" \\ 100% _ok_ / \u00e9\n'}), catalogue) == [
        "escapes"
    ]
    assert names(listed(api, **{"metadata.quote": 'say "hi" \\ 100% _ok_ / \u00e9'}), catalogue) == []
    assert names(listed(api, **{"metadata.user": "u"}), catalogue) == []
    assert names(listed(api, **{"metadata.missing": "u1"}), catalogue) == []


def test_filter_combines_with_the_title(api: Client, catalogue: dict[str, int]) -> None:
    assert names(listed(api, title="beach", **{"metadata.album": "a"}), catalogue) == ["u2-a", "u1-a"]
    assert names(listed(api, title="mountain", **{"metadata.album": "a"}), catalogue) == []


def test_filter_walks_numbered_and_cursor_pages(api: Client, create: Create) -> None:
    mine = [with_metadata(create, {"user": "me"})["id"] for _ in range(5)]
    for _ in range(3):
        with_metadata(create, {"user": "other"})
    mine.reverse()  # newest first
    numbered = walk(api, "/images?metadata.user=me&page_size=2", "next")
    assert numbered == [mine[0:2], mine[2:4], mine[4:]]
    first = listed(api, **{"metadata.user": "me", "page_size": 2})
    assert first.json()["count"] == 5
    cursor = walk(api, "/images?metadata.user=me&page_size=2&cursor=", "next")
    assert cursor == [mine[0:2], mine[2:4], mine[4:]]
    # And back: the links keep the filter.
    last = api.get("/images?metadata.user=me&page_size=2&cursor=").json()
    assert "metadata.user=me" in last["next"]
    back = walk(
        api, local(api.get(local(api.get(local(last["next"])).json()["next"])).json()["previous"]), "previous"
    )
    assert back == [mine[2:4], mine[0:2]]


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ("metadata.user=u1&metadata.user=u2", "metadata.user", "repeated"),
        ("metadata.bad%20key=1", "metadata.bad key", "invalid_key"),
        ("metadata.=1", "metadata.", "invalid_key"),
        ("metadata." + "k" * 65 + "=1", "metadata." + "k" * 65, "invalid_key"),
        ("metadata.a%3Db=1", "metadata.a=b", "invalid_key"),
        ("metadata.user=a%00b", "metadata.user", "invalid_value"),
        ("metadata.user=" + "x" * (METADATA_MAX_BYTES + 1), "metadata.user", "invalid_value"),
        ("metadata=%7B%7D", "metadata", "invalid"),
        ("&".join(f"metadata.k{i}=1" for i in range(11)), "metadata", "too_many"),
    ],
)
def test_bad_filters_are_a_400_naming_the_parameter(api: Client, query: str, field: str, code: str) -> None:
    assert_problem(api.get(f"/images?{query}"), 400, code, field=field)


def test_ten_filters_are_allowed(api: Client, create: Create) -> None:
    metadata = {f"k{i}": i for i in range(10)}
    image = with_metadata(create, metadata)
    with_metadata(create, {**metadata, "k9": 0})
    query = "&".join(f"metadata.k{i}={i}" for i in range(10))
    assert ids(api.get(f"/images?{query}")) == [image["id"]]


def test_a_private_image_is_not_listed_to_an_anonymous_caller(
    api: Client,
    keys: dict[str, str],  # noqa: F811
    upload_as: Upload,  # noqa: F811
) -> None:
    shown = upload_as(keys["owner"], metadata='{"user": "u1"}')
    hidden = upload_as(keys["owner"], metadata='{"user": "u1"}', visibility="private")
    assert shown.status_code == hidden.status_code == 201
    response = api.get("/images", {"metadata.user": "u1"})
    assert ids(response) == [shown.json()["id"]]
    assert response.json()["count"] == 1
    assert ids(api.get("/images", {"metadata.user": "u1", "cursor": ""})) == [shown.json()["id"]]
    mine = api.get("/images", {"metadata.user": "u1", "visibility": "private"}, **auth(keys["owner"]))
    assert ids(mine) == [hidden.json()["id"]]
    assert (
        ids(api.get("/images", {"metadata.user": "u1", "visibility": "private"}, **auth(keys["other"]))) == []
    )


# --- PostgreSQL: containment, through the GIN index -------------------------------------------------

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the GIN index and containment are PostgreSQL's"
)


@postgresql_only
@pytest.mark.django_db
def test_the_filter_is_a_containment_the_gin_index_answers() -> None:
    query = image_list(metadata={"user": "u1", "n": "5"})
    sql = str(query.query)
    assert "@>" in sql
    with connection.cursor() as cursor:
        # A tiny table is read whole whatever the index; forbid that to see whether the index can serve.
        cursor.execute("SET LOCAL enable_seqscan = off")
        compiled, params = query.query.sql_with_params()
        cursor.execute(f"EXPLAIN {compiled}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "image_metadata_gin" in plan, plan


@postgresql_only
@pytest.mark.django_db
def test_the_database_refuses_metadata_that_is_no_object() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Image.objects.create(
            title="t",
            title_folded="t",
            file="images/x.png",
            width=1,
            height=1,
            format="png",
            size=1,
            metadata=[1],
        )


@postgresql_only
@pytest.mark.django_db
def test_the_column_keeps_finer_statistics_for_the_planner() -> None:
    """So a common value's first page walks the date index (migration 0008 says why)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attstattarget FROM pg_attribute WHERE attrelid = 'images_image'::regclass"
            " AND attname = 'metadata'"
        )
        assert cursor.fetchone()[0] == 1000
