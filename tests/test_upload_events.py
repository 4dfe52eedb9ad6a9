"""`upload.completed` and `upload.expired`: what an app hears of its upload URLs, delivered signed to a
receiver on loopback, once per upload, and never for an upload that made no image."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.test.client import MULTIPART_CONTENT
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from events import sending
from events.models import Event
from images.models import Image
from tests.conftest import Client
from tests.images import encode, quadrants
from tests.receivers import Receiver
from tests.test_webhooks import create_key


@pytest.fixture
def admin(db: None) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_key('ops', admin=True)}"}


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOW_PRIVATE = True
    server = Receiver()
    yield server
    server.stop()
    sending.close_connections()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    now = [timezone.now()]
    monkeypatch.setattr(timezone, "now", lambda: now[0])
    return now


def subscribe(api: Client, admin: dict[str, str], url: str, kinds: list[str]) -> dict[str, Any]:
    response = api.post(
        "/webhooks", {"url": url, "events": kinds}, content_type="application/json", headers=admin
    )
    assert response.status_code == 201, response.content
    assert response.json()["events"] == kinds
    return response.json()


def mint(api: Client, admin: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = api.post("/uploads", fields, content_type="application/json", headers=admin)
    assert response.status_code == 201, response.content
    return response.json()


def upload(api: Client, url: str, content: bytes) -> Any:
    file = io.BytesIO(content)
    file.name = "holiday.png"
    return api.post(urlsplit(url).path, {"image": file}, content_type=MULTIPART_CONTENT)


def bodies(endpoint: dict[str, Any], receiver: Receiver) -> list[dict[str, Any]]:
    """What the receiver got, each verified by the receiving library with the endpoint's secret."""
    return [Webhook(endpoint["secret"]).verify(r.body, r.headers) for r in receiver.requests]


UPLOAD_KINDS = ["upload.completed", "upload.expired"]


def test_an_upload_through_a_url_is_delivered_once_as_upload_completed(
    api, admin, receiver, django_capture_on_commit_callbacks
):
    endpoint = subscribe(api, admin, receiver.url, UPLOAD_KINDS)
    minted = mint(api, admin, title="Beach")
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(api, minted["upload_url"], encode(quadrants((40, 30)), "PNG"))
    assert response.status_code == 201, response.content
    image = response.json()
    [body] = bodies(endpoint, receiver)
    assert body["type"] == "upload.completed"
    # The upload URL as GET /uploads/{id} answers it (its image's URLs as paths, as every event has them).
    state = api.get(f"/uploads/{minted['id']}", headers=admin).json()
    assert state["state"] == "completed"
    expected = json.loads(json.dumps(state).replace("http://testserver", ""))
    assert body["data"]["object"] == expected
    assert body["data"]["object"]["image"]["id"] == image["id"]
    assert body["data"]["key"] == {"prefix": admin["Authorization"].split()[1].split(".")[0], "name": "ops"}
    # A second upload to the used URL is a 409 and tells nobody anything.
    with django_capture_on_commit_callbacks(execute=True):
        assert upload(api, minted["upload_url"], encode(quadrants((40, 30)), "PNG")).status_code == 409
    assert len(receiver.requests) == 1


def test_a_bad_image_sends_no_upload_event_and_the_url_still_completes_once(
    api, admin, receiver, django_capture_on_commit_callbacks
):
    endpoint = subscribe(api, admin, receiver.url, UPLOAD_KINDS)
    minted = mint(api, admin)
    with django_capture_on_commit_callbacks(execute=True):
        assert upload(api, minted["upload_url"], b"not an image at all").status_code == 415
    assert receiver.requests == []
    assert not Event.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert upload(api, minted["upload_url"], encode(quadrants((40, 30)), "PNG")).status_code == 201
    assert [b["type"] for b in bodies(endpoint, receiver)] == ["upload.completed"]


def test_a_completion_rolled_back_sends_nothing(
    api, admin, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    from uploads import notifications

    subscribe(api, admin, receiver.url, UPLOAD_KINDS)
    minted = mint(api, admin)
    real = notifications.upload_completed

    def recorded_then_failed(**kwargs: Any) -> None:
        real(**kwargs)
        raise ConnectionError("the database went away before the commit")

    monkeypatch.setattr(notifications, "upload_completed", recorded_then_failed)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ConnectionError):
        upload(api, minted["upload_url"], encode(quadrants((40, 30)), "PNG"))
    assert not Event.objects.filter(kind="upload.completed").exists()
    assert receiver.requests == []
    assert api.get(f"/uploads/{minted['id']}", headers=admin).json()["state"] == "pending"
    # The image went with its completion (one transaction): no row, no event of it, and the URL, still
    # unused, takes the next upload (a process dying there cannot leave a URL that makes two images).
    assert not Image.objects.exists()
    assert not Event.objects.filter(kind="image.created").exists()
    monkeypatch.setattr(notifications, "upload_completed", real)
    with django_capture_on_commit_callbacks(execute=True):
        again = upload(api, minted["upload_url"], encode(quadrants((40, 30)), "PNG"))
    assert again.status_code == 201, again.content
    assert Image.objects.count() == 1


def test_a_resumable_upload_is_delivered_once_as_upload_completed(
    api, admin, receiver, django_capture_on_commit_callbacks
):
    endpoint = subscribe(api, admin, receiver.url, UPLOAD_KINDS)
    minted = mint(api, admin)
    path = urlsplit(minted["upload_url"]).path
    png = encode(quadrants((40, 30)), "PNG")
    tus = {"Tus-Resumable": "1.0.0"}
    created = api.generic("POST", path, b"", headers={**tus, "Upload-Length": str(len(png))})
    assert created.status_code == 201, created.content
    half = len(png) // 2
    for start, chunk in ((0, png[:half]), (half, png[half:])):
        with django_capture_on_commit_callbacks(execute=True):
            response = api.generic(
                "PATCH",
                path,
                chunk,
                content_type="application/offset+octet-stream",
                headers={**tus, "Upload-Offset": str(start)},
            )
        assert response.status_code == 204, response.content
    image_path = response["Imagery-Image"]
    [body] = bodies(endpoint, receiver)
    assert body["type"] == "upload.completed"
    assert body["data"]["object"]["id"] == minted["id"]
    assert f"/images/{body['data']['object']['image']['id']}" == image_path


def test_the_expiry_sweep_sends_one_upload_expired_per_url(
    api, admin, receiver, clock, django_capture_on_commit_callbacks
):
    endpoint = subscribe(api, admin, receiver.url, UPLOAD_KINDS)
    expiring = mint(api, admin, expires_in=60)
    used = mint(api, admin, expires_in=60)
    with django_capture_on_commit_callbacks(execute=True):
        assert upload(api, used["upload_url"], encode(quadrants((40, 30)), "PNG")).status_code == 201
    clock[0] += timedelta(seconds=61)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("expire_uploads", stdout=io.StringIO())
    with django_capture_on_commit_callbacks(execute=True):
        call_command("expire_uploads", stdout=io.StringIO())  # nothing left: nothing said twice
    received = bodies(endpoint, receiver)
    assert [b["type"] for b in received] == ["upload.completed", "upload.expired"]
    expired = received[1]["data"]
    assert expired["object"]["id"] == expiring["id"]
    assert expired["object"]["state"] == "expired"
    assert expired["object"]["image"] is None
    assert api.get(f"/uploads/{expiring['id']}", headers=admin).status_code == 404


def test_an_expired_url_another_sweep_removed_first_is_not_reported_again(
    api, admin, receiver, clock, monkeypatch
):
    from django.db.models import QuerySet

    from uploads.models import DirectUpload
    from uploads.services import expired_uploads_sweep

    subscribe(api, admin, receiver.url, UPLOAD_KINDS)
    mint(api, admin, expires_in=60)
    clock[0] += timedelta(seconds=61)
    real_delete = QuerySet.delete
    raced: list[int] = []

    def another_sweep_first(self: QuerySet, *args: Any, **kwargs: Any) -> Any:
        # Another sweep deletes the row between this sweep's read and its conditional DELETE.
        if self.model is DirectUpload and not raced:
            raced.append(real_delete(DirectUpload.objects.all())[0])
        return real_delete(self, *args, **kwargs)

    monkeypatch.setattr(QuerySet, "delete", another_sweep_first)
    assert expired_uploads_sweep() == 0
    assert raced == [1]
    assert not Event.objects.filter(kind="upload.expired").exists()


@pytest.mark.parametrize("kind", UPLOAD_KINDS)
def test_the_webhooks_api_takes_the_upload_kinds(api, admin, kind):
    response = api.post(
        "/webhooks",
        {"url": "https://hooks.example.com/in", "events": [kind]},
        content_type="application/json",
        headers=admin,
    )
    assert response.status_code == 201, response.content
    assert response.json()["events"] == [kind]
