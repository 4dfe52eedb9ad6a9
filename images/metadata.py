"""An image's metadata: the app's own data on it, a flat JSON object of scalars, and its one validator.

`validate_metadata` is the rule, used by the serializers (POST and PATCH /images), by `images.services`
(every write, which re-exports it for the `uploads/` app) and, for the keys, by the list's filter
(`GET /images?metadata.KEY=VALUE`). It is plain Python: no Django, no request.

The rule:
- a JSON object, at most `METADATA_MAX_BYTES` (2048) bytes in its canonical encoding (`canonical_json`:
  compact separators, keys sorted, UTF-8 without escapes), which is what a client can compute the same way;
- keys of 1 to 64 characters from `A-Z a-z 0-9 _ - . :` (each usable as is in the query parameter
  `metadata.KEY`, with no percent-encoding and nothing a query string or a JSON path would read otherwise);
- values: strings (no NUL and no lone surrogate, which PostgreSQL's jsonb cannot hold), booleans, and
  numbers that are finite and within +-(2**53 - 1) (the integers every JSON client reads exactly, and the
  range in which PostgreSQL gives a float back as it was written); no null (leave a key out instead), no
  nested object or array.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from images.exceptions import InvalidMetadata

Scalar = str | bool | int | float
Metadata = dict[str, Scalar]

METADATA_MAX_BYTES = 2048
KEY_MAX_LENGTH = 64
KEY_PATTERN = rf"[A-Za-z0-9_.:-]{{1,{KEY_MAX_LENGTH}}}"
# The integers JavaScript's numbers (and so most JSON clients) hold exactly; floats within the same bound.
MAX_SAFE_INTEGER = 2**53 - 1
# JSON text longer than this is refused before it is parsed (whitespace may pad a valid object somewhat).
MAX_JSON_TEXT = 8 * METADATA_MAX_BYTES

_KEY = re.compile(KEY_PATTERN)
_SURROGATES = re.compile("[\ud800-\udfff]")
# A JSON number as written (RFC 8259), the form a filter's value must have to match a number.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def validate_metadata(value: object) -> Metadata:
    """`value` as the metadata to store (a new dict), or InvalidMetadata saying what is wrong with it.

    The result equals `value` except that a float -0.0 becomes 0.0 (PostgreSQL keeps no negative zero).
    """
    if not isinstance(value, dict):
        raise InvalidMetadata(
            'Metadata must be a JSON object of keys and values, like {"user": "u42"}.', code="not_an_object"
        )
    clean: Metadata = {}
    for key, item in value.items():
        validate_key(key)
        clean[key] = _scalar(key, item)
    size = len(canonical_json(clean))
    if size > METADATA_MAX_BYTES:
        raise InvalidMetadata(
            f"Metadata may hold at most {METADATA_MAX_BYTES} bytes as compact UTF-8 JSON; this is {size}.",
            code="too_large",
        )
    return clean


def validate_key(key: object) -> str:
    """A metadata key, or InvalidMetadata: 1 to 64 characters of `A-Z a-z 0-9 _ - . :`."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        shown = key[: KEY_MAX_LENGTH + 1] if isinstance(key, str) else key
        raise InvalidMetadata(
            f"Key {shown!r}: a key has 1 to {KEY_MAX_LENGTH} characters, each a letter (A-Z, a-z), a digit, "
            "`_`, `-`, `.` or `:`.",
            code="invalid_key",
        )
    return key


def _scalar(key: str, item: object) -> Scalar:
    if isinstance(item, bool):
        return item
    if isinstance(item, int | float):
        if isinstance(item, float) and not math.isfinite(item):
            raise InvalidMetadata(
                f"Key {key!r}: NaN and infinities are no JSON numbers.", code="invalid_value"
            )
        if abs(item) > MAX_SAFE_INTEGER:
            raise InvalidMetadata(
                f"Key {key!r}: numbers are at most {MAX_SAFE_INTEGER} (2**53 - 1) either side of 0; send a "
                "larger one as a string.",
                code="invalid_value",
            )
        # 0.0 for -0.0, which PostgreSQL would answer as 0.0 anyway.
        return item + 0.0 if isinstance(item, float) else int(item)
    if isinstance(item, str):
        if "\x00" in item or _SURROGATES.search(item):
            raise InvalidMetadata(
                f"Key {key!r}: a string may not hold NUL or a lone surrogate (\\ud800-\\udfff).",
                code="invalid_value",
            )
        return item
    kinds = {type(None): "null", list: "an array", tuple: "an array", dict: "an object"}
    kind = kinds.get(type(item), type(item).__name__)
    raise InvalidMetadata(
        f"Key {key!r}: values are strings, numbers or booleans, not {kind} (leave a key out rather than "
        "null; nothing nests).",
        code="invalid_value",
    )


def canonical_json(metadata: Metadata) -> bytes:
    """The canonical encoding, whose length the 2 KB limit counts: compact, keys sorted, UTF-8."""
    return json.dumps(
        metadata, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
    ).encode("utf-8")


def parse_metadata_json(text: str) -> Metadata:
    """Metadata sent as JSON text (a form field): parsed strictly, then `validate_metadata`.

    Refused: text that is not JSON, NaN and Infinity (which Python's parser would take), a key given twice
    (a parser keeps either), and text over MAX_JSON_TEXT characters before it is parsed at all (so no
    deep nesting reaches the parser's recursion).
    """
    if len(text) > MAX_JSON_TEXT:
        raise InvalidMetadata(
            f"Metadata may hold at most {METADATA_MAX_BYTES} bytes as compact UTF-8 JSON; this text has "
            f"{len(text)} characters.",
            code="too_large",
        )
    try:
        value = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        raise InvalidMetadata(f"Key {exc.args[0]!r} is given twice.", code="invalid_key") from None
    except (ValueError, RecursionError):
        raise InvalidMetadata(
            'Metadata must be JSON text of an object, like {"user": "u42"}.', code="invalid_json"
        ) from None
    return validate_metadata(value)


class _DuplicateKey(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is no JSON number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(key)
        found[key] = value
    return found


def filter_values(text: str) -> list[Scalar]:
    """The stored values a filter's query-string `text` matches: always the string itself; a number of
    equal value when `text` is written as a JSON number (`5` and `5.0` both match 5 and 5.0); the boolean
    when it is `true` or `false`. So `metadata.n=5` finds `{"n": 5}` and `{"n": "5"}`, never `{"n": "05"}`.
    """
    values: list[Scalar] = [text]
    if text in ("true", "false"):
        values.append(text == "true")
    elif (match := _JSON_NUMBER.fullmatch(text)) is not None:
        number: int | float = int(text) if not (match[1] or match[2]) else float(text)
        if math.isfinite(number) and abs(number) <= MAX_SAFE_INTEGER:
            values.append(number)
    return values


def validate_filter_value(key: str, text: str) -> str:
    """A filter's value, or InvalidMetadata when no stored string could equal it (or the database could
    not be asked with it: NUL, a lone surrogate)."""
    if len(text.encode("utf-8", "surrogatepass")) > METADATA_MAX_BYTES:
        raise InvalidMetadata(
            f"Key {key!r}: a value is at most {METADATA_MAX_BYTES} bytes; no stored value is longer.",
            code="invalid_value",
        )
    _scalar(key, text)
    return text
