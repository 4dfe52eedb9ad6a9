"""List pagination: numbered pages by default, keyset (cursor) pages for clients that walk far.

`PageInputSerializer` parses the query parameters (a list's own serializer adds its filters); then one of
two functions makes the page, and `Page.body` answers it.

`numbered_page` (`page`, 1-based, and `page_size`, default 20, at most 100) answers
`{"count", "next", "previous", "results"}`. Counting is what makes numbered pages slow on big tables, so
the list's selector counts exactly only up to a cap; past it `count` is a lower bound and
`"count_exact": false` says so (the key is present only then). `next` and `previous` never depend on the
count: the page is fetched with one extra row, which tells whether another page follows.

`cursor_page` starts with `cursor=` (empty: the first page) and answers `{"next", "previous", "results"}`,
whose links carry opaque cursors. A cursor is a position in the list's total order (newest first, id as
the tie-break), so a page costs the same at any depth (an index range scan, no OFFSET) and walking `next`
sees every row that existed when the walk started exactly once, whatever is inserted meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.utils.urls import remove_query_param, replace_query_param

from api.params import WholeNumberField

PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# Ids, offsets and page numbers past this are not representable in the databases' 64-bit integers.
MAX_BIGINT = 2**63 - 1
# The lists' order, newest first: a timestamp and a unique integer tie-break, both descending. A paginated
# queryset must be ordered by them (and an index on both makes a cursor page a range scan).
ORDERING = ("created_at", "id")

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
# What `encode_cursor` writes: direction, microseconds since the epoch, id. ASCII digits only.
_CURSOR = re.compile(r"([np])(-?[0-9]{1,20})\.([0-9]{1,19})")


@dataclass(frozen=True)
class Position:
    """A place in the list: between the row (`created_at`, `id`) and its neighbour in `reverse`'s direction.

    Forward (`reverse=False`): the rows after it in list order (older). Reverse: the rows before (newer).
    """

    created_at: dt.datetime
    id: int
    reverse: bool = False


def encode_cursor(position: Position) -> str:
    """An opaque, URL-safe token; clients pass it back unchanged."""
    micros = (position.created_at - _EPOCH) // _MICROSECOND
    raw = f"{'p' if position.reverse else 'n'}{micros}.{position.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(token: str) -> Position:
    """The position a cursor stands for; ValueError for anything `encode_cursor` did not make."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("not base64") from exc
    match = _CURSOR.fullmatch(raw)
    if match is None:
        raise ValueError("malformed")
    direction, micros, image_id = match[1], int(match[2]), int(match[3])
    if not 0 < image_id <= MAX_BIGINT:
        raise ValueError("id out of range")
    try:
        created_at = _EPOCH + micros * _MICROSECOND
    except OverflowError as exc:
        raise ValueError("date out of range") from exc
    return Position(created_at=created_at, id=image_id, reverse=direction == "p")


# --- the query parameters ---------------------------------------------------------------------------


@extend_schema_field(OpenApiTypes.STR)
class CursorField(serializers.Field):
    """An opaque cursor, kept as sent: whether we made it is `cursor_position`'s question, answered with a
    404 (as for any address that points nowhere), not a 400 for some of its characters."""

    def to_internal_value(self, data: Any) -> str:
        return str(data)

    def to_representation(self, value: str) -> str:
        return value


class PageInputSerializer(serializers.Serializer):
    """The query parameters of a paginated list; a list's own serializer adds its filters.

    Give it `api.params.one_value_each(request.query_params, ...)`: then an empty `page=` is an invalid
    number, not an absent one, and an empty `cursor=` the first cursor page.
    """

    page = WholeNumberField(
        default=1,
        min_value=1,
        max_value=MAX_BIGINT,
        help_text="Page-number mode: the page to return, from 1. A page past the last is a 404.",
    )
    page_size = WholeNumberField(
        default=PAGE_SIZE,
        min_value=1,
        max_value=MAX_BIGINT,
        help_text=(
            f"Items per page, from 1 (default {PAGE_SIZE}); more than {MAX_PAGE_SIZE} is capped at "
            f"{MAX_PAGE_SIZE}. Both modes."
        ),
    )
    cursor = CursorField(
        required=False,
        help_text=(
            "Cursor (keyset) mode, for walking far: `cursor=` (empty) for the first page, then follow "
            "`next`/`previous`, whose cursors are opaque (one that does not decode is a 404). Every page "
            "costs the same at any depth, and a walk sees every image once even while images are added. "
            "The answer has no `count`; `page` is ignored."
        ),
    )

    def validate_page_size(self, size: int) -> int:
        return min(size, MAX_PAGE_SIZE)


# --- pages ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One page of a list: its rows and the links (and, numbered, the count) around them."""

    rows: list[Any]
    next: str | None
    previous: str | None
    count: int | None = None  # numbered pages only
    count_exact: bool = True  # False: `count` is a lower bound

    def body(self, results: Any) -> dict[str, Any]:
        """The answer, with `results` the serialized rows."""
        body: dict[str, Any] = {}
        if self.count is not None:
            body["count"] = self.count
            if not self.count_exact:
                body["count_exact"] = False
        body.update(next=self.next, previous=self.previous, results=results)
        return body


def page_offset(number: int, size: int) -> int:
    """Where page `number` starts; a 404 when its rows (and the one after) lie past any 64-bit offset."""
    offset = (number - 1) * size
    if offset >= MAX_BIGINT - size:
        raise NotFound("Invalid page.")
    return offset


def numbered_page(
    request: Request, rows: list[Any], *, number: int, size: int, count: int, exact: bool
) -> Page:
    """Page `number`, from the list's `rows[offset : offset + size + 1]` (one more than the page, which
    says whether another follows) and its `count` (a lower bound unless `exact`); past the last, a 404."""
    has_next = len(rows) > size
    rows = rows[:size]
    if number > 1 and not rows:
        raise NotFound("Invalid page.")
    offset = (number - 1) * size
    if not exact:
        if has_next:
            # Still a lower bound, but no lower than what this page has shown to exist.
            count = max(count, offset + size + 1)
        else:
            # The last page: now the count is known.
            count, exact = offset + len(rows), True
    url = request.build_absolute_uri()
    if number == 1:
        previous = None
    elif number == 2:
        previous = remove_query_param(url, "page")
    else:
        previous = replace_query_param(url, "page", number - 1)
    return Page(
        rows=rows,
        next=replace_query_param(url, "page", number + 1) if has_next else None,
        previous=previous,
        count=count,
        count_exact=exact,
    )


def cursor_position(token: str) -> Position | None:
    """The position a `cursor` parameter names: None for an empty one (the first page)."""
    if not token:
        return None
    try:
        return decode_cursor(token)
    except ValueError:
        # As DRF's CursorPagination does: a cursor we did not make points nowhere.
        raise NotFound("Invalid cursor.") from None


def cursor_page(request: Request, rows: QuerySet, *, position: Position | None, size: int) -> Page:
    """The page of `rows` (ordered by `ORDERING`, descending) past `position`, at most `size` long."""
    date_field, id_field = ORDERING
    if position is None:
        found = list(rows[: size + 1])
    elif not position.reverse:
        found = list(rows.filter(_beyond(position))[: size + 1])
    else:
        # Walk back: nearest first in ascending order, then put the page back in list order.
        ascending = rows.filter(_beyond(position)).order_by(date_field, id_field)
        found = list(ascending[: size + 1])
    more = len(found) > size
    found = found[:size]
    if position is not None and position.reverse:
        found.reverse()
        has_previous, has_next = more, True
    else:
        has_previous, has_next = position is not None, more
    url = request.build_absolute_uri()
    return Page(
        rows=found,
        next=_cursor_link(url, found[-1], reverse=False) if found and has_next else None,
        previous=_cursor_link(url, found[0], reverse=True) if found and has_previous else None,
    )


def _beyond(position: Position) -> Q:
    """Rows past `position` in its direction, as a range the (created_at, id) index serves.

    `created_at <= c AND (created_at < c OR id < i)`: the first term bounds the index scan; the second
    only sorts out rows that share the timestamp.
    """
    date_field, id_field = ORDERING
    op = "gt" if position.reverse else "lt"
    edge = "gte" if position.reverse else "lte"
    return Q(**{f"{date_field}__{edge}": position.created_at}) & (
        Q(**{f"{date_field}__{op}": position.created_at}) | Q(**{f"{id_field}__{op}": position.id})
    )


def _cursor_link(url: str, row: Any, *, reverse: bool) -> str:
    date_field, id_field = ORDERING
    position = Position(getattr(row, date_field), getattr(row, id_field), reverse=reverse)
    return replace_query_param(url, "cursor", encode_cursor(position))
