"""Request parameters (query string or form) as the input serializers read them: one value each, and
integers written as integers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.http import QueryDict
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError


def one_value_each(data: Any, serializer: type[serializers.Serializer]) -> Any:
    """Each parameter's value, as a plain dict; a body that is no mapping (a JSON list, say) as it came, for
    the serializer to say what is wrong with it.

    A parameter `serializer` reads that is given more than once (`?page_size=2&page_size=3`) is a 400
    naming it: the schema says one value, and taking either one would answer something the client may not
    have meant. (Others, which it ignores, may repeat.) And an empty one stays a value to validate: given a
    QueryDict, DRF's fields would read `page=` or `width=` as absent, which no schema for an integer or a
    choice can say. (Fields that mean "empty is absent", like a title, say so.)
    """
    if isinstance(data, QueryDict):
        repeated = [name for name, values in data.lists() if len(values) > 1]
        if repeated:
            # Only then the serializer's fields, which cost as much to build as the validation that follows
            # (every rendition request comes through here).
            fields = serializer().fields
            repeated = sorted(name for name in repeated if name in fields)
        if repeated:
            message = "Given more than once; send it once."
            raise ValidationError({name: [ErrorDetail(message, code="repeated")] for name in repeated})
        return data.dict()
    return dict(data) if isinstance(data, Mapping) else data


class WholeNumberField(serializers.IntegerField):
    """An integer parameter written as one: ASCII digits, an optional sign.

    DRF's IntegerField also takes `2.0`, `2.` and other digits than ASCII (`٣`); a schema that says
    "integer" for a query or form value promises neither, and a client sending `2.5`'s cousin `2.0` most
    likely computed it by mistake.
    """

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, str) and not _WHOLE_NUMBER.fullmatch(data):
            self.fail("invalid")
        return super().to_internal_value(data)


_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
