"""Browser fixtures: Debian's Chromium, driven by Playwright, against the app on pytest-django's live server.

Playwright never downloads a browser here: it launches the system's Chromium (`make test` installs it; the
CHROMIUM environment variable points elsewhere). Each test gets a fresh browser context (no shared storage)
and a fresh database and media folder; the browser itself is started once for the whole e2e package.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.races import until

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1100, "height": 750}


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"No Chromium at {CHROMIUM}: `make test` installs Debian's chromium package, or set CHROMIUM "
            'to a Chromium or Chrome binary (or deselect these tests with -m "not e2e").'
        )
    # Playwright's sync API keeps an asyncio loop running on this thread while it lives, so Django takes
    # the test thread for async code and refuses ORM calls there (the database flush between tests makes
    # some). Nothing here is async: the check is a false alarm, lifted only while the browser lives.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, live_server: Any) -> Iterator[Page]:
    """A page of a fresh browser context on the live server; fails the test on any uncaught script error."""
    context = browser.new_context(
        base_url=live_server.url, viewport=VIEWPORT, locale="en-US", timezone_id="UTC"
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    # The page's last requests (a thumbnail's first render takes 100 ms or more) may still run in the live
    # server's threads once the context is closed; the database flush that ends the test must not meet
    # them (SQLite's shared in-memory database answers it "database table is locked", and the next test
    # then starts with this one's rows).
    assert until(lambda: not _requests_under_way(), timeout=30), "the live server's requests never ended"
    assert errors == [], f"uncaught errors in the page: {errors}"


def _requests_under_way() -> list[threading.Thread]:
    """The live server's request threads still alive (socketserver names them after their target)."""
    return [thread for thread in threading.enumerate() if "process_request_thread" in thread.name]
