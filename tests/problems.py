"""The one assertion for error answers: an RFC 9457 problem with the right status (and field, code)."""

from __future__ import annotations

import json
from typing import Any

PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}


def assert_problem(
    response: Any, status: int, code: str | None = None, *, field: str | None = None
) -> dict[str, Any]:
    """Assert `response` is a problem+json `status`; `code` is the problem's or one of its field errors'.

    503s must say when to retry. Returns the body.
    """
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = json.loads(response.content)
    assert body.keys() >= PROBLEM_FIELDS
    assert body["status"] == status
    assert all(isinstance(body[key], str) and body[key] for key in PROBLEM_FIELDS - {"status"})
    errors = body.get("errors", [])
    if field is not None:
        assert field in [e["field"] for e in errors], body
    if code is not None:
        assert code in [body["code"], *[e["code"] for e in errors]], body
    if status == 503:
        assert int(response["Retry-After"]) > 0
    return body
