"""One-time upload URLs: a key mints one (POST /uploads), anyone holding it uploads one image with no key
(POST /uploads/{id}/{secret}), the key asks how it went (GET /uploads/{id})."""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.client import MULTIPART_CONTENT
from django.utils import timezone
from PIL import Image as PILImage
from rest_framework_api_key.models import APIKey

from api.request_log import RedactSecretsFilter
from config.logs import logging_config
from images.exceptions import ImageTooLarge
from images.models import Image
from tests.conftest import Client, assert_nothing_stored
from tests.images import encode, quadrants
from tests.problems import assert_problem
from tests.test_access import create_key
from uploads.limits import DirectUploadHandler
from uploads.models import DirectUpload

ORIGIN = "https://app.example.com"


@pytest.fixture(autouse=True)
def keys_required(settings: Any) -> None:
    """Upload URLs are for deployments with keys: writes need one (IMAGERY_AUTH=write)."""
    settings.IMAGERY_AUTH = "write"


@pytest.fixture
def key(db: None) -> str:
    return create_key("app")


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def mint(api: Client, key: str | None, **fields: Any) -> Any:
    return api.post("/uploads", fields, content_type="application/json", headers=auth(key) if key else {})


def minted(api: Client, key: str, **fields: Any) -> dict[str, Any]:
    response = mint(api, key, **fields)
    assert response.status_code == 201, response.content
    return response.json()


def send(api: Client, url: str, content: bytes | PILImage.Image | None = None, **fields: Any) -> Any:
    """POST a multipart `image` (+ fields) to an upload URL, with no key."""
    data = dict(fields)
    if content is not None:
        file = io.BytesIO(content if isinstance(content, bytes) else encode(content, "PNG"))
        file.name = "holiday.png"
        data["image"] = file
    return api.post(url.removeprefix("http://testserver"), data, content_type=MULTIPART_CONTENT)


def status_of(api: Client, key: str, upload_id: str) -> Any:
    return api.get(f"/uploads/{upload_id}", headers=auth(key))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """`django.utils.timezone.now` frozen at clock[0]; a test moves it by setting clock[0]."""
    now = [timezone.now()]
    monkeypatch.setattr(timezone, "now", lambda: now[0])
    return now


# --- Minting ---------------------------------------------------------------------------------------


def test_minting_needs_a_key(api: Client) -> None:
    assert_problem(mint(api, None), 401)
    assert DirectUpload.objects.count() == 0


def test_minting_answers_an_absolute_one_time_url_and_keeps_only_its_hash(
    api: Client, key: str, clock: list[datetime]
) -> None:
    response = mint(api, key, title="Beach", width=100)
    assert response.status_code == 201, response.content
    body = response.json()
    assert response["Location"] == f"/uploads/{body['id']}"
    prefix = f"http://testserver/uploads/{body['id']}/"
    assert body["upload_url"].startswith(prefix)
    secret = body["upload_url"].removeprefix(prefix)
    assert len(secret) >= 43  # 32 random bytes, base64url: 256 bits
    assert body["state"] == "pending"
    assert body["fixed"] == {"title": "Beach", "width": 100}
    assert body["max_bytes"] == 50 * 1024 * 1024
    assert body["image"] is None
    assert datetime.fromisoformat(body["expires_at"]) == clock[0] + timedelta(seconds=1800)
    row = DirectUpload.objects.get()
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(list(DirectUpload.objects.values()))
    assert row.api_key == APIKey.objects.get_from_key(key)


def test_two_urls_have_different_secrets(api: Client, key: str) -> None:
    first, second = minted(api, key)["upload_url"], minted(api, key)["upload_url"]
    assert first.rsplit("/", 1)[1] != second.rsplit("/", 1)[1]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"width": 0}, "width"),
        ({"width": 10_001}, "width"),
        ({"height": "ten"}, "height"),
        ({"fit": "stretch"}, "fit"),
        ({"format": "gif"}, "format"),
        ({"visibility": "secret"}, "visibility"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 256}, "title"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"max_bytes": 50 * 1024 * 1024 + 1}, "max_bytes"),
        ({"expires_in": 0}, "expires_in"),
        ({"expires_in": 6 * 3600 + 1}, "expires_in"),
        ({"metadata": "not an object"}, "metadata"),
        ({"metadata": {"notes": "x" * 3000}}, "metadata"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_minting_validates_what_it_fixes_like_post_images(
    api: Client, key: str, fields: dict[str, Any], field: str
) -> None:
    assert_problem(mint(api, key, **fields), 400, field=field)
    assert DirectUpload.objects.count() == 0


def test_minting_follows_the_configured_limits(api: Client, key: str, settings: Any) -> None:
    settings.IMAGE_MAX_UPLOAD_BYTES = 10_000
    settings.UPLOAD_URL_MAX_TTL = 60
    assert_problem(mint(api, key, max_bytes=10_001), 400, field="max_bytes")
    assert_problem(mint(api, key, expires_in=61), 400, field="expires_in")
    assert minted(api, key)["max_bytes"] == 10_000


def test_with_access_open_anyone_may_mint_and_the_image_has_no_owner(api: Client, settings: Any) -> None:
    settings.IMAGERY_AUTH = "off"
    upload = api.post("/uploads", {}, content_type="application/json").json()
    image = send(api, upload["upload_url"], quadrants((40, 20))).json()
    assert Image.objects.get(pk=image["id"]).api_key is None
    assert api.get(f"/uploads/{upload['id']}").json()["state"] == "completed"


def test_private_needs_keys_on(api: Client, key: str, settings: Any) -> None:
    settings.IMAGERY_AUTH = "off"
    assert_problem(mint(api, key, visibility="private"), 400, field="visibility")


# --- Uploading -------------------------------------------------------------------------------------


def test_an_upload_without_a_key_makes_the_image_of_the_minting_key(
    api: Client, key: str, served: Any
) -> None:
    url = minted(api, key, title="Beach", width=100, format="webp")["upload_url"]
    response = send(api, url, quadrants((400, 200)), height="20")
    assert response.status_code == 201, response.content
    image = response.json()
    assert response["Location"] == f"/images/{image['id']}"
    # What the URL fixed, and what the uploader chose of what it left open (the height, with `contain`).
    assert (image["title"], image["width"], image["height"], image["format"]) == ("Beach", 40, 20, "webp")
    assert Image.objects.get(pk=image["id"]).api_key == APIKey.objects.get_from_key(key)
    pixels = served(image["url"])
    assert pixels.size == (40, 20) and pixels.format == "WEBP"
    # The asymmetric quadrants are where they were: red top left, blue bottom left.
    red, blue = pixels.convert("RGB").getpixel((2, 2)), pixels.convert("RGB").getpixel((2, 17))
    assert red[0] > 200 and red[2] < 60 and blue[2] > 200 and blue[0] < 60


def test_the_answer_is_the_one_post_images_gives(api: Client, key: str) -> None:
    url = minted(api, key)["upload_url"]
    direct = send(api, url, quadrants((40, 20)), title="same")
    plain = api.post("/images", {"image": _file(quadrants((40, 20))), "title": "same"}, headers=auth(key))
    assert direct.status_code == plain.status_code == 201
    # The second of two identical files names the first (`duplicate_of`, issue 26).
    different = {"id", "url", "srcset", "presets", "created_at", "duplicate_of"}
    assert direct.json().keys() == plain.json().keys()
    assert {k: v for k, v in direct.json().items() if k not in different} == {
        k: v for k, v in plain.json().items() if k not in different
    }


def test_the_uploader_defaults_are_post_images_defaults(api: Client, key: str) -> None:
    url = minted(api, key)["upload_url"]
    image = send(api, url, quadrants((40, 20))).json()
    assert (image["title"], image["width"], image["height"], image["visibility"]) == (
        "holiday",
        40,
        20,
        "public",
    )


def test_a_private_url_makes_a_private_image_of_its_key(api: Client, key: str) -> None:
    url = minted(api, key, visibility="private")["upload_url"]
    image = send(api, url, quadrants((40, 20))).json()
    assert image["visibility"] == "private"
    assert api.get(f"/images/{image['id']}").status_code == 404
    assert api.get(f"/images/{image['id']}", headers=auth(key)).status_code == 200


def test_a_field_the_url_fixed_cannot_be_sent_and_the_url_stays_usable(api: Client, key: str) -> None:
    url = minted(api, key, title="Fixed", width=30)["upload_url"]
    assert_problem(send(api, url, quadrants((40, 20)), title="Mine"), 400, field="title")
    assert_problem(send(api, url, quadrants((40, 20)), width="10"), 400, field="width")
    assert_nothing_stored()
    image = send(api, url, quadrants((40, 20)), title="").json()
    assert (image["title"], image["width"]) == ("Fixed", 30)


def test_a_key_sent_to_the_upload_url_is_not_looked_at(api: Client, key: str) -> None:
    url = minted(api, key)["upload_url"]
    response = api.post(
        url.removeprefix("http://testserver"),
        {"image": _file(quadrants((40, 20)))},
        headers={"Authorization": "Bearer not-a-key"},
    )
    assert response.status_code == 201, response.content


def test_a_second_upload_is_409(api: Client, key: str) -> None:
    url = minted(api, key)["upload_url"]
    assert send(api, url, quadrants((40, 20))).status_code == 201
    assert_problem(send(api, url, quadrants((40, 20))), 409, "upload_used")
    assert Image.objects.count() == 1


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (encode(quadrants((400, 300)), "PNG")[:500], 400, "invalid_image"),
        (b"%PDF-1.4\n1 0 obj<<>>endobj\n", 415, "unsupported_format"),
    ],
)
def test_a_bad_image_is_refused_as_post_images_refuses_it_and_the_url_stays_usable(
    api: Client, key: str, content: bytes, status: int, code: str
) -> None:
    upload = minted(api, key)
    assert_problem(send(api, upload["upload_url"], content), status, code, field="image")
    assert_problem(api.post("/images", {"image": _file(content)}, headers=auth(key)), status, code)
    assert_nothing_stored()
    assert status_of(api, key, upload["id"]).json()["state"] == "pending"
    assert send(api, upload["upload_url"], quadrants((40, 20))).status_code == 201


def test_a_file_over_the_urls_max_bytes_is_413_and_the_url_stays_usable(api: Client, key: str) -> None:
    url = minted(api, key, max_bytes=10_000)["upload_url"]
    noisy = encode(PILImage.effect_noise((200, 200), 100).convert("RGB"), "PNG")
    assert len(noisy) > 10_000
    assert_problem(send(api, url, noisy), 413, "image_too_large", field="image")
    assert_nothing_stored()
    assert send(api, url, quadrants((40, 20))).status_code == 201


def test_a_body_declared_over_max_bytes_is_refused_before_it_is_read(api: Client, key: str) -> None:
    url = minted(api, key, max_bytes=10_000)["upload_url"].removeprefix("http://testserver")
    body = b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
    response = api.generic(
        "POST", url, body, content_type="multipart/form-data; boundary=x", CONTENT_LENGTH="999999999"
    )
    assert_problem(response, 413, "image_too_large", field="image")


def test_the_handler_answers_as_post_images_does() -> None:
    assert (DirectUploadHandler.field, DirectUploadHandler.code) == (ImageTooLarge.field, ImageTooLarge.code)


def test_a_wrong_secret_or_id_is_404_and_costs_the_url_nothing(api: Client, key: str) -> None:
    upload = minted(api, key)
    url = upload["upload_url"]
    other = "00000000-0000-4000-8000-000000000000"
    for wrong in (
        url[:-1] + ("A" if url[-1] != "A" else "B"),
        url.replace(upload["id"], other),
        url + "x" * 200,
    ):
        assert_problem(send(api, wrong, quadrants((40, 20))), 404)
    assert send(api, url, quadrants((40, 20))).status_code == 201


def test_an_expired_url_is_410_and_the_sweep_removes_it(api: Client, key: str, clock: list[datetime]) -> None:
    upload = minted(api, key, expires_in=60)
    used = minted(api, key, expires_in=60)
    assert send(api, used["upload_url"], quadrants((40, 20))).status_code == 201
    clock[0] += timedelta(seconds=59)
    assert status_of(api, key, upload["id"]).json()["state"] == "pending"
    clock[0] += timedelta(seconds=1)
    assert status_of(api, key, upload["id"]).json()["state"] == "expired"
    assert_problem(send(api, upload["upload_url"], quadrants((40, 20))), 410, "upload_expired")
    assert Image.objects.count() == 1
    out = io.StringIO()
    call_command("expire_uploads", stdout=out)
    assert out.getvalue().splitlines()[0] == "1 expired upload URL(s) deleted."
    # The used one stays: it still says which image it made.
    assert status_of(api, key, used["id"]).json()["state"] == "completed"
    assert_problem(status_of(api, key, upload["id"]), 404)
    assert_problem(send(api, upload["upload_url"], quadrants((40, 20))), 404)


def test_a_claim_left_by_a_dead_request_lapses_and_the_sweep_spares_one_under_way(
    api: Client, key: str, clock: list[datetime]
) -> None:
    from uploads.services import CLAIM_LEASE, expired_uploads_sweep

    upload = minted(api, key, expires_in=6 * 3600)
    # A worker killed while it processed the upload: its claim stays.
    DirectUpload.objects.filter(pk=upload["id"]).update(claimed_at=clock[0])
    assert_problem(send(api, upload["upload_url"], quadrants((40, 20))), 409, "upload_used")
    clock[0] += CLAIM_LEASE + timedelta(seconds=1)
    assert send(api, upload["upload_url"], quadrants((40, 20))).status_code == 201

    under_way = minted(api, key, expires_in=60)
    DirectUpload.objects.filter(pk=under_way["id"]).update(claimed_at=clock[0])
    clock[0] += timedelta(seconds=61)
    assert expired_uploads_sweep() == 0  # still being processed: its image may yet come
    clock[0] += CLAIM_LEASE
    assert expired_uploads_sweep() == 1


def test_a_url_of_a_revoked_key_takes_no_upload(api: Client, key: str) -> None:
    url = minted(api, key)["upload_url"]
    APIKey.objects.filter(pk=APIKey.objects.get_from_key(key).pk).update(revoked=True)
    assert_problem(send(api, url, quadrants((40, 20))), 410, "upload_expired")
    assert_nothing_stored()


@pytest.mark.django_db(transaction=True)
def test_two_uploads_at_once_make_one_image_and_one_409(
    api: Client, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from uploads import services

    url = minted(api, key)["upload_url"]
    # Both have seen the URL unused before either claims it: they race for the claim itself.
    barrier = threading.Barrier(2, timeout=30)
    real_check = services.direct_upload_check_open
    waited = threading.local()

    def check_then_wait(*, upload: DirectUpload) -> None:
        real_check(upload=upload)
        if not getattr(waited, "done", False):
            waited.done = True
            barrier.wait()

    monkeypatch.setattr(services, "direct_upload_check_open", check_then_wait)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def upload() -> None:
        try:
            statuses.append(send(Client(), url, quadrants((40, 20))).status_code)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()  # each thread's own

    workers = [threading.Thread(target=upload) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []
    assert sorted(statuses) == [201, 409]
    assert Image.objects.count() == 1
    assert DirectUpload.objects.get().image_id == Image.objects.get().pk


# --- Its state -------------------------------------------------------------------------------------


def test_the_state_is_for_the_minting_key_and_admin_keys_only(api: Client, key: str) -> None:
    upload = minted(api, key, title="Beach")
    assert status_of(api, key, upload["id"]).json()["state"] == "pending"
    other = create_key("other")
    assert_problem(status_of(api, other, upload["id"]), 404)
    assert_problem(api.get(f"/uploads/{upload['id']}"), 404)
    admin = io.StringIO()
    call_command("apikey", "create", "root", "--admin", stdout=admin, stderr=io.StringIO())
    assert status_of(api, admin.getvalue().strip(), upload["id"]).status_code == 200

    image = send(api, upload["upload_url"], quadrants((40, 20))).json()
    body = status_of(api, key, upload["id"]).json()
    assert body["state"] == "completed"
    assert body["image"]["id"] == image["id"] and body["image"]["title"] == "Beach"
    assert body["completed_at"] is not None
    assert "upload_url" not in body and upload["upload_url"].rsplit("/", 1)[1] not in str(body)


def test_an_unknown_upload_is_404(api: Client, key: str) -> None:
    assert_problem(status_of(api, key, "00000000-0000-4000-8000-000000000000"), 404)


# --- Rate limits -----------------------------------------------------------------------------------


def test_the_uploader_address_is_limited_as_for_any_upload(api: Client, key: str, settings: Any) -> None:
    settings.THROTTLE_UPLOADS_PER_ADDRESS = "1/hour"
    first = _minted_from(api, key, "10.0.0.1")
    second = _minted_from(api, key, "10.0.0.2")
    assert _send_from(api, first["upload_url"], "10.0.0.3").status_code == 201
    response = _send_from(api, second["upload_url"], "10.0.0.3")
    assert_problem(response, 429)
    assert int(response["Retry-After"]) > 0
    assert _send_from(api, second["upload_url"], "10.0.0.4").status_code == 201


def test_the_minting_key_is_limited_as_for_a_write(api: Client, key: str, settings: Any) -> None:
    settings.THROTTLE_UPLOADS_PER_KEY = "1/hour"
    _minted_from(api, key, "10.0.0.1")
    assert_problem(
        api.post("/uploads", {}, content_type="application/json", headers=auth(key), REMOTE_ADDR="10.0.0.2"),
        429,
    )


def _minted_from(api: Client, key: str, address: str) -> dict[str, Any]:
    response = api.post(
        "/uploads", {}, content_type="application/json", headers=auth(key), REMOTE_ADDR=address
    )
    assert response.status_code == 201, response.content
    return response.json()


def _send_from(api: Client, url: str, address: str) -> Any:
    return api.post(
        url.removeprefix("http://testserver"), {"image": _file(quadrants((40, 20)))}, REMOTE_ADDR=address
    )


# --- Cross-origin and logs ------------------------------------------------------------------------


def test_a_browser_on_an_allowed_origin_may_upload_cross_origin(api: Client, key: str, settings: Any) -> None:
    settings.CORS_ALLOWED_ORIGINS = [ORIGIN]
    url = minted(api, key)["upload_url"].removeprefix("http://testserver")
    preflight = api.options(
        url,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in preflight["Access-Control-Allow-Methods"]
    response = api.post(url, {"image": _file(quadrants((40, 20)))}, headers={"Origin": ORIGIN})
    assert response.status_code == 201
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert "location" in response["Access-Control-Expose-Headers"].lower()
    refused = api.options(
        url, headers={"Origin": "https://evil.example.net", "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in refused


def test_no_log_line_holds_the_secret_whole(api: Client, key: str, caplog: pytest.LogCaptureFixture) -> None:
    url = minted(api, key)["upload_url"]
    secret = url.rsplit("/", 1)[1]
    caplog.handler.addFilter(RedactSecretsFilter())  # as the console handler has it (config/logs.py)
    caplog.set_level(logging.INFO)
    send(api, url, quadrants((40, 20)))
    send(api, url, quadrants((40, 20)))  # a 409: Django logs it as "Conflict: <path>"
    send(api, url[:-2] + "xx", quadrants((40, 20)))  # a 404: "Not Found: <path>"
    lines = [caplog.handler.format(record) for record in caplog.records]
    assert any(f"{secret[:4]}…" in line for line in lines), lines
    assert not any(secret in line or secret[:-2] in line for line in lines), lines
    assert all(secret not in repr(getattr(record, "request", "")) for record in caplog.records)
    handlers = logging_config(log_format="json", level="INFO")["handlers"]
    assert "redact_secrets" in handlers["console"]["filters"]


def _file(image: PILImage.Image | bytes) -> io.BytesIO:
    file = io.BytesIO(image if isinstance(image, bytes) else encode(image, "PNG"))
    file.name = "holiday.png"
    return file


def test_a_url_fixes_metadata_and_focal_point_and_the_image_has_them(api: Client, key: str) -> None:
    upload = minted(
        api,
        key,
        metadata={"user": "u42", "album": 7},
        focal={"x": 0.25, "y": 0.75},
        gravity="center",
        width=40,
    )
    assert upload["fixed"]["metadata"] == {"user": "u42", "album": 7}
    assert upload["fixed"]["focal"] == {"x": 0.25, "y": 0.75}
    response = send(api, upload["upload_url"], quadrants((80, 40)))
    assert response.status_code == 201, response.content
    image = response.json()
    assert image["metadata"] == {"user": "u42", "album": 7}
    assert image["focal"] == {"x": 0.25, "y": 0.75}
    listed = api.get("/images?metadata.user=u42", headers=auth(key)).json()
    assert [item["id"] for item in listed["results"]] == [image["id"]]


def test_a_url_refuses_bad_metadata_and_the_uploader_may_not_override_it(api: Client, key: str) -> None:
    assert_problem(mint(api, key, metadata={"nested": {"a": 1}}), 400, field="metadata")
    assert_problem(mint(api, key, focal={"x": 2, "y": 0}), 400, field="focal.x")
    upload = minted(api, key, metadata={"user": "u1"})
    assert_problem(send(api, upload["upload_url"], quadrants((40, 20)), metadata='{"user": "u2"}'), 400)
    # The uploader may set what the URL left open, as for POST /images.
    open_upload = minted(api, key)
    image = send(api, open_upload["upload_url"], quadrants((40, 20)), metadata='{"user": "u3"}').json()
    assert image["metadata"] == {"user": "u3"}
