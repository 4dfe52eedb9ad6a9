"""The chaos rig's webhook side (bench/chaos): its receiver verifies what it is sent with `standardwebhooks`
and its checks fail when an event is missing, doubled or sent for a change that failed.

The rig itself runs in `make chaos-short`; these keep its judge honest without a stack.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import urllib.error
import urllib.request

import pytest
from standardwebhooks.webhooks import Webhook

from bench.chaos.event_checks import events_match_changes
from bench.chaos.receiver import Received, Receiver

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@pytest.fixture
def receiver():
    receiver = Receiver()
    receiver.secret = SECRET
    receiver.start()
    yield receiver
    receiver.stop()


def send(receiver: Receiver, payload: dict, *, secret: str = SECRET, msg_id: str = "evt_1") -> int:
    body = json.dumps(payload)
    now = dt.datetime.now(tz=dt.UTC)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body),
        "Content-Type": "application/json",
    }
    request = urllib.request.Request(  # noqa: S310  # the receiver on loopback
        receiver.url, data=body.encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310  # loopback
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_receiver_records_a_verified_delivery_and_refuses_a_forged_one(receiver):
    created = {"type": "image.created", "data": {"object": {"id": 7, "title": "cliff"}}}
    assert send(receiver, created) == 204
    other = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    assert send(receiver, created, secret=other, msg_id="evt_2") == 400

    [got] = receiver.snapshot()
    assert (got.webhook_id, got.type, got.object_id, got.title) == ("evt_1", "image.created", 7, "cliff")
    assert receiver.bad_signatures == 1


def test_receiver_down_refuses_then_listens_again_on_its_port(receiver):
    receiver.stop()
    with pytest.raises(OSError):
        send(receiver, {"type": "image.deleted", "data": {"id": 3}})
    receiver.start()
    assert send(receiver, {"type": "image.deleted", "data": {"id": 3}}) == 204
    assert [r.object_id for r in receiver.snapshot()] == [3]


def event(msg_id: str, kind: str, object_id: int, title: str | None = None) -> Received:
    return Received(msg_id, kind, object_id, title, 0.0)


UPLOADS = [
    {"method": "POST", "status": 201, "id": 1, "title": "a"},
    {"method": "POST", "status": 503, "title": "b"},
    {"method": "POST", "status": None, "title": "c"},
]
PATCHES = [{"method": "PATCH", "status": 200, "id": 1, "title": "a2"}]
DELETES = [{"method": "DELETE", "status": 204, "id": 1}]
GOOD = [
    event("e1", "image.created", 1, "a"),
    event("e1", "image.created", 1, "a"),  # delivered twice: one event id
    event("e2", "image.updated", 1, "a2"),
    event("e3", "image.deleted", 1),
]


def judge(received: list[Received]) -> tuple[bool, bool]:
    one, none = events_match_changes(received, uploads=UPLOADS, patches=PATCHES, deletes=DELETES)
    return one.ok, none.ok


def test_each_committed_change_with_one_event_id_passes():
    assert judge(GOOD) == (True, True)
    # A cut-off upload may have been committed: its one event is explained.
    assert judge([*GOOD, event("e4", "image.created", 2, "c")]) == (True, True)


def test_a_missing_or_second_event_id_fails():
    assert judge(GOOD[:2] + GOOD[3:])[0] is False  # the edit's event never came
    assert judge([*GOOD, event("e5", "image.deleted", 1)])[0] is False  # two ids for one delete


def test_an_event_for_a_failed_upload_or_no_change_fails():
    assert judge([*GOOD, event("e6", "image.created", 9, "b")])[1] is False  # answered 503
    assert judge([*GOOD, event("e7", "image.updated", 1, "never set")])[1] is False
