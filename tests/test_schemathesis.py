"""Schemathesis drives every operation of our own OpenAPI schema: no 5xx, and every response matches it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


@pytest.fixture(autouse=True)
def keep_test_connection() -> Iterator[None]:
    """Calls go straight to the WSGI app, whose request signals would close the test's DB connection
    (and its transaction); Django's test client disconnects them the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    # Every response must be documented and match its schema, and nothing may answer 5xx. Left out: a
    # schema cannot say which bytes are a decodable image, so "any binary" is not a valid upload; and like
    # Django, we let a repeated query parameter count once and an empty form field count as absent.
    case.call_and_validate(excluded_checks=[negative_data_rejection, positive_data_acceptance])
