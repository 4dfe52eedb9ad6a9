"""The gallery and private images: the upload's private box, the lock badge, the list of the key's private
images, the view's public/private switch, and private pictures shown through signed URLs (the page holds
no signing key)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from rest_framework_api_key.models import APIKey

from tests.e2e.support import api_upload, choose_file, open_gallery, picture

pytestmark = pytest.mark.e2e

SECRET = "a-signing-secret-the-page-never-sees"


@pytest.fixture
def keyed(page: Page, settings: Any) -> str:
    """Keys on (IMAGERY_AUTH=write), a signing key configured, and this tab holding an API key."""
    settings.IMAGERY_AUTH = "write"
    settings.IMAGERY_SIGNING_KEYS = f"k1:{SECRET}"
    _, key = APIKey.objects.create_key(name="owner")
    page.context.add_init_script(f"sessionStorage.setItem('imagery.apiKey', {key!r})")
    page.context.set_extra_http_headers({"Authorization": f"Bearer {key}"})  # page.request, as the owner
    return key


def test_a_private_upload_shows_locked_through_signed_urls_and_switches_to_public(
    page: Page, keyed: str
) -> None:
    open_gallery(page)
    choose_file(page, picture((200, 40, 40), size=(300, 200)))
    page.get_by_label("Title", exact=True).fill("Secret")
    page.get_by_label(re.compile("Private: only the uploading key")).check()
    page.get_by_role("button", name="Upload").click()

    # The upload is in sight: the list of this key's private images, with its lock.
    expect(page).to_have_url(re.compile(r"\?private=1$"))
    card = page.locator("#grid .card").filter(has_text="Secret")
    expect(card.locator(".badge.lock")).to_be_visible()
    thumbnail = card.get_by_role("img", name="Secret")
    page.wait_for_function("""() => document.querySelector("#grid img").naturalWidth > 0""")
    assert "sig=" in thumbnail.evaluate("img => img.currentSrc")
    [image] = page.request.get("/images?visibility=private").json()["results"]
    assert image["visibility"] == "private"
    # Anyone else: not in the public list, and its file is a 404 without a signature.
    assert page.request.get("/images", headers={"Authorization": ""}).json()["count"] == 0

    # Its view: the lock, the switch on, the picture through a signed URL.
    card.get_by_role("link").click()
    expect(page.locator("#detail-lock")).to_be_visible()
    switch = page.get_by_role("switch", name=re.compile("Private"))
    expect(switch).to_be_checked()
    detail = page.locator("#detail-image")
    page.wait_for_function("""() => document.querySelector("#detail-image").naturalWidth > 0""")
    assert "sig=" in detail.evaluate("img => img.currentSrc")

    # Public: the badge goes, the picture is the public URL, everyone lists it.
    switch.uncheck()
    expect(page.locator("#switch-status")).to_have_text("The image is public now.")
    expect(page.locator("#detail-lock")).to_be_hidden()
    page.wait_for_function(
        """() => { const img = document.querySelector("#detail-image");
                   return img.naturalWidth > 0 && !img.currentSrc.includes("sig="); }"""
    )
    assert page.request.get(f"/images/{image['id']}").json()["visibility"] == "public"

    # And private again.
    switch.check()
    expect(page.locator("#switch-status")).to_have_text("The image is private now.")
    expect(page.locator("#detail-lock")).to_be_visible()
    assert page.request.get(f"/images/{image['id']}").json()["visibility"] == "private"

    # Nothing the page loaded holds the signing key.
    assert SECRET not in page.content()
    assert SECRET not in page.request.get("/static/gallery/gallery.js").text()


def test_the_switch_lists_public_and_private_images_apart(page: Page, keyed: str) -> None:
    api_upload(page, picture((10, 120, 10)), title="Open")
    api_upload(page, picture((120, 10, 10)), title="Closed", visibility="private")
    open_gallery(page)
    expect(page.locator("#grid .card-title")).to_have_text(["Open"])
    expect(page.locator("#grid .badge.lock")).to_be_hidden()
    page.get_by_role("link", name="Show my private images").click()
    expect(page.locator("#grid .card-title")).to_have_text(["Closed"])
    expect(page.locator("#list-status")).to_have_text("1 private image")
    page.get_by_role("link", name="Show public images").click()
    expect(page.locator("#grid .card-title")).to_have_text(["Open"])


def test_with_access_open_the_gallery_hides_every_private_switch(page: Page) -> None:
    api_upload(page, picture(), title="Anyone's")
    open_gallery(page)
    expect(page.get_by_label(re.compile("Private"))).to_have_count(0)
    expect(page.locator("#visibility-link")).to_have_count(0)
    page.get_by_role("link", name=re.compile("Anyone's")).click()
    expect(page.get_by_role("heading", name="Anyone's")).to_be_visible()
    expect(page.get_by_role("switch")).to_have_count(0)
    expect(page.locator("#detail-lock")).to_be_hidden()
