"""The tus 1.0 protocol's headers: strict parsing and formatting, no Django, no storage, no rows.

https://tus.io/protocols/resumable-upload (core, creation, creation-with-upload, creation-defer-length,
expiration, termination, checksum). Every parser takes the header's raw value (None when absent) and
returns a plain value, or raises a `TusError` carrying the status tus asks for: a client error is a 400,
an unsupported `Tus-Resumable` a 412, a checksum that does not match the 460 of the checksum extension.

Integers are ASCII digits only (`str.isdigit()` and `int()` accept `²`, `٣`, signs, spaces and
underscores; none of them is a tus integer), at most 19 digits and within PostgreSQL's bigint.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from api.exceptions import ProblemError

TUS_VERSION = "1.0.0"
# Creation-defer-length too: a browser streaming a file whose size it learns late may defer it.
EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "expiration",
    "termination",
    "checksum",
)
CHECKSUM_ALGORITHMS = ("sha1", "sha256")
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
# Every tus answer, success or error, carries this header.
RESUMABLE_HEADERS = {"Tus-Resumable": TUS_VERSION}

# PostgreSQL's bigint, which holds Upload-Length and Upload-Offset.
MAX_INTEGER = 2**63 - 1
_INTEGER = re.compile(r"[0-9]{1,19}")
# A metadata key: visible ASCII without space or comma (the pair and list separators).
_METADATA_KEY = re.compile(r"[!-+\--~]+")
# Standard base64 with its padding (RFC 4648 §4), as the spec asks; nothing else is decoded.
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
# One Upload-Metadata header may not carry more than this (our fields are short; a client sends a name).
MAX_METADATA_BYTES = 4096


class TusError(ProblemError):
    """A tus request we refuse; `status` as the protocol asks."""

    status = 400
    code = "invalid"


class TusVersionUnsupported(TusError):
    """`Tus-Resumable` missing or another version than 1.0.0 (the answer names ours in `Tus-Version`)."""

    status = 412
    code = "tus_version_unsupported"


class ChecksumMismatch(TusError):
    """The body's checksum is not the one `Upload-Checksum` declared; nothing of it was kept."""

    status = 460
    code = "checksum_mismatch"


class OffsetConflict(TusError):
    """`Upload-Offset` is not the offset the server has stored (or another PATCH got there first)."""

    status = 409
    code = "offset_conflict"


class NotOffsetStream(TusError):
    """A PATCH (or a creation with a body) whose Content-Type is not application/offset+octet-stream."""

    status = 415
    code = "unsupported_media_type"


@dataclass(frozen=True)
class Checksum:
    """A parsed `Upload-Checksum`: the algorithm and the digest the body must have."""

    algorithm: str
    digest: bytes

    def new(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)


def check_resumable(value: str | None) -> None:
    """Every request but OPTIONS must say `Tus-Resumable: 1.0.0`; anything else is a 412."""
    if value is None:
        raise TusVersionUnsupported(f"Tus-Resumable is missing; this server speaks tus {TUS_VERSION}.")
    if value.strip() != TUS_VERSION:
        raise TusVersionUnsupported(
            f"Tus-Resumable {value!r} is not supported; this server speaks {TUS_VERSION}."
        )


def parse_integer(value: str | None, *, header: str) -> int | None:
    """A non-negative integer header; None when absent, TusError when malformed or too large."""
    if value is None:
        return None
    if not _INTEGER.fullmatch(value):
        raise TusError(f"{header} must be a non-negative integer in ASCII digits.", field=header)
    number = int(value)
    if number > MAX_INTEGER:
        raise TusError(f"{header} is too large.", field=header)
    return number


def parse_upload_length(value: str | None) -> int | None:
    return parse_integer(value, header="Upload-Length")


def parse_upload_offset(value: str | None) -> int:
    """`Upload-Offset` is required on a PATCH."""
    offset = parse_integer(value, header="Upload-Offset")
    if offset is None:
        raise TusError("Upload-Offset is required.", field="Upload-Offset")
    return offset


def parse_defer_length(value: str | None) -> bool:
    """`Upload-Defer-Length: 1` (the only value the spec allows) → True; absent → False."""
    if value is None:
        return False
    if value != "1":
        raise TusError("Upload-Defer-Length must be 1.", field="Upload-Defer-Length")
    return True


def parse_metadata(value: str | None) -> dict[str, str]:
    """`Upload-Metadata`: comma-separated `key base64(value)` pairs (the value may be absent) → a dict of
    text. Malformed base64, a duplicate key, a key that is not visible ASCII, or a value that is not
    UTF-8 text (or holds NUL, which the row's JSON cannot) is a 400: a value we cannot read exactly is
    refused, not guessed at."""
    if value is None or not value.strip():
        return {}
    if len(value.encode("utf-8", "surrogatepass")) > MAX_METADATA_BYTES:
        raise TusError(f"Upload-Metadata is longer than {MAX_METADATA_BYTES} bytes.", field="Upload-Metadata")
    pairs: dict[str, str] = {}
    for item in value.split(","):
        parts = item.strip(" \t").split(" ")  # optional whitespace around a pair (RFC 9110 OWS)
        if len(parts) > 2 or not parts[0]:
            raise TusError(
                "Upload-Metadata must be comma-separated `key base64value` pairs.", field="Upload-Metadata"
            )
        key = parts[0]
        if not _METADATA_KEY.fullmatch(key):
            raise TusError("An Upload-Metadata key must be visible ASCII.", field="Upload-Metadata")
        if key in pairs:
            raise TusError(f"Upload-Metadata repeats the key {key!r}.", field="Upload-Metadata")
        pairs[key] = _decode_base64_text(parts[1]) if len(parts) == 2 else ""
    return pairs


def _decode_base64_text(encoded: str) -> str:
    if not _BASE64.fullmatch(encoded):
        raise TusError("An Upload-Metadata value is not valid base64.", field="Upload-Metadata")
    try:
        text = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise TusError(
            "An Upload-Metadata value is not base64 of UTF-8 text.", field="Upload-Metadata"
        ) from exc
    if "\x00" in text:
        # The pairs are kept in a JSON column, and PostgreSQL's jsonb holds no NUL (a 500 otherwise).
        raise TusError("An Upload-Metadata value may not hold NUL.", field="Upload-Metadata")
    return text


def format_metadata(metadata: dict[str, str]) -> str:
    """The `Upload-Metadata` header of a dict (HEAD answers it back as the client sent it)."""
    return ",".join(
        f"{key} {base64.b64encode(text.encode('utf-8')).decode('ascii')}" if text else key
        for key, text in metadata.items()
    )


def parse_checksum(value: str | None) -> Checksum | None:
    """`Upload-Checksum: <algorithm> <base64 digest>`; an algorithm we do not offer is a 400."""
    if value is None:
        return None
    parts = value.strip().split(" ")
    if len(parts) != 2:
        raise TusError("Upload-Checksum must be `<algorithm> <base64 digest>`.", field="Upload-Checksum")
    algorithm, encoded = parts
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise TusError(
            f"Upload-Checksum algorithm {algorithm!r} is not supported; use "
            f"{' or '.join(CHECKSUM_ALGORITHMS)}.",
            field="Upload-Checksum",
        )
    if not _BASE64.fullmatch(encoded):
        raise TusError("Upload-Checksum's digest is not valid base64.", field="Upload-Checksum")
    digest = base64.b64decode(encoded, validate=True)
    if len(digest) != hashlib.new(algorithm).digest_size:
        raise TusError(
            f"Upload-Checksum's digest is not the size of a {algorithm} digest.", field="Upload-Checksum"
        )
    return Checksum(algorithm=algorithm, digest=digest)


def format_expires(moment: datetime) -> str:
    """`Upload-Expires`: an RFC 9110 HTTP-date (`Sun, 06 Nov 1994 08:49:37 GMT`)."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def parse_expires(value: str) -> datetime:
    """An `Upload-Expires` value back to an aware datetime (for clients and tests)."""
    return parsedate_to_datetime(value)


def discovery_headers(*, max_size: int) -> dict[str, str]:
    """What OPTIONS answers: the version, the extensions, the size limit and the checksum algorithms."""
    return {
        **RESUMABLE_HEADERS,
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": ",".join(EXTENSIONS),
        "Tus-Max-Size": str(max_size),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    }
