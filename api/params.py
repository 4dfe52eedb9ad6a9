"""Request parameters (query string or form) as the input serializers read them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import QueryDict


def last_values(data: Any) -> Any:
    """Each parameter's last value, as a plain dict; a body that is no mapping (a JSON list, say) as it
    came, for the serializer to say what is wrong with it.

    A repeated parameter counts once, as with Django's `QueryDict.get`. And an empty one stays a value to
    validate: given a QueryDict, DRF's fields would read `page=` or `width=` as absent, which no schema
    for an integer or a choice can say. (Fields that mean "empty is absent", like a title, say so.)
    """
    if isinstance(data, QueryDict):
        return data.dict()
    return dict(data) if isinstance(data, Mapping) else data
