"""The gallery and direct uploads (issue 24): big files by tus through a one-time upload URL, resumed after a
dropped connection, and the upload-link pages (a link made with a key, used in another browser with none).

These need the server's `POST /uploads` and tus on its upload URLs: they skip, saying so, where it has none.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, expect
from rest_framework_api_key.models import APIKey

from tests.e2e.support import choose_file, noise, open_gallery, picture, require_upload_urls

pytestmark = pytest.mark.e2e

MB = 1024 * 1024
CHUNK = 2 * MB  # resumable.js's chunk size: the offsets the server confirms


@pytest.fixture
def key(page: Page, settings: Any) -> str:
    """Keys on (IMAGERY_AUTH=write), and this tab holding one, as the gallery's user has."""
    require_upload_urls()
    settings.IMAGERY_AUTH = "write"
    _, key = APIKey.objects.create_key(name="gallery")
    page.context.add_init_script(f"sessionStorage.setItem('imagery.apiKey', {key!r})")
    return key


def require_tus(page: Page, key: str) -> None:
    """Skip unless an upload URL also speaks tus (the tus branch): its OPTIONS answers tus discovery."""
    minted = page.request.post(
        "/uploads", data={"title": "probe"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert minted.status == 201, minted.text()
    options = page.request.fetch(minted.json()["upload_url"], method="OPTIONS")
    if "tus-version" not in options.headers and "tus-resumable" not in options.headers:
        pytest.skip("upload URLs do not speak tus yet on this server (resumable uploads, issue 24)")


def test_a_big_upload_goes_by_tus_and_resumes_after_the_connection_drops(page: Page, key: str) -> None:
    require_tus(page, key)
    content = noise((1400, 1300))
    assert len(content) > 5 * MB  # the gallery's threshold for tus

    # The connection drops during the second chunk, after the server has confirmed the first.
    patches: list[int] = []

    def cut_once(route: Route) -> None:
        request = route.request
        if request.method != "PATCH":
            route.fallback()
            return
        patches.append(int(request.headers["upload-offset"]))
        if len(patches) == 2:
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/*", cut_once)
    open_gallery(page)
    # What the progress bar's label said along the way.
    page.evaluate(
        """() => { window.labels = [];
                   const label = document.getElementById("progress-label");
                   new MutationObserver(() => window.labels.push(label.textContent))
                     .observe(label, { childList: true, characterData: true, subtree: true }); }"""
    )
    choose_file(page, content, filename="big.png")
    page.get_by_label("Title", exact=True).fill("Big and patient")
    page.get_by_role("button", name="Upload").click()

    status = page.locator("#upload-status")
    expect(status).to_contain_text("Uploaded “Big and patient”.", timeout=60_000)
    expect(page.locator("#grid .card-title")).to_have_text(["Big and patient"])
    expect(page.locator("#upload-error")).to_be_hidden()
    # Resumed where the server stood, not from the start: the chunk that was cut is sent again, once.
    assert patches[:3] == [0, CHUNK, CHUNK], patches
    assert patches == sorted(patches)
    labels = page.evaluate("window.labels")
    assert "Connection lost: resuming…" in labels
    assert labels[-1] == "Uploading (resumed)"
    # The image is whole: the key's, with the form's title and every pixel's worth of bytes.
    [image] = page.request.get("/images").json()["results"]
    assert (image["title"], image["width"], image["height"]) == ("Big and patient", 1400, 1300)


def test_an_upload_link_made_with_a_key_is_used_in_another_browser_without_one(
    page: Page, key: str, browser: Browser, live_server: Any
) -> None:
    require_tus(page, key)
    page.goto("/upload-link")
    expect(page.get_by_label("API key")).to_have_value(key)  # the tab's key, already there
    page.get_by_label("Title of the image").fill("Sent by a visitor")
    page.get_by_label("Usable for").select_option(label="1 hour")
    page.get_by_role("button", name="Make the link").click()
    expect(page.get_by_role("heading", name="The link to hand over")).to_be_focused()
    field = page.get_by_label("Upload link", exact=True)
    expect(field).to_have_value(re.compile(rf"^{re.escape(live_server.url)}/u#http"))
    link = field.input_value()
    assert key not in link
    expect(page.locator("#link-expires")).to_contain_text("Usable once, until")

    # Another browser: no key, no session, only the link.
    visitor_context = browser.new_context(base_url=live_server.url, locale="en-US")
    visitor = visitor_context.new_page()
    errors: list[str] = []
    visitor.on("pageerror", lambda error: errors.append(str(error)))
    sent: list[str] = []
    visitor.on(
        "request", lambda request: sent.append(f"{request.method} {request.headers.get('authorization')}")
    )
    visitor.goto(link)
    expect(visitor.get_by_role("heading", name="Upload an image")).to_be_visible()
    # A big file, so by tus where the server speaks it (one POST where it does not).
    visitor.get_by_label("Image file").set_input_files(
        files=[{"name": "holiday.png", "mimeType": "image/png", "buffer": noise((1400, 1300))}]
    )
    visitor.get_by_role("button", name="Upload").click()
    expect(visitor.locator("#direct-status")).to_have_text(
        re.compile(r"^Uploaded “Sent by a visitor”"), timeout=60_000
    )
    expect(visitor.locator("#direct-status")).to_be_focused()
    # By tus (2 MB chunks), and never with a key.
    assert sent.count("PATCH None") == 3, sent
    assert all(line.endswith(" None") for line in sent)

    # Used once: the same link again is refused, in words.
    visitor.reload()
    visitor.get_by_label("Image file").set_input_files(
        files=[{"name": "again.png", "mimeType": "image/png", "buffer": picture((20, 60, 90))}]
    )
    visitor.get_by_role("button", name="Upload").click()
    expect(visitor.get_by_role("alert")).to_have_text(re.compile("used already"))
    visitor_context.close()
    assert errors == []

    # The image is in the gallery, with the title the link fixed.
    open_gallery(page)
    expect(page.locator("#grid .card-title")).to_have_text(["Sent by a visitor"])


def test_a_link_without_an_upload_url_says_so(page: Page) -> None:
    page.goto("/u")
    expect(page.get_by_role("alert")).to_have_text(re.compile("no upload URL"))
    expect(page.get_by_label("Image file")).to_be_hidden()
    page.goto("/u#https://elsewhere.example/uploads/abc")
    page.reload()
    expect(page.get_by_role("alert")).to_have_text(re.compile("another server"))
