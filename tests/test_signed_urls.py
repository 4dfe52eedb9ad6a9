"""Signed URLs of private images (images/signing.py, images/file_access.py): what each part of a signature
guards, expiry on a clock the tests set, key rotation, caching, the settings that widen or narrow them."""

# ruff: noqa: F811 (the fixtures of tests/private.py, named as parameters)

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from images import signing
from images.exceptions import SignatureExpired, SignatureInvalid
from tests.private import keys, private, upload_as, who  # noqa: F401 (fixtures)
from tests.problems import assert_problem

NOW = 2_000_000_000.0


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """The signing clock, fixed at NOW until a test moves it."""
    now = {"t": NOW}
    monkeypatch.setattr(signing, "clock", lambda: now["t"])
    return now


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def with_query(url: str, **changes: Any) -> str:
    query = {**query_of(url), **changes}
    query = {k: v for k, v in query.items() if v is not None}
    return f"{urlsplit(url).path}?{urlencode(query)}"


def srcset_url(image: dict[str, Any], width: int) -> str:
    for candidate in image["srcset"].split(", "):
        url, w = candidate.rsplit(" ", 1)
        if w == f"{width}w":
            return url
    raise AssertionError(f"no {width}w in {image['srcset']}")


# --- What a signed URL answers ---------------------------------------------------------------------


def test_a_signed_url_serves_the_private_image_to_anyone_holding_it(api, private, served):
    picture = served(private["url"])  # no key
    assert picture.size == (40, 20)
    left = int(query_of(private["url"])["expires"]) - int(NOW)
    assert picture.served_headers["Cache-Control"] == f"private, max-age={left}"


def test_a_signed_response_is_cached_privately_never_longer_than_it_lives(api, private, clock, settings):
    expires = int(query_of(private["url"])["expires"])
    assert NOW < expires <= NOW + settings.IMAGE_SIGNED_URL_TTL
    clock["t"] = expires - 100
    response = api.get(path_of(private["url"]))
    assert response.status_code == 200
    assert response["Cache-Control"] == "private, max-age=100"
    assert "immutable" not in response["Cache-Control"] and "public" not in response["Cache-Control"]


def test_signed_renditions_serve_their_size(api, private, served):
    assert served(srcset_url(private, 20)).size == (20, 10)
    assert served(private["presets"]["thumb"]).size == (20, 20)  # the 200x200 box shrunk to fit


@pytest.mark.parametrize("caller", [None, "other"])
def test_an_unsigned_request_for_a_private_file_is_404_for_anyone_but_its_owner(api, private, keys, caller):
    base = f"/images/{private['id']}/file"
    for path in [base, f"{base}?width=20", f"{base}?preset=thumb", f"{base}?width=oops"]:
        # A bad parameter too: a 400 would say the image exists.
        assert_problem(api.get(path, **who(keys, caller)), 404)


@pytest.mark.parametrize("caller", ["owner", "admin"])
def test_the_owner_reads_its_private_file_with_its_key_cached_privately(api, private, keys, caller):
    response = api.get(f"/images/{private['id']}/file", **who(keys, caller))
    assert response.status_code == 200
    assert response["Cache-Control"] == "private, no-cache"


# --- Tampering: each part ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"width": "40"},  # another size
        {"format": "webp"},  # another format
        {"preset": "small"},  # another preset
        {"kid": "other"},  # an unknown key
        {"sig": "A" * 43},  # another signature
        {"sig": "short"},  # a malformed one
        {"sig": None},  # none
        {"kid": None},
        {"expires": None},
        {"expires": "9999999999"},  # a later expiry
        {"expires": "²"},  # a digit int() refuses
        {"width": "0020"},  # spelt otherwise is the same request: still valid (below)
    ],
)
def test_altering_any_part_of_a_signed_url_is_403_invalid(api, private, change):
    url = srcset_url(private, 20)
    response = api.get(with_query(url, **change))
    if change == {"width": "0020"}:
        assert response.status_code == 200
        return
    assert_problem(response, 403, "invalid")


def test_a_signature_for_one_image_is_worthless_for_another(api, private, upload_as, keys):
    second = upload_as(keys["owner"], visibility="private").json()
    url = private["url"].replace(f"/images/{private['id']}/", f"/images/{second['id']}/")
    assert_problem(api.get(path_of(url)), 403, "invalid")


def test_a_bad_signature_is_the_same_403_for_an_unknown_id(api, private):
    url = private["url"].replace(f"/images/{private['id']}/", "/images/999999/")
    assert_problem(api.get(path_of(url)), 403, "invalid")


def test_a_repeated_parameter_is_refused_whichever_comes_first(api, private):
    # Neither value is taken (api/params.py): a signature never covers a parameter the client sent twice.
    url = srcset_url(private, 20)
    assert_problem(api.get(f"{path_of(url)}&width=40"), 400, "invalid")
    assert_problem(api.get(path_of(url).replace("?", "?width=40&", 1)), 400, "invalid")
    assert api.get(path_of(url)).status_code == 200


# --- Expiry, keys ---------------------------------------------------------------------------------


def test_an_expired_url_is_403_expired(api, private, clock):
    clock["t"] = int(query_of(private["url"])["expires"])
    assert_problem(api.get(path_of(private["url"])), 403, "expired")


def test_a_tampered_expired_url_is_invalid_not_expired(api, private, clock):
    clock["t"] = NOW + 10 * 86400
    assert_problem(api.get(with_query(private["url"], sig="B" * 43)), 403, "invalid")


def test_keys_rotate_first_signs_all_verify_a_removed_key_is_403_at_once(api, private, settings, keys):
    settings.IMAGERY_SIGNING_KEYS = "old:" + "o" * 32
    old = api.get(f"/images/{private['id']}", **who(keys, "owner")).json()
    assert query_of(old["url"])["kid"] == "old"
    settings.IMAGERY_SIGNING_KEYS = f"new:{'n' * 32},old:{'o' * 32}"
    new = api.get(f"/images/{private['id']}", **who(keys, "owner")).json()
    assert query_of(new["url"])["kid"] == "new"
    assert api.get(path_of(old["url"])).status_code == 200
    assert api.get(path_of(new["url"])).status_code == 200
    settings.IMAGERY_SIGNING_KEYS = "new:" + "n" * 32
    assert_problem(api.get(path_of(old["url"])), 403, "invalid")
    assert api.get(path_of(new["url"])).status_code == 200


def test_a_url_signed_with_the_secret_key_derived_key_names_it(private):
    assert query_of(private["url"])["kid"] == signing.DERIVED_KEY_ID


@pytest.mark.parametrize("raw", ["nocolon", "a:short", f"a:{'x' * 20},a:{'y' * 20}", f"bad id:{'x' * 20}"])
def test_malformed_signing_keys_are_refused(raw):
    with pytest.raises(ValueError):
        signing.keys_from_setting(raw, secret_key="s")


def test_the_etag_does_not_move_with_the_signatures_expiry(api, private, keys, clock):
    first = api.get(f"/images/{private['id']}", **who(keys, "owner"))
    clock["t"] = NOW + 600
    again = api.get(f"/images/{private['id']}", **who(keys, "owner"))
    assert again.json()["url"] != first.json()["url"]  # a fresh signature
    assert again["ETag"] == first["ETag"]
    response = api.patch(
        f"/images/{private['id']}",
        {"title": "renamed"},
        content_type="application/json",
        HTTP_IF_MATCH=first["ETag"],
        **who(keys, "owner"),
    )
    assert response.status_code == 200


# --- Settings: public presets, signatures required --------------------------------------------------


def test_public_presets_stay_unsigned_for_private_images(api, settings, upload_as, keys):
    settings.IMAGE_PUBLIC_PRESETS = ["thumb"]
    image = upload_as(keys["owner"], visibility="private").json()
    assert image["presets"]["thumb"] == f"http://testserver/images/{image['id']}/file?preset=thumb"
    assert "sig=" in image["presets"]["small"]
    response = api.get(f"/images/{image['id']}/file?preset=thumb")
    assert response.status_code == 200
    assert_problem(api.get(f"/images/{image['id']}/file?preset=small"), 404)


@pytest.mark.parametrize(("mode", "status"), [("off", 200), ("private", 403), ("all", 403)])
def test_the_owner_asking_a_free_size_unsigned_depends_on_the_mode(
    api, private, keys, settings, mode, status
):
    settings.IMAGE_RENDITIONS_REQUIRE_SIGNATURE = mode
    response = api.get(f"/images/{private['id']}/file?width=20", **who(keys, "owner"))
    assert response.status_code == status
    if status == 403:
        assert_problem(response, 403, "signature_required")


def test_require_all_signs_public_free_sizes_and_leaves_presets_and_the_file(api, settings, upload_as, keys):
    settings.IMAGE_RENDITIONS_REQUIRE_SIGNATURE = "all"
    image = upload_as(keys["owner"]).json()
    assert_problem(api.get(f"/images/{image['id']}/file?width=20"), 403, "signature_required")
    assert api.get(f"/images/{image['id']}/file?preset=thumb").status_code == 200
    assert api.get(f"/images/{image['id']}/file").status_code == 200
    assert "sig=" in image["srcset"] and "sig=" not in image["presets"]["thumb"]
    assert api.get(path_of(srcset_url(image, 20))).status_code == 200


def test_signed_urls_work_under_auth_all_without_a_key(api, private, settings):
    settings.IMAGERY_AUTH = "all"
    assert api.get(path_of(private["url"])).status_code == 200
    assert_problem(api.get(f"/images/{private['id']}/file"), 401)


# --- Logs -----------------------------------------------------------------------------------------


def test_the_access_log_never_holds_a_whole_signature(api, private, caplog):
    sig = query_of(private["url"])["sig"]
    with caplog.at_level(logging.INFO):
        assert api.get(path_of(private["url"])).status_code == 200
        api.get(with_query(private["url"], kid="nope"))
    assert "api.access" in {record.name for record in caplog.records}
    assert sig not in caplog.text
    assert re.search(r"sig=\S{4}…", caplog.text)


# --- Parsing: never a 5xx ---------------------------------------------------------------------------

_PARTS = ["width", "height", "preset", "format", "expires", "kid", "sig", "other"]
_values = st.one_of(
    st.text(max_size=60),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.sampled_from(["thumb", "webp", "auto", "default", "2000000060", "A" * 43, "²", ""]),
)


@hyp_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.dictionaries(st.sampled_from(_PARTS), _values, max_size=8), start_from_real=st.booleans())
def test_any_signed_looking_query_is_answered_without_a_5xx(api, private, query, start_from_real):
    base = query_of(srcset_url(private, 20)) if start_from_real else {}
    response = api.get(f"/images/{private['id']}/file?{urlencode({**base, **query})}")
    assert response.status_code < 500, response.content
    if signing.is_signed({**base, **query}):
        assert response.status_code in (200, 403), response.content


@hyp_settings(max_examples=300, deadline=None)
@given(
    params=st.dictionaries(st.sampled_from(_PARTS[:4]), _values, max_size=4),
    query=st.dictionaries(st.sampled_from(["expires", "kid", "sig"]), _values, max_size=3),
)
def test_verify_only_ever_refuses_with_its_two_errors(params, query):
    with pytest.raises((SignatureInvalid, SignatureExpired)):
        signing.verify(1, params, query)


def test_an_object_with_signed_urls_is_never_a_304_its_urls_would_expire(api, private, keys, clock):
    first = api.get(f"/images/{private['id']}", **who(keys, "owner"))
    clock["t"] = NOW + 7200  # the first answer's URLs have expired by now
    again = api.get(f"/images/{private['id']}", HTTP_IF_NONE_MATCH=first["ETag"], **who(keys, "owner"))
    assert again.status_code == 200
    assert api.get(path_of(again.json()["url"])).status_code == 200
    assert_problem(api.get(path_of(first.json()["url"])), 403, "expired")
