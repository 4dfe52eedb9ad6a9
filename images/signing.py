"""Signed URLs: mint and verify the expiring URLs of private images' files and renditions; key rotation.

A signed URL is the file URL with its rendition parameters, plus `expires` (Unix seconds), `kid` (the key
that signed it) and `sig`: the HMAC-SHA256, base64url without padding, of the canonical request

    imagery-url-v1 \\n <image id> \\n <parameters> \\n <expires> \\n <kid>

where <parameters> are the rendition parameters that shape the answer (`format`, `height`, `preset`,
`width`), as parsed, sorted by name and joined as `name=value&…` (empty for the stored file). Signing the
parsed request, not the raw query string, means that a parameter reordered, repeated or spelt another way
(`width=0320`) is either the same request or an invalid signature, never a different rendition under a
valid one. Anyone holding a key can mint URLs without calling Imagery (README, "Signed URLs").

Pure functions of their arguments and the settings `IMAGERY_SIGNING_KEYS` (`id:secret,…`: the first signs,
all verify; unset: one key derived from SECRET_KEY) and `IMAGE_SIGNED_URL_TTL`. Time is `clock`, which
tests set instead of waiting for an expiry.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings

from images.exceptions import SignatureExpired, SignatureInvalid

# The parameters a signature covers: every one that changes what the file URL answers.
SIGNED_PARAMETERS = ("format", "height", "preset", "width")
# The parameters a signature adds to a URL.
EXPIRES, KEY_ID, SIGNATURE = "expires", "kid", "sig"
VERSION = "imagery-url-v1"
# The key id of the key derived from SECRET_KEY when IMAGERY_SIGNING_KEYS is unset.
DERIVED_KEY_ID = "default"
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_EXPIRES = re.compile(r"[0-9]{1,12}")
# 32 bytes of HMAC-SHA256 in base64url without padding.
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{43}")
# Secrets shorter than this are refused at start: a guessable key signs anything.
MIN_SECRET_LENGTH = 16

# The one clock expiries are measured by (Unix seconds); tests set it rather than wait.
clock: Callable[[], float] = time.time


@dataclass(frozen=True)
class SigningKey:
    kid: str
    secret: bytes


def keys_from_setting(raw: str, *, secret_key: str) -> tuple[SigningKey, ...]:
    """`IMAGERY_SIGNING_KEYS` (`id:secret,id:secret`) as keys, the signing one first; ValueError naming
    what is wrong. Empty: one key derived from `secret_key` (so a local run needs nothing)."""
    if not raw.strip():
        derived = hmac.new(secret_key.encode(), b"imagery signed URLs", hashlib.sha256).digest()
        return (SigningKey(DERIVED_KEY_ID, derived),)
    keys: dict[str, SigningKey] = {}
    for part in raw.split(","):
        kid, sep, secret = part.strip().partition(":")
        if not sep or not _KEY_ID.fullmatch(kid):
            raise ValueError(f"each key is id:secret, the id 1-32 letters, digits, _ or - (not {kid!r})")
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"key {kid}: a secret of at least {MIN_SECRET_LENGTH} characters")
        if kid in keys:
            raise ValueError(f"key {kid} is named twice")
        keys[kid] = SigningKey(kid, secret.encode())
    return tuple(keys.values())


@functools.lru_cache(maxsize=8)
def _keys(raw: str, secret_key: str) -> tuple[SigningKey, ...]:
    return keys_from_setting(raw, secret_key=secret_key)


def signing_keys() -> tuple[SigningKey, ...]:
    """The configured keys, the one that signs first."""
    return _keys(settings.IMAGERY_SIGNING_KEYS, settings.SECRET_KEY)


def canonical(image_id: int, params: Mapping[str, object], expires: int, kid: str) -> bytes:
    """What a signature covers (see the module's docstring); `params` as parsed, None for absent."""
    shaping = "&".join(f"{name}={params[name]}" for name in SIGNED_PARAMETERS if params.get(name) is not None)
    return "\n".join([VERSION, str(image_id), shaping, str(expires), kid]).encode()


def signature(secret: bytes, message: bytes) -> str:
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def expiry(*, now: float, ttl: int) -> int:
    """When a URL minted `now` expires: `now + ttl` rounded down to a whole minute, so that the URLs one
    object answers stay the same for a minute (browsers and the list's ETag reuse them), and never live
    longer than `ttl`."""
    return int(now + ttl) // 60 * 60


def signed_query(image_id: int, params: Mapping[str, object], *, expires: int | None = None) -> str:
    """The query string of a signed URL for image `image_id` with these rendition parameters."""
    if expires is None:
        expires = expiry(now=clock(), ttl=settings.IMAGE_SIGNED_URL_TTL)
    key = signing_keys()[0]
    shown = {name: params[name] for name in SIGNED_PARAMETERS if params.get(name) is not None}
    sig = signature(key.secret, canonical(image_id, shown, expires, key.kid))
    return urlencode({**shown, EXPIRES: expires, KEY_ID: key.kid, SIGNATURE: sig})


def is_signed(query: Mapping[str, str]) -> bool:
    """Whether a request carries any part of a signature (then it must be a whole, valid one)."""
    return any(name in query for name in (EXPIRES, KEY_ID, SIGNATURE))


def verify(image_id: int, params: Mapping[str, object], query: Mapping[str, str]) -> int:
    """The seconds left before the signed request expires; SignatureInvalid (403 `invalid`) when a part is
    missing or malformed, the key unknown (removed) or the signature not this request's, SignatureExpired
    (403 `expired`) when it is whole and right but past its expiry. Constant-time comparison; no storage,
    no database."""
    expires, kid, sig = query.get(EXPIRES, ""), query.get(KEY_ID, ""), query.get(SIGNATURE, "")
    if not (_EXPIRES.fullmatch(expires) and _KEY_ID.fullmatch(kid) and _SIGNATURE.fullmatch(sig)):
        raise SignatureInvalid(_INVALID)
    key = next((key for key in signing_keys() if key.kid == kid), None)
    if key is None:
        raise SignatureInvalid(_INVALID)
    expected = signature(key.secret, canonical(image_id, params, int(expires), kid))
    if not hmac.compare_digest(expected, sig):
        raise SignatureInvalid(_INVALID)
    left = int(expires) - int(clock())
    if left <= 0:
        raise SignatureExpired("This signed URL has expired: get the image again for a fresh one.")
    return left


_INVALID = "This signed URL is not valid: altered, made for another request, or signed with a retired key."
