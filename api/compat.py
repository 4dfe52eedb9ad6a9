"""Every use of gunicorn's private names, in one place.

api/slow_clients.py's worker answers `Expect: 100-continue` itself, from its event loop, before a thread
runs the request; gunicorn would answer it a second time, and offers no public way to say it was done. It is
one line here, and tests/test_compat.py fails loudly when an upgrade changes it. (The worker also overrides
gthread's `_keepalive_after` hook, which tests/test_compat.py checks gunicorn still calls, and builds on its
connection object and event loop: tests/test_slow_clients.py runs the real server against them.)
"""

from __future__ import annotations

from typing import Any


def continue_already_sent(req: Any) -> None:
    """Tell gunicorn not to send `100 Continue` for this request (`gunicorn.http.Request`): it was sent."""
    req._expected_100_continue = False
