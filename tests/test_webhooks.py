"""Webhooks: endpoints (admin keys only), the outbox, signed delivery to a real receiver, idempotency,
retries with a controlled clock, the relay, delivery lists and retries, and the database backend's worker.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.db.models import Q
from django.test import Client
from django_tasks_db.models import DBTaskResult
from standardwebhooks.webhooks import Webhook

import events
from events import clock, deliveries, retries, sending, tasks
from events.models import Delivery, DeliveryStatus, Event, WebhookEndpoint
from tests.images import png_upload
from tests.problems import assert_problem
from tests.queue import run_worker
from tests.receivers import Receiver


def create_key(name: str, *, admin: bool = False) -> str:
    out = io.StringIO()
    call_command("apikey", "create", name, *(["--admin"] if admin else []), stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


@pytest.fixture
def admin(db: None) -> dict[str, str]:
    """Headers with an admin key."""
    return {"Authorization": f"Bearer {create_key('ops', admin=True)}"}


@pytest.fixture
def local_targets(settings) -> Iterator[None]:
    """The receivers of these tests listen on loopback over http."""
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOW_PRIVATE = True
    yield
    sending.close_connections()


@pytest.fixture
def receiver(local_targets: None) -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def frozen(monkeypatch) -> list[dt.datetime]:
    """The clock deliveries go by, set by the test: `frozen[0]`."""
    now = [dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)]
    monkeypatch.setattr(clock, "now", lambda: now[0])
    return now


def add_endpoint(api: Client, admin: dict[str, str], url: str, **fields) -> dict:
    response = api.post("/webhooks", {"url": url, **fields}, content_type="application/json", headers=admin)
    assert response.status_code == 201, response.content
    return response.json()


def verified(endpoint: dict, received) -> dict:
    """The body the receiving library verifies with the endpoint's secret (it raises otherwise)."""
    return Webhook(endpoint["secret"]).verify(received.body, received.headers)


# --- Endpoints ---------------------------------------------------------------------------------


def test_an_endpoint_is_created_with_its_secret_answered_once(api, admin, settings):
    created = add_endpoint(api, admin, "https://hooks.example.com/imagery", events=["image.created"])
    assert created["secret"].startswith("whsec_")
    assert 24 <= len(base64.b64decode(created["secret"].removeprefix("whsec_"))) <= 32
    assert (created["url"], created["events"], created["enabled"]) == (
        "https://hooks.example.com/imagery",
        ["image.created"],
        True,
    )
    listed = api.get("/webhooks", headers=admin).json()
    assert [e["id"] for e in listed] == [created["id"]]
    assert "secret" not in listed[0]
    assert "secret" not in api.get(f"/webhooks/{created['id']}", headers=admin).json()


def test_webhooks_are_managed_with_admin_keys_only(api, settings):
    plain = {"Authorization": f"Bearer {create_key('uploader')}"}
    body = {"url": "https://hooks.example.com/"}
    assert_problem(api.post("/webhooks", body, content_type="application/json"), 401)
    assert_problem(api.get("/webhooks"), 401)
    assert_problem(api.post("/webhooks", body, content_type="application/json", headers=plain), 403)
    assert_problem(api.get("/webhooks", headers=plain), 403)
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "https://hooks.example.com/", "events": ["image.exploded"]}, "events.0"),
        ({"url": "http://hooks.example.com/"}, "url"),
        ({"url": "https://user:pw@hooks.example.com/"}, "url"),
        ({"url": "https://127.0.0.1/"}, "url"),
        ({"url": "https://[::ffff:169.254.169.254]/"}, "url"),
        ({"url": "https://localhost:8000/"}, "url"),
        ({"url": "ftp://hooks.example.com/"}, "url"),
        ({"url": "https:///nohost"}, "url"),
        ({}, "url"),
    ],
)
def test_a_bad_endpoint_is_a_400_naming_the_field_and_nothing_is_made(api, admin, body, field):
    response = api.post("/webhooks", body, content_type="application/json", headers=admin)
    assert_problem(response, 400, field=field)
    assert not WebhookEndpoint.objects.exists()


def test_an_endpoint_is_changed_and_deleted(api, admin):
    created = add_endpoint(api, admin, "https://hooks.example.com/a")
    url = f"/webhooks/{created['id']}"
    changed = api.patch(
        url, {"events": ["image.deleted"], "enabled": False}, content_type="application/json", headers=admin
    )
    assert changed.status_code == 200
    assert (changed.json()["events"], changed.json()["enabled"]) == (["image.deleted"], False)
    assert_problem(
        api.patch(url, {"url": "http://x.example/"}, content_type="application/json", headers=admin), 400
    )
    assert api.delete(url, headers=admin).status_code == 204
    assert_problem(api.get(url, headers=admin), 404)
    assert_problem(api.get("/webhooks/99999999999999999999999", headers=admin), 404)


def test_the_webhook_command_adds_lists_and_removes(db, capsys):
    call_command("webhook", "add", "https://hooks.example.com/c", "--events", "image.created")
    endpoint_id, secret = capsys.readouterr().out.strip().split("\t")
    assert secret.startswith("whsec_")
    call_command("webhook", "list")
    assert (
        capsys.readouterr().out.strip()
        == f"{endpoint_id}\tenabled\timage.created\thttps://hooks.example.com/c"
    )
    call_command("webhook", "remove", endpoint_id)
    assert not WebhookEndpoint.objects.exists()
    with pytest.raises(CommandError, match="https"):
        call_command("webhook", "add", "http://hooks.example.com/")
    with pytest.raises(CommandError, match="No endpoint"):
        call_command("webhook", "remove", endpoint_id)
    assert not WebhookEndpoint.objects.exists()


# --- Events from images, delivered and signed ------------------------------------------------


def test_an_upload_edit_and_delete_are_delivered_signed_and_verified_by_the_receiving_library(
    api, admin, receiver, django_capture_on_commit_callbacks
):
    endpoint = add_endpoint(api, admin, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/images", png_upload(), headers=admin).json()
    with django_capture_on_commit_callbacks(execute=True):
        api.patch(
            f"/images/{created['id']}", {"title": "renamed"}, content_type="application/json", headers=admin
        )
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/images/{created['id']}", headers=admin).status_code == 204
    bodies = [verified(endpoint, r) for r in receiver.requests]
    assert [b["type"] for b in bodies] == ["image.created", "image.updated", "image.deleted"]
    key_prefix = admin["Authorization"].split()[1].split(".")[0]
    assert all(b["data"]["key"] == {"prefix": key_prefix, "name": "ops"} for b in bodies)
    # The object as the API answers it, its URLs as paths (an event has no request, so no host).
    assert bodies[0]["data"]["object"] == json.loads(json.dumps(created).replace("http://testserver", ""))
    assert bodies[1]["data"]["object"]["title"] == "renamed"
    assert bodies[2]["data"] == {"id": created["id"], "key": {"prefix": key_prefix, "name": "ops"}}
    for body, received in zip(bodies, receiver.requests, strict=True):
        assert received.headers["webhook-id"] == body["id"]
        assert body["id"].startswith("evt_")
        assert received.headers["Content-Type"] == "application/json"
    assert Delivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 3


def test_a_forged_or_other_secrets_signature_is_refused_by_the_receiving_library(
    api, admin, receiver, django_capture_on_commit_callbacks
):
    endpoint = add_endpoint(api, admin, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        api.post("/images", png_upload())
    received = receiver.requests[0]
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(other).verify(received.body, received.headers)
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(endpoint["secret"]).verify(received.body.replace(b"image", b"imagf"), received.headers)


def test_endpoints_get_only_the_kinds_they_subscribe_to_and_disabled_ones_nothing(
    api, admin, local_targets, django_capture_on_commit_callbacks
):
    deletes, disabled, everything = Receiver(), Receiver(), Receiver()
    try:
        add_endpoint(api, admin, deletes.url, events=["image.deleted"])
        add_endpoint(api, admin, disabled.url, enabled=False)
        add_endpoint(api, admin, everything.url, events=[])
        with django_capture_on_commit_callbacks(execute=True):
            image_id = api.post("/images", png_upload()).json()["id"]
        with django_capture_on_commit_callbacks(execute=True):
            api.delete(f"/images/{image_id}")
        assert [json.loads(r.body)["type"] for r in deletes.requests] == ["image.deleted"]
        assert disabled.requests == []
        assert len(everything.requests) == 2
    finally:
        for server in (deletes, disabled, everything):
            server.stop()


def test_no_endpoint_no_event_is_stored(api):
    api.post("/images", png_upload())
    assert not Event.objects.exists()


# --- The outbox --------------------------------------------------------------------------------


def test_a_change_rolled_back_after_its_event_was_written_sends_nothing(
    api, admin, receiver, django_capture_on_commit_callbacks
):
    add_endpoint(api, admin, receiver.url)
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        events.record("image.deleted", {"id": 1, "key": None})
        assert Event.objects.count() == 1
        raise RuntimeError("the change failed after its event was written")
    assert callbacks == []
    assert not Event.objects.exists()
    assert not Delivery.objects.exists()
    assert receiver.requests == []


def test_an_upload_that_fails_inside_its_transaction_sends_nothing(
    api, admin, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    from images import notifications

    add_endpoint(api, admin, receiver.url)
    real = notifications.image_created

    def recorded_then_failed(**kwargs):
        real(**kwargs)
        raise ConnectionError("the database went away before the commit")

    monkeypatch.setattr(notifications, "image_created", recorded_then_failed)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ConnectionError):
        api.post("/images", png_upload())
    assert not Event.objects.exists()
    assert receiver.requests == []


def test_the_relay_delivers_an_event_whose_enqueue_was_lost(
    api, admin, receiver, frozen, monkeypatch, settings, django_capture_on_commit_callbacks
):
    add_endpoint(api, admin, receiver.url)

    def lost(*args, **kwargs):
        raise ConnectionError("the process died between the commit and the enqueue")

    monkeypatch.setattr(tasks, "wake", lost)
    with django_capture_on_commit_callbacks(execute=True):
        api.post("/images", png_upload())
    assert receiver.requests == []
    monkeypatch.undo()
    monkeypatch.setattr(clock, "now", lambda: frozen[0])
    # Not overdue yet: a worker may still be about to run it.
    frozen[0] += dt.timedelta(seconds=settings.WEBHOOK_RELAY_SECONDS - 1)
    assert deliveries.relay() == 0
    frozen[0] += dt.timedelta(seconds=2)
    assert deliveries.relay() == 1
    assert [json.loads(r.body)["type"] for r in receiver.requests] == ["image.created"]
    assert deliveries.relay() == 0
    call_command("deliver_webhooks", stdout=io.StringIO())
    assert len(receiver.requests) == 1


def test_old_events_without_pending_deliveries_are_pruned(api, admin, receiver, frozen, monkeypatch):
    add_endpoint(api, admin, receiver.url)
    monkeypatch.setattr(tasks, "wake", lambda ids: None)
    for payload in ({"id": 1}, {"id": 2}):
        events.record("image.deleted", payload)
    old_delivered, old_pending = Delivery.objects.order_by("pk")
    Delivery.objects.filter(pk=old_delivered.pk).update(status="delivered")
    # Still being retried (its next try is later: the relay leaves it alone).
    Delivery.objects.filter(pk=old_pending.pk).update(next_attempt_at=frozen[0] + dt.timedelta(days=9))
    frozen[0] += dt.timedelta(days=8)
    events.record("image.deleted", {"id": 3})
    Delivery.objects.exclude(pk__in=[old_delivered.pk, old_pending.pk]).update(status="delivered")
    call_command("deliver_webhooks", "--prune-days", "7", stdout=io.StringIO())
    assert sorted(e.payload["id"] for e in Event.objects.all()) == [2, 3]
    assert Delivery.objects.count() == 2


# --- Delivery ------------------------------------------------------------------------------------


def _pending(api, admin, url: str, django_capture_on_commit_callbacks) -> Delivery:
    """One pending delivery to `url`, recorded but not yet tried."""
    add_endpoint(api, admin, url)
    with django_capture_on_commit_callbacks(execute=False):
        events.record("image.deleted", {"id": 7, "key": None})
    return Delivery.objects.get()


def test_a_task_run_twice_posts_once(api, admin, receiver, django_capture_on_commit_callbacks):
    delivery = _pending(api, admin, receiver.url, django_capture_on_commit_callbacks)
    assert tasks.deliver_webhooks.call([delivery.pk]) == 1
    assert tasks.deliver_webhooks.call([delivery.pk]) == 0
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("delivered", 1, 204)


def test_a_delivery_claimed_by_another_worker_is_not_sent(
    api, admin, receiver, frozen, django_capture_on_commit_callbacks
):
    delivery = _pending(api, admin, receiver.url, django_capture_on_commit_callbacks)
    Delivery.objects.filter(pk=delivery.pk).update(claimed_until=frozen[0] + dt.timedelta(seconds=10))
    assert deliveries.attempt(delivery.pk) is None
    assert receiver.requests == []
    frozen[0] += dt.timedelta(seconds=11)  # that worker died: its claim lapses
    assert deliveries.attempt(delivery.pk).delivered


def test_a_dead_workers_claim_lapses_after_the_configured_lease(
    api, admin, receiver, frozen, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_CLAIM_LEASE_SECONDS = 15
    delivery = _pending(api, admin, receiver.url, django_capture_on_commit_callbacks)
    # A worker claims the delivery and dies before sending it.
    _, lease, claimed = deliveries._claim(Q(pk=delivery.pk), limit=1)
    assert [d.pk for d in claimed] == [delivery.pk]
    held = 15 + settings.WEBHOOK_CONNECT_TIMEOUT + settings.WEBHOOK_READ_TIMEOUT
    assert lease == frozen[0] + dt.timedelta(seconds=held)
    frozen[0] += dt.timedelta(seconds=held - 1)
    assert deliveries.attempt(delivery.pk) is None
    assert receiver.requests == []
    frozen[0] += dt.timedelta(seconds=2)  # 15 s (not 60) and one try's timeouts later, it is anyone's
    assert deliveries.attempt(delivery.pk).delivered
    assert len(receiver.requests) == 1


def test_failures_are_retried_with_growing_jittered_delays_then_delivered(
    api, admin, receiver, frozen, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 5
    delivery = _pending(api, admin, receiver.url, django_capture_on_commit_callbacks)
    receiver.status = 500
    receiver.answer = b"x" * 1000
    for attempt in (1, 2, 3):
        answer = deliveries.attempt(delivery.pk)
        assert answer is not None and not answer.delivered
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.response_status) == ("pending", attempt, 500)
        assert delivery.error == "answered 500"
        assert delivery.response_body == "x" * 256  # a prefix only
        wait = delivery.next_attempt_at - frozen[0]
        assert dt.timedelta(0) <= wait <= dt.timedelta(seconds=5 * 2 ** (attempt - 1))
        # Not due yet: nothing is sent before its time.
        frozen[0] = delivery.next_attempt_at - dt.timedelta(microseconds=1)
        if wait > dt.timedelta(microseconds=1):
            assert deliveries.attempt(delivery.pk) is None
        frozen[0] = delivery.next_attempt_at
    receiver.status = 200
    assert deliveries.attempt(delivery.pk).delivered
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("delivered", 4, 200)
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert ids == {delivery.event_id}  # the same id on every try


@pytest.mark.parametrize("status", [200, 500])
def test_an_answer_holding_nul_bytes_is_recorded(
    api, admin, receiver, frozen, django_capture_on_commit_callbacks, status
):
    """A binary answer (a NUL byte: gzip, an image, a protobuf) is recorded like any other: PostgreSQL's text
    holds no NUL, and a delivery whose outcome cannot be saved would be sent again every lease."""
    delivery = _pending(api, admin, receiver.url, django_capture_on_commit_callbacks)
    receiver.status = status
    receiver.answer = b"ok\x00\x1f\x8b binary"
    answer = deliveries.attempt(delivery.pk)
    assert answer is not None and answer.delivered == (status == 200)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered" if status == 200 else "pending", 1)
    assert delivery.response_body.startswith("ok\ufffd")
    assert "\x00" not in delivery.response_body
    assert deliveries.attempt(delivery.pk) is None  # not claimable again: nothing is sent twice


def test_a_delivery_fails_after_the_retry_window(
    api, admin, receiver, frozen, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_RETRY_HOURS = 1
    delivery = _pending(api, admin, receiver.url, django_capture_on_commit_callbacks)
    receiver.status = 503
    frozen[0] += dt.timedelta(minutes=59, seconds=59)
    settings.WEBHOOK_RETRY_BASE_SECONDS = 3600  # any wait now ends past the window, but for a zero draw
    while deliveries.attempt(delivery.pk) is not None:
        delivery.refresh_from_db()
        if delivery.status != "pending":
            break
        frozen[0] = delivery.next_attempt_at
    delivery.refresh_from_db()
    assert delivery.status == "failed"


def test_backoff_doubles_from_the_base_up_to_the_cap(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 5
    settings.WEBHOOK_RETRY_MAX_SECONDS = 3600

    class Highest:
        def uniform(self, low: float, high: float) -> float:
            return high

    ceilings = [retries.backoff(n, rng=Highest()).total_seconds() for n in range(1, 13)]
    assert ceilings == [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
    assert retries.backoff(10**6, rng=Highest()).total_seconds() == 3600
    draws = {retries.backoff(4) for _ in range(50)}
    assert len(draws) > 1 and all(dt.timedelta(0) <= d <= dt.timedelta(seconds=40) for d in draws)


def test_410_gone_fails_the_delivery_and_disables_the_endpoint(
    api, admin, receiver, django_capture_on_commit_callbacks
):
    receiver.status = 410
    delivery = _pending(api, admin, receiver.url, django_capture_on_commit_callbacks)
    assert not deliveries.attempt(delivery.pk).delivered
    delivery.refresh_from_db()
    assert (delivery.status, delivery.response_status) == ("failed", 410)
    assert api.get(f"/webhooks/{delivery.endpoint_id}", headers=admin).json()["enabled"] is False
    with django_capture_on_commit_callbacks(execute=True):
        api.post("/images", png_upload())
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(("status", "outcome"), [(500, "pending"), (200, "delivered")])
def test_an_answer_dripped_for_longer_than_the_read_timeout_is_cut_and_its_status_decides(
    api, admin, receiver, settings, django_capture_on_commit_callbacks, status, outcome
):
    settings.WEBHOOK_READ_TIMEOUT = 0.3
    receiver.status, receiver.answer, receiver.drip = status, b"ok" * 500, 0.05  # 50 s if read to the end
    delivery = _pending(api, admin, receiver.url, django_capture_on_commit_callbacks)
    answer = deliveries.attempt(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.response_status) == (outcome, status)
    if outcome == "pending":
        assert "longer than WEBHOOK_READ_TIMEOUT" in answer.error


def test_a_redirect_is_a_failure_and_is_not_followed(
    api, admin, receiver, django_capture_on_commit_callbacks
):
    elsewhere = Receiver()
    try:
        receiver.status, receiver.location = 302, elsewhere.url
        delivery = _pending(api, admin, receiver.url, django_capture_on_commit_callbacks)
        assert not deliveries.attempt(delivery.pk).delivered
        delivery.refresh_from_db()
        assert (delivery.status, delivery.response_status) == ("pending", 302)
        assert "not followed" in delivery.error
        assert elsewhere.requests == []
    finally:
        elsewhere.stop()


def test_an_unreachable_receiver_is_a_failure_with_its_reason(
    api, admin, receiver, django_capture_on_commit_callbacks
):
    url = receiver.url
    receiver.stop()
    delivery = _pending(api, admin, url, django_capture_on_commit_callbacks)
    assert not deliveries.attempt(delivery.pk).delivered
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.response_status is None
    assert delivery.error


def test_an_unreachable_endpoint_is_tried_once_per_batch_and_holds_up_no_other(
    api, admin, receiver, frozen, monkeypatch
):
    dead = Receiver()
    dead_url = dead.url
    dead.stop()
    add_endpoint(api, admin, dead_url)
    add_endpoint(api, admin, receiver.url)
    monkeypatch.setattr(tasks, "wake", lambda ids: None)
    for i in range(5):
        events.record("image.deleted", {"id": i, "key": None})
    tries = []
    real = sending.post
    monkeypatch.setattr(sending, "post", lambda url, **kw: tries.append(url) or real(url, **kw))
    assert deliveries.drain(seconds=60) == (5, False)
    assert tries.count(dead_url) == 1 and tries.count(receiver.url) == 5
    failed = Delivery.objects.filter(endpoint__url=dead_url)
    assert [(d.status, d.attempts) for d in failed] == [("pending", 1)] * 5
    assert all(d.error == failed[0].error != "" for d in failed)
    assert all(d.next_attempt_at > frozen[0] for d in failed)  # each retried later, on its own draw


# --- Deliveries through the API ---------------------------------------------------------------


def test_deliveries_are_listed_and_one_is_sent_again(
    api, admin, receiver, django_capture_on_commit_callbacks
):
    endpoint = add_endpoint(api, admin, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        image_id = api.post("/images", png_upload()).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        api.delete(f"/images/{image_id}")
    url = f"/webhooks/{endpoint['id']}/deliveries"
    page = api.get(url, headers=admin).json()
    assert page["count"] == 2 and page["previous"] is None and page["next"] is None
    newest = page["results"][0]
    assert newest["event_type"] == "image.deleted"
    assert (newest["status"], newest["attempts"], newest["response_status"]) == ("delivered", 1, 204)
    assert newest["next_attempt_at"] is None and newest["last_attempt_at"]
    assert newest["event_id"] == receiver.requests[1].headers["webhook-id"]
    first = api.get(url, {"page_size": 1}, headers=admin).json()
    assert [d["id"] for d in first["results"]] == [newest["id"]] and first["next"]
    with django_capture_on_commit_callbacks(execute=True):
        retried = api.post(f"{url}/{newest['id']}/retry", headers=admin)
    assert retried.status_code == 202
    assert len(receiver.requests) == 3
    assert receiver.requests[2].headers["webhook-id"] == newest["event_id"]
    again = api.get(url, headers=admin).json()["results"][0]
    assert (again["status"], again["attempts"]) == ("delivered", 2)
    assert_problem(api.post(f"{url}/99999/retry", headers=admin), 404)
    huge = 10**30  # past any database integer: a 404 like any id that names nothing
    assert_problem(api.post(f"/webhooks/{huge}/deliveries/{newest['id']}/retry", headers=admin), 404)
    assert_problem(api.post(f"{url}/{huge}/retry", headers=admin), 404)
    assert_problem(api.get(f"/webhooks/{huge}/deliveries", headers=admin), 404)
    assert_problem(api.get(f"/webhooks/{endpoint['id'] + 1}/deliveries", headers=admin), 404)
    assert_problem(api.get(url), 401)


# --- The database backend and its worker, and RQ's ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_database_queues_worker_delivers_after_the_commit(database_queue, receiver, monkeypatch):
    # Woken at once (not WAKE_SECONDS later), so the worker's one pass finds the drain task due.
    monkeypatch.setattr(tasks, "WAKE_SECONDS", 0)
    monkeypatch.setattr(tasks, "_next_wake", 0.0)
    endpoint = WebhookEndpoint.objects.create(url=receiver.url)
    with transaction.atomic():
        events.record("image.deleted", {"id": 3, "key": None})
        # Enqueued only once this commits: no task yet, even in this transaction's own view.
        assert not DBTaskResult.objects.exists()
    assert DBTaskResult.objects.count() == 1
    run_worker()
    assert len(receiver.requests) == 1
    body = Webhook(endpoint.secret).verify(receiver.requests[0].body, receiver.requests[0].headers)
    assert body["data"] == {"id": 3, "key": None}
    assert Delivery.objects.get().status == "delivered"
    # The drain claims what is due, so a second drain (a duplicate, another worker) sends nothing again.
    assert tasks.drain_webhooks.call() == 0
    assert len(receiver.requests) == 1


RQ_REDIS = "redis://127.0.0.1:6379/13"  # a database of its own on the shared Redis


@pytest.fixture
def rq_queue(settings, monkeypatch) -> Iterator[object]:
    """Tasks go to an RQ queue in Redis (TASK_BACKEND=rq); skipped when no Redis answers."""
    import django_rq
    import redis

    connection = redis.Redis.from_url(RQ_REDIS)
    try:
        connection.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"no Redis at {RQ_REDIS}")
    connection.flushdb()
    settings.RQ_QUEUES = {"default": {"URL": RQ_REDIS, "DEFAULT_TIMEOUT": 60}}
    settings.TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    monkeypatch.setattr(tasks, "WAKE_SECONDS", 0)
    monkeypatch.setattr(tasks, "_next_wake", 0.0)
    yield django_rq.get_queue("default")
    connection.flushdb()


@pytest.mark.django_db(transaction=True)
def test_the_rq_worker_delivers_after_the_commit(rq_queue, receiver):
    from django_tasks_rq.backend import Job
    from rq import SimpleWorker

    def run_rq_worker() -> None:
        # In this process (SimpleWorker: no fork), so the job sees this test's database; the scheduler
        # moves the deferred wake-up onto the queue once it is due.
        worker = SimpleWorker([rq_queue], connection=rq_queue.connection, job_class=Job)
        worker.work(burst=True, with_scheduler=True)

    endpoint = WebhookEndpoint.objects.create(url=receiver.url)
    with transaction.atomic():
        events.record("image.deleted", {"id": 4, "key": None})
        assert rq_queue.count == 0 and not rq_queue.scheduled_job_registry.get_job_ids()
    run_rq_worker()
    assert len(receiver.requests) == 1
    body = Webhook(endpoint.secret).verify(receiver.requests[0].body, receiver.requests[0].headers)
    assert body["data"] == {"id": 4, "key": None}
    assert Delivery.objects.get().status == "delivered"


@pytest.mark.django_db(transaction=True)
def test_workers_draining_at_once_send_each_event_once(receiver, monkeypatch):
    """Claims are conditional updates: of workers after the same rows, each row goes to one of them."""
    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("threads sharing SQLite's in-memory test database would wait on its one lock")
    WebhookEndpoint.objects.create(url=receiver.url)
    monkeypatch.setattr(tasks, "wake", lambda ids: None)  # the workers below find them
    with transaction.atomic():
        for i in range(120):
            events.record("image.deleted", {"id": i, "key": None})
    results: list[int] = []

    def worker() -> None:
        try:
            results.append(deliveries.drain(seconds=60)[0])
        finally:
            connections.close_all()

    import threading

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(sent) == len(set(sent)) == 120
    assert sum(results) == 120
    assert Delivery.objects.filter(status="delivered").count() == 120
