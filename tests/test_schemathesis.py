"""Schemathesis drives every operation of our own OpenAPI schema with all its checks, negative data too: no
5xx, every response matches the schema, what the schema allows is accepted and what it forbids refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import negative_data_rejection
from schemathesis.transport.requests import REQUESTS_TRANSPORT
from schemathesis.transport.serialization import Binary, serialize_binary

# A schema cannot say which bytes decode as an image: "any binary" that fits the schema may be a 400
# (`invalid_image`), 413 (too many pixels) or 415 (not an image). So for uploads, and for that check only,
# those statuses count as accepting the request; `upload_rejects_only_the_image` keeps the 400 narrow.
# Nor which URLs a webhook may be sent to (https, a public host): `webhook_rejects_only_the_url` likewise.
_URL_REFUSED = {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "401", "403", "404", "429"]}}
TUS_REFUSALS = ["400", "404", "409", "410", "411", "412", "413", "415", "429", "460"]
# Likewise `metadata` (upload and edit): OpenAPI 3.0 cannot say which keys it takes (no `propertyNames`)
# nor its size in UTF-8 bytes, so a 400 naming only `metadata` counts as accepting an edit too
# (`edit_rejects_only_the_metadata`).
CONFIG = SchemathesisConfig.from_dict(
    {
        "operations": [
            {
                "include-operation-id": "images_create",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "413", "415", "429"]
                    }
                },
            },
            {"include-operation-id": "webhooks_create", "checks": _URL_REFUSED},
            {"include-operation-id": "webhooks_update", "checks": _URL_REFUSED},
            {
                # An upload URL made up by a generator names no URL (404); one made up well enough is used
                # or expired (409, 410).
                "include-operation-id": "uploads_upload",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "400", "401", "404", "409", "410", "413", "415", "429"]
                    }
                },
            },
            {
                # tus on an upload URL: as the upload, and tus answers a bad Tus-Resumable (even a missing
                # one) with 412, a chunk without its length with 411.
                "include-operation-id": "uploads_tus_append",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "400", "404", "409", "410", "412", "413", "415", "429"]
                    },
                    "negative_data_rejection": {"expected-statuses": TUS_REFUSALS},
                    "missing_required_header": {"expected-statuses": TUS_REFUSALS},
                },
            },
            {
                "include-operation-id": "uploads_tus_terminate",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "404", "409", "410", "412", "429"]
                    },
                    "negative_data_rejection": {"expected-statuses": TUS_REFUSALS},
                    "missing_required_header": {"expected-statuses": TUS_REFUSALS},
                },
            },
            {
                "include-operation-id": "images_update",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "412", "429"]
                    }
                },
            },
        ]
    }
)


@REQUESTS_TRANSPORT.serializer("application/offset+octet-stream")
def offset_stream(ctx: object, value: object) -> dict[str, object]:
    """A tus chunk (PATCH on an upload URL): its bytes as they are."""
    return {"data": serialize_binary(value)}


schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application(), config=CONFIG)


@schemathesis.check
def upload_rejects_only_the_image(
    ctx: object, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    """Schema-valid upload data refused with a 400 is refused for its image's bytes, never another field."""
    if (
        case.operation.label != "POST /images"
        or case.meta is None
        or not case.meta.generation.mode.is_positive
    ):
        return
    if response.status_code == 400:
        fields = {error["field"] for error in json.loads(response.content)["errors"]}
        # `metadata` is the JSON text of an object (images/metadata.py): which text is one, with keys and a
        # size in bytes the rule allows, no schema can say either.
        assert fields and fields <= {"image", "metadata"}, f"schema-valid fields refused: {fields}"


@schemathesis.check
def edit_rejects_only_the_metadata(
    ctx: object, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    """Schema-valid edits refused with a 400 are refused for their metadata (its keys, its size), never
    another field."""
    if (
        case.operation.label != "PATCH /images/{image_id}"
        or case.meta is None
        or not case.meta.generation.mode.is_positive
    ):
        return
    if response.status_code == 400:
        fields = {error["field"] for error in json.loads(response.content)["errors"]}
        assert fields == {"metadata"}, f"schema-valid fields refused: {fields}"


@schemathesis.check
def webhook_rejects_only_the_url(
    ctx: object, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    """Schema-valid webhook data refused with a 400 is refused for its URL (https, a public host)."""
    if (
        case.operation.label not in ("POST /webhooks", "PATCH /webhooks/{endpoint_id}")
        or case.meta is None
        or not case.meta.generation.mode.is_positive
    ):
        return
    if response.status_code == 400:
        fields = {error["field"] for error in json.loads(response.content)["errors"]}
        assert fields == {"url"}, f"schema-valid fields refused: {fields}"


@schemathesis.check
def negative_data_rejection_as_sent(
    ctx: object, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """Schemathesis's `negative_data_rejection`, judging an upload by the form as sent.

    A form sends every value as text (`true` for a boolean title, nothing for an empty list), and the check
    knows it, but it reads the form against the schema with the file part as generated, a `Binary` its
    validator cannot read (schemathesis 4.32): so it counts every such valid form as invalid data accepted.
    With the file as plain text for that judgement, the check holds every other field to the schema.
    """
    body = case.body
    if not isinstance(body, dict) or not any(isinstance(value, Binary) for value in body.values()):
        return negative_data_rejection(ctx, response, case)
    case.freeze_metadata()  # what was generated as invalid stays so
    case.body = {name: str(value) if isinstance(value, Binary) else value for name, value in body.items()}
    try:
        return negative_data_rejection(ctx, response, case)
    finally:
        case.body = body


def send(case: schemathesis.Case) -> schemathesis.Response:
    """The case as `requests` encodes it (a real client's bytes), answered by the app through Django's client.

    (Schemathesis's own WSGI transport encodes forms with Werkzeug, which writes an empty field so that
    Django cannot read it: `fit=` would reach the app as no `fit` at all.)
    """
    kwargs = REQUESTS_TRANSPORT.serialize_case(case, base_url="http://testserver")
    sent = requests.Request(
        **{
            key: kwargs[key]
            for key in ("method", "url", "headers", "params", "data", "files", "json")
            if key in kwargs
        }
    ).prepare()
    headers = {key: value for key, value in sent.headers.items() if key.lower() != "content-type"}
    if sent.path_url.startswith("/webhooks") and ADMIN_KEY:
        # Webhooks take admin keys only: without one every case would be a 401, and nothing past it tried.
        headers.setdefault("Authorization", f"Bearer {ADMIN_KEY[0]}")
    started = time.perf_counter()
    answer = Client().generic(
        sent.method or "GET",
        sent.path_url,
        data=sent.body or b"",
        content_type=sent.headers.get("Content-Type", ""),
        headers=headers,
    )
    return schemathesis.Response(
        status_code=answer.status_code,
        headers={key: [value] for key, value in answer.items()},
        content=answer.content,
        request=sent,
        elapsed=time.perf_counter() - started,
        verify=True,
    )


ADMIN_KEY: list[str] = []


@pytest.fixture(autouse=True)
def admin_key(db: None) -> Iterator[None]:
    """An admin key for the webhooks operations (`send` adds it to their requests)."""
    from rest_framework_api_key.models import APIKey

    from api.models import AdminKey

    api_key, key = APIKey.objects.create_key(name="schemathesis")
    AdminKey.objects.create(api_key=api_key)
    ADMIN_KEY[:] = [key]
    yield
    ADMIN_KEY.clear()


@pytest.fixture(autouse=True)
def keep_test_connection() -> Iterator[None]:
    """Checks that send requests of their own call the WSGI app directly, whose request signals would close
    the test's DB connection (and its transaction); Django's test client disconnects them the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    case.validate_response(
        send(case),
        excluded_checks=[negative_data_rejection],
        additional_checks=[
            negative_data_rejection_as_sent,
            upload_rejects_only_the_image,
            webhook_rejects_only_the_url,
            edit_rejects_only_the_metadata,
        ],
    )
