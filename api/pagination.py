"""Page-number pagination for lists: `page` (1-based) and `page_size` (default 20, at most 100)."""

from __future__ import annotations

from typing import Any

from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request


class PageNumberPagination(pagination.PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
    page_query_description = "The page to return, from 1."
    page_size_query_description = "Items per page, 1 to 100 (default 20; more is capped at 100)."

    def get_page_number(self, request: Request, paginator: Any) -> str:
        number = request.query_params.get(self.page_query_param, "1")
        if not number.isdigit() or int(number) < 1:
            raise ValidationError({self.page_query_param: ["A positive whole number is required."]})
        return number

    def get_page_size(self, request: Request) -> int:
        size = request.query_params.get(self.page_size_query_param)
        if size is None:
            return self.page_size
        if not size.isdigit() or int(size) < 1:
            raise ValidationError(
                {self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}."]}
            )
        return min(int(size), self.max_page_size)
