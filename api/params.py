"""Request parameters (query string or form) as the input serializers read them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import QueryDict


def last_values(data: Mapping[str, Any]) -> dict[str, Any]:
    """Each parameter's last value, as a plain dict.

    A repeated parameter counts once, as with Django's `QueryDict.get`. And an empty one stays a value to
    validate: given a QueryDict, DRF's fields would read `page=` or `width=` as absent, which no schema
    for an integer or a choice can say. (Fields that mean "empty is absent", like a title, say so.)
    """
    return data.dict() if isinstance(data, QueryDict) else dict(data)
