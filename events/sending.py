"""One signed POST to a webhook endpoint, over a connection to the address targets.py checked.

Signed per Standard Webhooks with the `standardwebhooks` package: `webhook-id` (the event's id, the same on
every retry), `webhook-timestamp` (this try's) and `webhook-signature` (HMAC-SHA256 of id.timestamp.body).
No redirect is followed (a 3xx is a failure), no retry is made here (deliveries.py schedules them), the
connect and read timeouts are WEBHOOK_CONNECT_TIMEOUT and WEBHOOK_READ_TIMEOUT, and only a short prefix of
the answer is read. Connections are kept per (address, host) and reused: a worker sends many events to
the same few endpoints.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import urllib3
from django.conf import settings
from standardwebhooks.webhooks import Webhook

from events.models import RESPONSE_PREFIX_BYTES
from events.targets import Target, TargetRefused, resolve

# An answer up to this size is read to its end, so its connection can be used again; a longer one is cut.
_DRAIN_LIMIT = 64 * 1024
_MAX_POOLS = 64
_USER_AGENT = "Imagery-Webhooks/1"

_pools: OrderedDict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = OrderedDict()
_pools_lock = threading.Lock()


@dataclass(frozen=True)
class Answer:
    """What one try came to: delivered (2xx), or why not."""

    status: int | None = None
    body: str = ""
    error: str = ""

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def signed_headers(*, secret: str, msg_id: str, timestamp: dt.datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers for `body`, signed with the endpoint's `whsec_` secret."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, timestamp, body),
    }


def post(url: str, *, secret: str, msg_id: str, timestamp: dt.datetime, body: str) -> Answer:
    """POST `body` (JSON) to `url`, signed; never raises for what the network or the receiver does."""
    try:
        target = resolve(url)
    except TargetRefused as exc:
        return Answer(error=f"refused: {exc}")
    headers = {
        "Host": target.host_header,
        "Content-Type": "application/json",
        "User-Agent": _USER_AGENT,
        **signed_headers(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body),
    }
    pool = _pool(target)
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body.encode(),
            headers=headers,
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
            release_conn=False,
        )
    except Exception as exc:  # whatever the network or a strange URL does, it is this try's failure
        return Answer(error=_short(f"{type(exc).__name__}: {exc}"))
    try:
        prefix = _read_answer(response, deadline=time.monotonic() + settings.WEBHOOK_READ_TIMEOUT)
    except Exception as exc:
        response.close()
        response.release_conn()
        # The status decides: a 2xx whose body never ends has still accepted the event.
        delivered = 200 <= response.status < 300
        return Answer(status=response.status, error="" if delivered else _short(f"reading the answer: {exc}"))
    error = ""
    if 300 <= response.status < 400:
        error = f"redirect to {response.headers.get('Location', '?')} not followed"
    elif not 200 <= response.status < 300:
        error = f"answered {response.status}"
    return Answer(
        status=response.status, body=_storable(prefix.decode("utf-8", "replace")), error=_short(error)
    )


def _read_answer(response: urllib3.BaseHTTPResponse, *, deadline: float) -> bytes:
    """The answer's first RESPONSE_PREFIX_BYTES, read by `deadline` at the latest (a receiver that sends
    a byte at a time never trips a per-read timeout). The rest is read to its end when it is short, so
    the connection can be used again; else the connection is closed."""
    prefix, rest = b"", 0
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("the answer took longer than WEBHOOK_READ_TIMEOUT")
        chunk = response.read1(16 * 1024, decode_content=False)
        if not chunk:
            break
        if len(prefix) < RESPONSE_PREFIX_BYTES:
            prefix += chunk[: RESPONSE_PREFIX_BYTES - len(prefix)]
        rest += len(chunk)
        if rest > _DRAIN_LIMIT:
            response.close()  # too long to read for the connection's sake
            break
    response.release_conn()
    return prefix


def _pool(target: Target) -> urllib3.HTTPConnectionPool:
    key = (target.scheme, target.address, target.port, target.host)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is not None:
            _pools.move_to_end(key)
            return pool
        timeout = urllib3.Timeout(
            connect=settings.WEBHOOK_CONNECT_TIMEOUT, read=settings.WEBHOOK_READ_TIMEOUT
        )
        if target.scheme == "https":
            # Connected to the checked address; TLS names the host (SNI) and checks its certificate for it.
            pool = urllib3.HTTPSConnectionPool(
                target.address,
                target.port,
                timeout=timeout,
                maxsize=4,
                retries=False,
                server_hostname=target.host,
                assert_hostname=target.host,
                cert_reqs="CERT_REQUIRED",
            )
        else:
            pool = urllib3.HTTPConnectionPool(
                target.address, target.port, timeout=timeout, maxsize=4, retries=False
            )
        _pools[key] = pool
        while len(_pools) > _MAX_POOLS:
            _, old = _pools.popitem(last=False)
            old.close()
        return pool


def close_connections() -> None:
    """Close every kept connection (tests; a worker that is stopping)."""
    with _pools_lock:
        while _pools:
            _, pool = _pools.popitem()
            pool.close()


def _short(text: str) -> str:
    return _storable(text[:300])


def _storable(text: str) -> str:
    """`text` as a database's text column holds it: PostgreSQL's holds no NUL (a binary answer has some),
    and a delivery whose outcome cannot be saved is claimed and sent again, every lease, for ever."""
    return text.replace("\x00", "\ufffd")
