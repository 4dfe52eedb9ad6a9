"""Who may write and read (IMAGERY_AUTH, API keys), and the rate limits per key and per address."""

from __future__ import annotations

import io

import pytest
import redis
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from rest_framework_api_key.models import APIKey

from api import rate_store
from images.models import Image
from tests.conftest import assert_nothing_stored, use_redis
from tests.images import png_upload
from tests.problems import assert_problem


def create_key(name: str = "ci") -> str:
    out = io.StringIO()
    call_command("apikey", "create", name, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


@pytest.fixture
def key(db: None) -> str:
    return create_key()


@pytest.fixture
def image_id(api: Client) -> int:
    return api.post("/images", png_upload()).json()["id"]


# --- Modes -------------------------------------------------------------------------------------


def test_write_mode_refuses_an_upload_without_a_key_with_401(api, settings, media_root):
    settings.IMAGERY_AUTH = "write"
    response = api.post("/images", png_upload())
    assert_problem(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert_nothing_stored()


def test_write_mode_lets_anyone_read(api, settings, image_id):
    settings.IMAGERY_AUTH = "write"
    assert api.get("/images").status_code == 200
    assert api.get(f"/images/{image_id}").status_code == 200


@pytest.mark.parametrize("scheme", ["Bearer", "Api-Key", "bearer"])
def test_write_mode_accepts_a_key_and_records_it_on_the_image(api, settings, key, scheme):
    settings.IMAGERY_AUTH = "write"
    response = api.post("/images", png_upload(), HTTP_AUTHORIZATION=f"{scheme} {key}")
    assert response.status_code == 201
    image = Image.objects.get(pk=response.json()["id"])
    assert image.api_key is not None
    assert image.api_key.name == "ci"


def test_open_mode_records_no_key(api):
    image = Image.objects.get(pk=api.post("/images", png_upload()).json()["id"])
    assert image.api_key is None


@pytest.mark.parametrize("header", ["Bearer nope.nope", "Bearer ", "Api-Key x"])
def test_a_bad_key_is_401_even_where_no_key_is_needed(api, settings, header):
    settings.IMAGERY_AUTH = "write"
    response = api.get("/images", HTTP_AUTHORIZATION=header)
    assert_problem(response, 401)
    assert "WWW-Authenticate" in response


def test_a_revoked_key_is_refused(api, settings, key):
    settings.IMAGERY_AUTH = "write"
    call_command("apikey", "revoke", "ci", stdout=io.StringIO())
    assert_problem(api.post("/images", png_upload(), HTTP_AUTHORIZATION=f"Bearer {key}"), 401)


@pytest.mark.parametrize("path", ["/images", "/images/1"])
def test_all_mode_needs_a_key_to_read(api, settings, key, image_id, path):
    settings.IMAGERY_AUTH = "all"
    assert_problem(api.get(path.replace("1", str(image_id))), 401)
    response = api.get(path.replace("1", str(image_id)), HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200


@pytest.mark.parametrize("query", ["", "?width=16&format=png", "?width=16"])
def test_all_mode_file_answers_are_for_the_key_holders_cache_only(api, settings, key, image_id, query):
    # `public` would let a shared cache (nginx's proxy_cache, a CDN) hand a key holder's answer to anyone.
    settings.IMAGERY_AUTH = "all"
    path = f"/images/{image_id}/file{query}"
    response = api.get(path, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200
    assert response["Cache-Control"] == "private, max-age=31536000, immutable"
    again = api.get(path, HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    assert again["Cache-Control"] == "private, max-age=31536000, immutable"


@pytest.mark.parametrize("mode", ["off", "write"])
def test_file_answers_anyone_may_read_are_public(api, settings, key, image_id, mode):
    settings.IMAGERY_AUTH = mode
    for headers in ({}, {"HTTP_AUTHORIZATION": f"Bearer {key}"}):
        response = api.get(f"/images/{image_id}/file?width=16", **headers)
        assert response.status_code == 200
        assert response["Cache-Control"] == "public, max-age=31536000, immutable"


def test_health_and_docs_stay_open_in_all_mode(api, settings):
    settings.IMAGERY_AUTH = "all"
    assert api.get("/healthz").status_code == 200
    assert api.get("/api/schema/").status_code == 200


def test_schema_declares_the_bearer_scheme(api, settings):
    settings.IMAGERY_AUTH = "write"
    schema = api.get("/api/schema/?format=json").json()
    scheme = schema["components"]["securitySchemes"]["ApiKey"]
    assert scheme == {"type": "http", "scheme": "bearer", "description": scheme["description"]}
    assert "manage.py apikey create" in scheme["description"]  # tells a reader where a key comes from
    post = schema["paths"]["/images"]["post"]
    assert post["security"] == [{"ApiKey": []}]
    assert "401" in post["responses"]
    assert "429" in post["responses"]


@pytest.mark.parametrize("mode", ["off", "write", "all"])
def test_schema_demands_a_key_exactly_where_the_api_does(api, settings, mode):
    # Where the key is optional the operation declares no requirement at all: generated clients read an
    # optional one (`[{"ApiKey": []}, {}]`) as mandatory (openapi-python-client demands an
    # AuthenticatedClient, so a caller without a key cannot call it).
    settings.IMAGERY_AUTH = mode
    schema = api.get("/api/schema/?format=json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            needed = mode == "all" or (mode == "write" and method not in ("get", "head", "options"))
            # An upload URL takes no key in any mode: holding the URL is the permission.
            needed = needed and path != "/uploads/{upload_id}/{secret}"
            assert operation.get("security", []) == ([{"ApiKey": []}] if needed else []), (mode, method, path)


# --- The apikey command --------------------------------------------------------------------------


def test_apikey_stores_only_a_hash_and_lists_and_revokes(db):
    key = create_key("gallery")
    stored = APIKey.objects.get(name="gallery")
    assert key not in stored.hashed_key
    assert key.startswith(stored.prefix)
    listing = io.StringIO()
    call_command("apikey", "list", stdout=listing)
    assert "gallery" in listing.getvalue() and "active" in listing.getvalue()
    call_command("apikey", "revoke", "gallery", stdout=io.StringIO())
    listing = io.StringIO()
    call_command("apikey", "list", stdout=listing)
    assert "revoked" in listing.getvalue()


def test_apikey_refuses_a_duplicate_active_name_and_an_unknown_revoke(db):
    create_key("twice")
    with pytest.raises(CommandError):
        create_key("twice")
    with pytest.raises(CommandError):
        call_command("apikey", "revoke", "nobody", stdout=io.StringIO())


# --- Rate limits ---------------------------------------------------------------------------------


def test_uploads_over_the_address_limit_get_429_with_retry_after(api, settings, media_root):
    settings.THROTTLE_UPLOADS_PER_ADDRESS = "2/hour"
    assert api.post("/images", png_upload()).status_code == 201
    assert api.post("/images", png_upload()).status_code == 201
    response = api.post("/images", png_upload())
    assert_problem(response, 429)
    assert int(response["Retry-After"]) > 0
    assert Image.objects.count() == 2
    # Reads are counted separately.
    assert api.get("/images").status_code == 200


def test_reads_over_the_address_limit_get_429(api, settings):
    settings.THROTTLE_READS_PER_ADDRESS = "3/minute"
    for _ in range(3):
        assert api.get("/images").status_code == 200
    assert_problem(api.get("/images"), 429)


def test_addresses_are_limited_separately(api, settings):
    settings.THROTTLE_READS_PER_ADDRESS = "1/minute"
    assert api.get("/images", REMOTE_ADDR="10.0.0.1").status_code == 200
    assert api.get("/images", REMOTE_ADDR="10.0.0.2").status_code == 200
    assert api.get("/images", REMOTE_ADDR="10.0.0.1").status_code == 429


def test_x_forwarded_for_does_not_make_a_new_client_by_default(api, settings, media_root):
    # No proxy is trusted unless NUM_PROXIES says so: any client can send the header, a new value each time.
    settings.THROTTLE_UPLOADS_PER_ADDRESS = "3/hour"
    for n in range(3):
        response = api.post("/images", png_upload(), HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
        assert response.status_code == 201
    response = api.post("/images", png_upload(), HTTP_X_FORWARDED_FOR="203.0.113.3")
    assert_problem(response, 429)
    assert int(response["Retry-After"]) > 0
    assert Image.objects.count() == 3


def behind_one_proxy(settings) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}


def test_behind_one_proxy_the_client_is_the_address_it_appended(api, settings, media_root):
    behind_one_proxy(settings)
    settings.THROTTLE_UPLOADS_PER_ADDRESS = "1/hour"
    # nginx's socket, whatever client it relays; the header's last address is the client nginx saw.
    proxy = {"REMOTE_ADDR": "172.18.0.5"}
    assert api.post("/images", png_upload(), HTTP_X_FORWARDED_FOR="203.0.113.1", **proxy).status_code == 201
    assert api.post("/images", png_upload(), HTTP_X_FORWARDED_FOR="203.0.113.2", **proxy).status_code == 201
    assert_problem(api.post("/images", png_upload(), HTTP_X_FORWARDED_FOR="203.0.113.1", **proxy), 429)


def test_behind_one_proxy_a_client_cannot_prepend_another_address(api, settings, media_root):
    behind_one_proxy(settings)
    settings.THROTTLE_UPLOADS_PER_ADDRESS = "1/hour"
    proxy = {"REMOTE_ADDR": "172.18.0.5"}
    assert api.post("/images", png_upload(), HTTP_X_FORWARDED_FOR="203.0.113.1", **proxy).status_code == 201
    # The client sent "X-Forwarded-For: 198.51.100.7"; nginx appended the address it really came from.
    spoofed = api.post("/images", png_upload(), HTTP_X_FORWARDED_FOR="198.51.100.7, 203.0.113.1", **proxy)
    assert_problem(spoofed, 429)
    assert Image.objects.count() == 1


def test_uploads_are_limited_per_key(api, settings):
    settings.IMAGERY_AUTH = "write"
    settings.THROTTLE_UPLOADS_PER_KEY = "1/hour"
    first, second = create_key("a"), create_key("b")
    assert api.post("/images", png_upload(), HTTP_AUTHORIZATION=f"Bearer {first}").status_code == 201
    limited = api.post("/images", png_upload(), HTTP_AUTHORIZATION=f"Bearer {first}")
    assert_problem(limited, 429)
    assert api.post("/images", png_upload(), HTTP_AUTHORIZATION=f"Bearer {second}").status_code == 201


def test_an_empty_rate_turns_the_limit_off(api, settings):
    settings.THROTTLE_READS_PER_ADDRESS = ""
    for _ in range(20):
        assert api.get("/images").status_code == 200


def test_a_broken_rate_limit_store_lets_requests_through(api, settings, monkeypatch):
    settings.THROTTLE_READS_PER_ADDRESS = "1/minute"
    use_redis(settings, {"REDIS_URL": "redis://127.0.0.1:6379/0"})

    def unavailable(*args, **kwargs):
        raise redis.ConnectionError("Redis down")

    monkeypatch.setattr(rate_store.RedisStore, "take", unavailable)
    assert api.get("/images").status_code == 200
    assert api.get("/images").status_code == 200


def test_an_unusable_rate_limit_file_lets_requests_through(api, settings, tmp_path):
    settings.THROTTLE_READS_PER_ADDRESS = "1/minute"
    settings.RATE_LIMIT_DATABASE = tmp_path  # a folder: SQLite cannot open it
    assert api.get("/images").status_code == 200
    assert api.get("/images").status_code == 200


# --- Security headers and CORS ---------------------------------------------------------------------


def test_api_responses_carry_security_headers(api):
    response = api.get("/images")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


def test_cors_preflight_allows_the_conditional_headers(api, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    for method in ("PATCH", "DELETE"):
        response = api.options(
            "/images/1",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "if-match",
            },
        )
        assert response.status_code == 200
        allowed = {name.strip() for name in response["Access-Control-Allow-Headers"].split(",")}
        assert {"if-match", "if-none-match", "content-type", "authorization"} <= allowed


def test_cors_allows_only_configured_origins(api, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    allowed = api.get("/images", HTTP_ORIGIN="https://app.example.com")
    assert allowed["Access-Control-Allow-Origin"] == "https://app.example.com"
    refused = api.get("/images", HTTP_ORIGIN="https://evil.example.net")
    assert "Access-Control-Allow-Origin" not in refused
