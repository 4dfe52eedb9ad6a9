"""Conditional GET: an ETag on every representation a view builds, and 304 Not Modified when it matches.

The ETag is a hash of the response data before rendering (a few microseconds for a page), so it changes
whenever anything in the body would, and a matching `If-None-Match` skips rendering and the transfer.
"""

from __future__ import annotations

import hashlib

from django.http import HttpResponseNotModified
from rest_framework.request import Request
from rest_framework.response import Response


def etag_of(data: object) -> str:
    """A strong ETag for response data made of JSON values (dicts, lists, strings, numbers)."""
    return '"' + hashlib.blake2b(repr(data).encode(), digest_size=16).hexdigest() + '"'


def conditional(
    request: Request, response: Response, *, etag: str | None = None
) -> Response | HttpResponseNotModified:
    """Tag `response` (with `etag`, by default a hash of its data), or answer 304 when the request's
    `If-None-Match` names that tag."""
    etag = etag if etag is not None else etag_of(response.data)
    if if_none_match_matches(request.headers.get("If-None-Match", ""), etag):
        not_modified = HttpResponseNotModified()
        not_modified["ETag"] = etag
        return not_modified
    response["ETag"] = etag
    return response


def if_none_match_matches(if_none_match: str, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (or `*`)."""
    # RFC 9110: If-None-Match uses the weak comparison, so W/"x" matches "x".
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in tags or "*" in tags


def if_match_matches(if_match: str, etag: str) -> bool:
    """Whether an If-Match header names `etag` (or is `*`)."""
    # RFC 9110: If-Match uses the strong comparison, so a weak tag (W/"x") never matches.
    tags = {tag.strip() for tag in if_match.split(",")}
    return etag in tags or "*" in tags
