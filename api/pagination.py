"""List pagination: numbered pages by default, keyset (cursor) pages for clients that walk far.

Page-number mode (`page`, 1-based, and `page_size`, default 20, at most 100) answers
`{"count", "next", "previous", "results"}`. Counting is what makes numbered pages slow on big tables, so
the rows are counted exactly only up to `LIST_COUNT_CAP`; past it `count` is a lower bound and
`"count_exact": false` says so (the key is present only then). The subclass for a list counts its rows
(`count_rows`: its selectors know the cheap way, a counter table, a capped count) and may plan the page's
query by that count (`fetch_rows`). `next` and `previous` never depend on the count: the page is fetched
with one extra row, which tells whether another page follows.

Cursor mode starts with `cursor=` (empty: the first page) and answers `{"next", "previous", "results"}`,
whose links carry opaque cursors. A cursor is a position in the list's total order (newest first, id as
the tie-break), so a page costs the same at any depth (an index range scan, no OFFSET) and walking `next`
sees every row that existed when the walk started exactly once, whatever is inserted meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from rest_framework import pagination
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
# Ids and offsets past this are not representable in the databases' 64-bit integers.
_MAX_BIGINT = 2**63 - 1


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
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("not base64") from exc
    direction, micros, image_id = raw[:1], *raw[1:].partition(".")[::2]
    if direction not in ("n", "p") or not _is_int(micros) or not image_id.isdigit():
        raise ValueError("malformed")
    if not 0 < int(image_id) <= _MAX_BIGINT:
        raise ValueError("id out of range")
    try:
        created_at = _EPOCH + int(micros) * _MICROSECOND
    except OverflowError as exc:
        raise ValueError("date out of range") from exc
    return Position(created_at=created_at, id=int(image_id), reverse=direction == "p")


def _is_int(text: str) -> bool:
    return text.removeprefix("-").isdigit() and len(text) <= 20


class ListPagination(pagination.BasePagination):
    page_size = 20
    max_page_size = 100
    page_query_param = "page"
    page_size_query_param = "page_size"
    cursor_query_param = "cursor"
    # The list's order, newest first: a timestamp and a unique integer tie-break, both descending. The
    # queryset must be ordered by them (and an index on both makes a cursor page a range scan).
    ordering = ("created_at", "id")

    # --- what the subclass for a list provides ----------------------------------------------------

    @property
    def count_cap(self) -> int:
        return settings.LIST_COUNT_CAP

    def count_rows(self, queryset: QuerySet) -> tuple[int, bool]:
        """(count, exact): the rows of `queryset`, exactly, or past `count_cap` a lower bound and False."""
        raise NotImplementedError

    def fetch_rows(self, queryset: QuerySet, start: int, stop: int, *, count: tuple[int, bool]) -> list[Any]:
        """The rows `queryset[start:stop]`; `count` is what `count_rows` answered, to plan the query by."""
        return list(queryset[start:stop])

    # --- DRF's interface ---------------------------------------------------------------------------

    def paginate_queryset(self, queryset: QuerySet, request: Request, view: Any = None) -> list[Any]:
        self.request = request
        size = self._page_size(request)
        if self.cursor_query_param in request.query_params:
            return self._cursor_page(queryset, size)
        return self._numbered_page(queryset, size)

    def get_paginated_response(self, data: Any) -> Response:
        body: dict[str, Any] = {}
        if self.count is not None:
            body["count"] = self.count
            if not self.count_exact:
                body["count_exact"] = False
        body.update(next=self.next_link, previous=self.previous_link, results=data)
        return Response(body)

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "count": {
                    "type": "integer",
                    "example": 123,
                    "description": (
                        "Page-number mode only (absent with `cursor`). The number of matching items: "
                        "exact, unless `count_exact` is present and false; then a lower bound (a "
                        f"filtered list is counted exactly up to {self.count_cap} matches)."
                    ),
                },
                "count_exact": {
                    "type": "boolean",
                    "example": False,
                    "description": (
                        "Present, and false, only when `count` is a lower bound. `next` and `previous` "
                        "are exact either way."
                    ),
                },
                "next": {
                    "type": "string",
                    "nullable": True,
                    "format": "uri",
                    "example": "http://api.example.org/images?page=4",
                    "description": "The next (older) page; null on the last page.",
                },
                "previous": {
                    "type": "string",
                    "nullable": True,
                    "format": "uri",
                    "example": "http://api.example.org/images?page=2",
                    "description": "The previous (newer) page; null on the first page.",
                },
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.page_query_param,
                "required": False,
                "in": "query",
                "description": "Page-number mode: the page to return, from 1. A page past the last is a 404.",
                "schema": {"type": "integer", "minimum": 1},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": (
                    f"Items per page, 1 to {self.max_page_size} (default {self.page_size}; more is "
                    f"capped at {self.max_page_size}). Both modes."
                ),
                "schema": {"type": "integer", "minimum": 1},
            },
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": (
                    "Cursor (keyset) mode, for walking far: `cursor=` (empty) for the first page, then "
                    "follow `next`/`previous`, whose cursors are opaque (one that does not decode is "
                    "a 404). Every page costs the same at any depth, and a walk sees every image once "
                    "even while images are added. The answer has no `count`; `page` is ignored."
                ),
                "schema": {"type": "string"},
            },
        ]

    # --- page-number mode --------------------------------------------------------------------------

    def _numbered_page(self, queryset: QuerySet, size: int) -> list[Any]:
        number = self._page_number(self.request)
        offset = (number - 1) * size
        if offset >= _MAX_BIGINT - size:
            raise NotFound("Invalid page.")
        count, exact = self.count_rows(queryset)
        if number > 1 and exact and offset >= count:
            raise NotFound("Invalid page.")
        # One row more than the page says whether another page follows, whatever the count says.
        rows = self.fetch_rows(queryset, offset, offset + size + 1, count=(count, exact))
        has_next = len(rows) > size
        rows = rows[:size]
        if number > 1 and not rows:
            raise NotFound("Invalid page.")
        if not exact:
            if has_next:
                # Still a lower bound, but no lower than what this page has shown to exist.
                count = max(count, offset + size + 1)
            else:
                # The last page: now the count is known.
                count, exact = offset + len(rows), True
        self.count, self.count_exact = count, exact
        url = self.request.build_absolute_uri()
        self.next_link = replace_query_param(url, self.page_query_param, number + 1) if has_next else None
        if number == 1:
            self.previous_link = None
        elif number == 2:
            self.previous_link = remove_query_param(url, self.page_query_param)
        else:
            self.previous_link = replace_query_param(url, self.page_query_param, number - 1)
        return rows

    def _page_number(self, request: Request) -> int:
        number = request.query_params.get(self.page_query_param, "1")
        if not number.isdigit() or int(number) < 1:
            raise ValidationError({self.page_query_param: ["A positive whole number is required."]})
        return int(number)

    def _page_size(self, request: Request) -> int:
        size = request.query_params.get(self.page_size_query_param)
        if size is None:
            return self.page_size
        if not size.isdigit() or int(size) < 1:
            raise ValidationError(
                {self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}."]}
            )
        return min(int(size), self.max_page_size)

    # --- cursor mode -------------------------------------------------------------------------------

    def _cursor_page(self, queryset: QuerySet, size: int) -> list[Any]:
        token = self.request.query_params[self.cursor_query_param]
        try:
            position = decode_cursor(token) if token else None
        except ValueError:
            # As DRF's CursorPagination does: a cursor we did not make points nowhere.
            raise NotFound("Invalid cursor.") from None
        self.count = None
        self.count_exact = True
        date_field, id_field = self.ordering
        if position is None:
            rows = list(queryset[: size + 1])
        elif not position.reverse:
            rows = list(queryset.filter(self._beyond(position))[: size + 1])
        else:
            # Walk back: nearest first in ascending order, then put the page back in list order.
            ascending = queryset.filter(self._beyond(position)).order_by(date_field, id_field)
            rows = list(ascending[: size + 1])
        more = len(rows) > size
        rows = rows[:size]
        if position is not None and position.reverse:
            rows.reverse()
            has_previous, has_next = more, True
        else:
            has_previous, has_next = position is not None, more
        self.next_link = self._cursor_link(rows[-1], reverse=False) if rows and has_next else None
        self.previous_link = self._cursor_link(rows[0], reverse=True) if rows and has_previous else None
        return rows

    def _beyond(self, position: Position) -> Q:
        """Rows past `position` in its direction, as a range the (created_at, id) index serves.

        `created_at <= c AND (created_at < c OR id < i)`: the first term bounds the index scan; the
        second only sorts out rows that share the timestamp.
        """
        date_field, id_field = self.ordering
        op = "gt" if position.reverse else "lt"
        edge = "gte" if position.reverse else "lte"
        return Q(**{f"{date_field}__{edge}": position.created_at}) & (
            Q(**{f"{date_field}__{op}": position.created_at}) | Q(**{f"{id_field}__{op}": position.id})
        )

    def _cursor_link(self, row: Any, *, reverse: bool) -> str:
        date_field, id_field = self.ordering
        position = Position(getattr(row, date_field), getattr(row, id_field), reverse=reverse)
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param, encode_cursor(position))
