"""The gallery page in a real browser: upload, search, pages, one image, errors, escaping, the keyboard.

Every assertion is about what a person sees (text, pictures, the address bar), found the way they find it
(by label, by role). The images are made through the form or, where the form is not the point, the API.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage
from PIL import ImageChops
from playwright.sync_api import Page, expect

from tests.e2e.support import (
    api_upload,
    card_titles,
    choose_file,
    noise,
    open_gallery,
    picture,
    scene,
)

pytestmark = pytest.mark.e2e

# The page writes sizes with a multiplication sign and page titles with an en dash.
TIMES, DASH = "\u00d7", "\u2013"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "gallery.png"
SCREENSHOT_MAX_BYTES = 150 * 1024


def test_upload_through_the_form_shows_the_new_image_first_in_the_grid(page: Page) -> None:
    api_upload(page, picture((200, 60, 60)), title="Older picture")
    open_gallery(page)
    expect(card_titles(page)).to_have_text(["Older picture"])

    choose_file(page, picture((40, 90, 200), size=(400, 300)), "harbour.png")
    expect(page.locator("#image-preview")).to_be_visible()
    page.get_by_label("Title", exact=True).fill("Harbour at night")
    page.get_by_label("Width").fill("200")
    page.get_by_role("button", name="Upload").click()

    expect(page.get_by_role("status").filter(has_text="Uploaded")).to_have_text(
        "Uploaded “Harbour at night”. View it"
    )
    expect(card_titles(page)).to_have_text(["Harbour at night", "Older picture"])
    first = page.locator("#grid .card").first
    expect(first.locator(".card-meta")).to_have_text(
        re.compile(rf"^200 {TIMES} 150 · PNG · [\d.]+ (bytes|KB)$")
    )
    thumbnail = first.get_by_role("img", name="Harbour at night")
    expect(thumbnail).to_be_visible()
    # A rendition from the image's srcset, whose naturalWidth is the width the tile lays it out at (not the
    # stored 200): the picture decodes, at the stored image's aspect ratio.
    natural = thumbnail.evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])")
    assert abs(natural[0] / natural[1] - 200 / 150) < 0.02, natural
    assert re.search(r"/images/\d+/file\?width=\d+$", thumbnail.evaluate("img => img.currentSrc"))
    # The form is ready for the next upload.
    expect(page.get_by_label("Title", exact=True)).to_have_value("")
    expect(page.locator("#upload-progress")).to_be_hidden()


def test_upload_shows_its_progress_and_can_be_cancelled(page: Page) -> None:
    open_gallery(page)
    # A slow connection, so the upload is seen under way (Chromium's own network throttling).
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 64 * 1024},
    )
    choose_file(page, noise((300, 300)), "big.png")  # about 270 KB: four seconds at this speed
    page.get_by_role("button", name="Upload").click()

    progress = page.get_by_role("progressbar", name="Uploading")
    expect(progress).to_be_visible()
    page.wait_for_function("() => document.getElementById('progress-bar').value >= 10")
    page.get_by_role("button", name="Cancel").click()

    expect(page.locator("#upload-status")).to_have_text("Upload cancelled.")
    expect(progress).to_be_hidden()
    expect(page.get_by_role("button", name="Upload")).to_be_enabled()
    open_gallery(page)
    expect(page.locator("#list-status")).to_have_text("No images yet: upload the first one.")


def test_a_file_dropped_on_the_drop_zone_is_the_one_uploaded(page: Page) -> None:
    open_gallery(page)
    dropped = page.evaluate_handle(
        """(bytes) => {
            const transfer = new DataTransfer();
            const file = new File([new Uint8Array(bytes)], "dropped sunset.png", { type: "image/png" });
            transfer.items.add(file);
            return transfer;
        }""",
        list(picture((250, 140, 40))),
    )
    page.locator("#dropzone").dispatch_event("drop", {"dataTransfer": dropped})
    expect(page.locator("#image-preview")).to_be_visible()

    page.get_by_role("button", name="Upload").click()
    # No title given: the server names the image after the file.
    expect(card_titles(page)).to_have_text(["dropped sunset"])


def test_search_narrows_the_grid_and_the_address_bar_keeps_it(page: Page) -> None:
    for title in ["Beach at dusk", "Mountain lake", "ÜBER BEACH", "Forest"]:
        api_upload(page, picture(), title=title)
    open_gallery(page)
    expect(card_titles(page)).to_have_count(4)

    search = page.get_by_role("searchbox", name="Search titles")
    search.fill("beach")
    search.press("Enter")
    expect(card_titles(page)).to_have_text(["ÜBER BEACH", "Beach at dusk"])
    expect(page.locator("#list-status")).to_have_text("2 images match “beach”")
    expect(page).to_have_url(re.compile(r"/\?title=beach$"))

    # The address can be shared: opened afresh, it shows the same search.
    page.reload()
    expect(search).to_have_value("beach")
    expect(card_titles(page)).to_have_text(["ÜBER BEACH", "Beach at dusk"])

    search.fill("über")
    search.press("Enter")
    expect(card_titles(page)).to_have_text(["ÜBER BEACH"])

    search.fill("no such title")
    search.press("Enter")
    expect(card_titles(page)).to_have_count(0)
    expect(page.locator("#list-status")).to_have_text("No image title contains “no such title”.")

    # Back walks through the searches, and to the whole collection.
    page.go_back()
    expect(card_titles(page)).to_have_text(["ÜBER BEACH"])
    page.go_back()
    page.go_back()
    expect(search).to_have_value("")
    expect(card_titles(page)).to_have_count(4)


def test_typing_in_the_search_box_searches_without_pressing_enter(page: Page) -> None:
    for title in ["Red kite", "Blue tit"]:
        api_upload(page, picture(), title=title)
    open_gallery(page)
    page.get_by_role("searchbox", name="Search titles").press_sequentially("kite", delay=30)
    expect(card_titles(page)).to_have_text(["Red kite"])
    expect(page).to_have_url(re.compile(r"/\?title=kite$"))
    expect(page.get_by_role("searchbox", name="Search titles")).to_be_focused()


def test_pages_are_walked_with_the_pager_and_the_address_bar_follows(
    page: Page, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gallery.views.PAGE_SIZE", 2)
    for number in range(1, 6):
        api_upload(page, picture(), title=f"image {number}")
    open_gallery(page)
    pager = page.get_by_role("navigation", name="Pages")
    expect(card_titles(page)).to_have_text(["image 5", "image 4"])
    expect(pager).to_contain_text("Page 1 of 3")

    pager.get_by_role("link", name="Next").click()
    expect(card_titles(page)).to_have_text(["image 3", "image 2"])
    expect(page).to_have_url(re.compile(r"/\?page=2$"))
    expect(pager).to_contain_text("Page 2 of 3")

    page.reload()
    expect(card_titles(page)).to_have_text(["image 3", "image 2"])
    pager.get_by_role("link", name="Next").click()
    expect(card_titles(page)).to_have_text(["image 1"])
    # On the last page "Next" leads nowhere: no link, marked disabled.
    expect(pager.get_by_role("link", name="Next")).to_have_count(0)
    expect(page.locator("#next-page")).to_have_attribute("aria-disabled", "true")

    page.go_back()
    expect(card_titles(page)).to_have_text(["image 3", "image 2"])
    pager.get_by_role("link", name="Previous").click()
    expect(card_titles(page)).to_have_text(["image 5", "image 4"])
    expect(page).to_have_url(re.compile(r"/$"))

    # Search and page together, and a page past the end.
    open_gallery(page, "?title=image&page=3")
    expect(card_titles(page)).to_have_text(["image 1"])
    open_gallery(page, "?page=9")
    expect(page.locator("#list-status")).to_have_text("There is no page 9. Go to the first page")
    page.get_by_role("link", name="Go to the first page").click()
    expect(card_titles(page)).to_have_text(["image 5", "image 4"])


def test_a_search_counted_past_the_cap_shows_a_lower_bound_and_no_page_total(
    page: Page, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gallery.views.PAGE_SIZE", 2)
    settings.LIST_COUNT_CAP = 2
    for number in range(1, 6):
        api_upload(page, picture(), title=f"beach {number}")
    open_gallery(page, "?title=beach")
    pager = page.get_by_role("navigation", name="Pages")
    expect(card_titles(page)).to_have_text(["beach 5", "beach 4"])
    expect(page.locator("#list-status")).to_have_text("3+ images match “beach”")
    expect(page.locator("#page-info")).to_have_text("Page 1")

    pager.get_by_role("link", name="Next").click()
    expect(card_titles(page)).to_have_text(["beach 3", "beach 2"])
    # Still a lower bound, but no lower than the rows the pages have shown to exist.
    expect(page.locator("#list-status")).to_have_text("5+ images match “beach”")
    expect(page.locator("#page-info")).to_have_text("Page 2")
    pager.get_by_role("link", name="Next").click()
    # The last page: now the server knows the count.
    expect(card_titles(page)).to_have_text(["beach 1"])
    expect(page.locator("#list-status")).to_have_text("5 images match “beach”")
    expect(page.locator("#page-info")).to_have_text("Page 3 of 3")


def test_an_image_opens_with_its_picture_fields_and_a_url_to_copy(page: Page) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    image = api_upload(page, picture(size=(300, 200)), title="Lighthouse")
    open_gallery(page, "?title=light")

    page.get_by_role("link", name=re.compile("Lighthouse")).click()
    expect(page).to_have_url(re.compile(rf"/\?title=light&image={image['id']}$"))
    expect(page.get_by_role("heading", name="Lighthouse")).to_be_focused()
    expect(page).to_have_title(f"Lighthouse {DASH} Imagery")
    picture_shown = page.locator("#detail").get_by_role("img", name="Lighthouse")
    expect(picture_shown).to_be_visible()
    assert picture_shown.evaluate("img => img.decode().then(() => img.naturalWidth)") == 300
    facts = page.locator("#detail dl")
    expect(facts).to_contain_text(f"300 {TIMES} 200 pixels")
    expect(facts).to_contain_text("PNG")
    expect(facts).to_contain_text(f"({image['size']:,} bytes)")
    expect(page.get_by_label("File URL")).to_have_value(image["url"])

    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == image["url"]

    # The address opens the same view afresh; Escape goes back to the search it came from.
    page.reload()
    expect(page.get_by_role("heading", name="Lighthouse")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page).to_have_url(re.compile(r"/\?title=light$"))
    expect(card_titles(page)).to_have_text(["Lighthouse"])

    page.goto("/?image=999999")
    expect(page.locator("#detail-status")).to_have_text("There is no image 999999.")


def test_the_page_is_usable_with_the_keyboard_alone(page: Page) -> None:
    # Playwright turns file chooser interception on without waiting when the first listener is added, so a
    # key pressed right after can beat it (the chooser then opens unseen, 1 run in 8 here): listen early.
    page.on("filechooser", lambda _chooser: None)
    api_upload(page, picture(), title="Keyboard cat")
    open_gallery(page)

    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to the images")).to_be_focused()
    page.keyboard.press("Enter")
    # From the skip link's target, the next stops are the search box, its button, then the first image.
    for _ in range(3):
        page.keyboard.press("Tab")
    expect(page.get_by_role("link", name=re.compile("Keyboard cat"))).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Keyboard cat")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_role("heading", name="Images")).to_be_focused()
    expect(card_titles(page)).to_have_text(["Keyboard cat"])

    # The file input opens the file chooser from the keyboard, and the form submits with Enter.
    page.get_by_label("Image file").focus()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(files=[{"name": "typed.png", "mimeType": "image/png", "buffer": picture()}])
    page.get_by_label("Title", exact=True).fill("Typed upload")
    page.get_by_label("Title", exact=True).press("Enter")
    expect(card_titles(page)).to_have_text(["Typed upload", "Keyboard cat"])


def test_the_page_fits_a_phone_screen(page: Page) -> None:
    title = "A title long enough to need two lines on a narrow screen, or more"
    image = api_upload(page, picture(size=(1200, 800)), title=title)
    page.set_viewport_size({"width": 360, "height": 740})
    open_gallery(page)
    expect(card_titles(page)).to_have_text([title])
    # Nothing sticks out sideways: no horizontal scrolling, in the list or on one image.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    page.get_by_role("link", name=re.compile("A title long")).click()
    expect(page.get_by_role("heading", name=title)).to_be_visible()
    expect(page).to_have_url(re.compile(rf"image={image['id']}$"))
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360


def test_on_a_phone_the_grid_comes_first_and_the_upload_form_is_one_tap_away(page: Page) -> None:
    api_upload(page, picture((200, 120, 40), size=(400, 300)), title="Already here")
    page.set_viewport_size({"width": 390, "height": 844})
    open_gallery(page)

    # The first screen: the first image whole, and the button that opens the form; the form itself is not
    # there, so the grid is not below it.
    expect(page.locator("#grid .card").first).to_be_in_viewport(ratio=1)
    toggle = page.locator("#open-upload")
    expect(toggle).to_have_accessible_name("Upload")
    expect(toggle).to_be_in_viewport(ratio=1)
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(page.get_by_label("Image file")).to_be_hidden()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390

    # One tap: the form, with the focus in its first field; Escape closes it and gives the focus back.
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_label("Image file")).to_be_in_viewport()
    expect(page.get_by_label("Image file")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_label("Image file")).to_be_hidden()
    expect(toggle).to_be_focused()

    # Upload from the sheet: it closes, and the list says so above the new image.
    toggle.click()
    choose_file(page, picture((40, 90, 200)))
    page.get_by_label("Title", exact=True).fill("From the phone")
    page.locator("#upload-button").click()
    expect(page.locator("#list-notice")).to_contain_text("Uploaded “From the phone”.")
    expect(page.get_by_label("Image file")).to_be_hidden()
    expect(card_titles(page)).to_have_text(["From the phone", "Already here"])
    expect(page.locator("#grid .card").first).to_be_in_viewport()


def test_an_upload_over_the_size_limit_shows_the_error_next_to_the_image_field(
    page: Page, settings: Any
) -> None:
    settings.IMAGE_MAX_UPLOAD_BYTES = 20_000
    open_gallery(page)
    choose_file(page, noise((100, 100)), "big.png")  # about 30 KB
    page.get_by_role("button", name="Upload").click()

    error = page.locator("#image-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("the largest accepted is 19.5 KB")
    expect(page.get_by_label("Image file")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Image file")).to_be_focused()
    expect(page.locator("#list-status")).to_have_text("No images yet: upload the first one.")


def test_the_servers_413_shows_next_to_the_image_field(page: Page, settings: Any) -> None:
    open_gallery(page)
    # The limit shrinks after the page was served (a restart with new settings): the server refuses.
    settings.IMAGE_MAX_UPLOAD_BYTES = 20_000
    choose_file(page, noise((100, 100)), "big.png")
    page.get_by_role("button", name="Upload").click()

    expect(page.locator("#image-error")).to_have_text("The upload is larger than the limit of 20000 bytes.")
    expect(page.get_by_label("Image file")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#upload-error")).to_be_hidden()


def test_a_file_that_is_not_an_image_shows_the_error_next_to_the_image_field(page: Page) -> None:
    open_gallery(page)
    choose_file(page, b"Just some notes, not a picture.\n", "notes.txt", "text/plain")
    page.get_by_label("Title", exact=True).fill("Notes")
    page.get_by_role("button", name="Upload").click()

    error = page.locator("#image-error")
    expect(error).to_be_visible()
    expect(error).not_to_be_empty()
    image_input = page.get_by_label("Image file")
    expect(image_input).to_have_attribute("aria-invalid", "true")
    expect(image_input).to_be_focused()
    # The message is the field's description, so a screen reader reads it on focus.
    assert "image-error" in (image_input.get_attribute("aria-describedby") or "")
    expect(page.locator("#title-error")).to_be_hidden()
    expect(page.get_by_label("Title", exact=True)).to_have_value("Notes")  # nothing typed is lost

    # Choosing another file clears the error.
    choose_file(page, picture(), "real.png")
    expect(error).to_be_hidden()


def test_an_upload_that_needs_an_api_key_asks_for_one_and_sends_it(page: Page, settings: Any) -> None:
    from rest_framework_api_key.models import APIKey

    settings.IMAGERY_AUTH = "write"
    _, key = APIKey.objects.create_key(name="gallery test")
    open_gallery(page)
    key_field = page.get_by_label("API key")
    expect(key_field).to_be_hidden()  # reads need no key: nobody is asked for one yet

    choose_file(page, picture())
    page.get_by_label("Title", exact=True).fill("Keyed")
    page.get_by_role("button", name="Upload").click()
    expect(key_field).to_be_focused()
    expect(page.locator("#key-error")).not_to_be_empty()

    key_field.fill("not-a-key")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#key-error")).to_have_text("The API key is not valid.")

    key_field.fill(key)
    page.get_by_role("button", name="Upload").click()
    expect(card_titles(page)).to_have_text(["Keyed"])
    # The key stays for this tab's next uploads, and for a reload.
    page.reload()
    expect(key_field).to_have_value(key)


def test_a_title_with_markup_is_shown_as_text_and_never_run(page: Page) -> None:
    title = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
    open_gallery(page)
    choose_file(page, picture())
    page.get_by_label("Title", exact=True).fill(title)
    page.get_by_role("button", name="Upload").click()

    expect(card_titles(page)).to_have_text([title])
    expect(page.locator("#upload-status")).to_contain_text(title)
    page.locator("#grid .card-link").first.click()
    expect(page.locator("#detail-title")).to_have_text(title)
    expect(page).to_have_title(f"{title} {DASH} Imagery")
    page.go_back()
    expect(card_titles(page)).to_have_text([title])

    assert page.evaluate("window.__xss") is None
    assert page.locator("script:not([src]), img[src='x']").count() == 0


def test_a_tile_shows_its_colour_and_placeholder_until_its_image_has_loaded(page: Page) -> None:
    import base64

    import thumbhash

    from images.models import Image

    sky = api_upload(
        page, scene(("#023e8a", "#48cae4"), "#d8f3dc", "#03045e"), title="Sky", filename="sky.jpg"
    )
    bare = api_upload(page, picture((200, 60, 60), size=(400, 300)), title="Older, colour only")
    Image.objects.filter(pk=bare["id"]).update(placeholder=None)
    # Every image's response (a rendition, or the stored file) is held back: the tiles are seen before
    # their images arrive.
    held: list[Any] = []
    images = re.compile(r"/media/images/|/images/\d+/file")
    page.route(images, lambda route: held.append(route))
    open_gallery(page)
    tiles = {title: page.locator(".card", has_text=title).locator(".thumb") for title in ("Sky", "Older")}
    expect(tiles["Sky"]).to_have_css("background-color", _css_rgb(sky["color"]))
    expect(tiles["Sky"]).to_have_css("background-image", re.compile(r'^url\("data:image/png;base64,'))
    expect(tiles["Older"]).to_have_css("background-color", _css_rgb(bare["color"]))
    expect(tiles["Older"]).to_have_css("background-image", "none")
    page.wait_for_function("n => document.querySelectorAll('#grid img').length === n", arg=2)
    assert len(held) >= 1
    assert tiles["Sky"].locator("img").evaluate("img => img.naturalWidth") == 0  # not arrived

    # What the tile shows is the placeholder's picture: its mean colour is the decoded ThumbHash's.
    shown = PILImage.open(io.BytesIO(tiles["Sky"].screenshot())).convert("RGB")
    w, h, rgba = thumbhash.thumb_hash_to_rgba(base64.b64decode(sky["placeholder"]))
    expected = PILImage.frombytes("RGBA", (w, h), rgba).convert("RGB")
    inner = shown.crop((4, 4, shown.width - 4, shown.height - 4))
    for got, want in zip(_mean(inner), _mean(expected), strict=True):
        assert abs(got - want) <= 16, (_mean(inner), _mean(expected))

    for route in held:
        route.continue_()
    page.unroute(images)
    image = tiles["Sky"].locator("img")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    # Once the image is in, the placeholder goes (a transparent image shows over the tile's own background).
    expect(tiles["Sky"]).to_have_css("background-image", "none")
    expect(tiles["Sky"]).not_to_have_class(re.compile(r"\bplaceholder\b"))


def _css_rgb(color: str) -> str:
    return f"rgb({int(color[1:3], 16)}, {int(color[3:5], 16)}, {int(color[5:7], 16)})"


def _mean(im: PILImage.Image) -> tuple[float, ...]:
    from PIL import ImageStat

    return tuple(ImageStat.Stat(im).mean)


def test_screenshot_of_the_gallery_for_the_readme(page: Page) -> None:
    """Saves docs/gallery.png, the README's picture of the page, from a gallery with a few images."""
    scenes = [
        ("Beach at dusk", ("#f7a072", "#6a4c93"), "#ffe29a", "#3d405b"),
        ("Alpine lake", ("#8ecae6", "#e0f4ff"), "#fff3b0", "#2a6f97"),
        ("Desert dunes", ("#ffd6a5", "#fdffb6"), "#ff924c", "#e09f3e"),
        ("Forest morning", ("#caffbf", "#f1faee"), "#ffe066", "#2d6a4f"),
        ("Harbour lights", ("#0b132b", "#3a506b"), "#f4d35e", "#1c2541"),
        ("Northern sky", ("#023e8a", "#48cae4"), "#d8f3dc", "#03045e"),
    ]
    for title, sky, sun, land in scenes:
        api_upload(page, scene(sky, sun, land), title=title, filename=f"{title}.jpg", width=480)
    open_gallery(page)
    expect(card_titles(page)).to_have_count(len(scenes))
    # Thumbnails load lazily: wait for those in view.
    page.wait_for_function(
        """() => [...document.querySelectorAll("#grid img")]
            .filter((img) => img.getBoundingClientRect().top < innerHeight)
            .every((img) => img.complete && img.naturalWidth > 0)"""
    )

    shot = PILImage.open(io.BytesIO(page.screenshot())).convert("RGB")
    # A palette of 256 colours keeps the PNG small, and a UI has few colours anyway.
    small = io.BytesIO()
    shot.quantize(colors=256).save(small, "PNG", optimize=True)
    assert len(small.getvalue()) <= SCREENSHOT_MAX_BYTES
    if not _looks_the_same(SCREENSHOT, shot):
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.write_bytes(small.getvalue())


def _looks_the_same(path: Path, shot: PILImage.Image) -> bool:
    """Whether the saved screenshot shows the same page. Chromium's rendering differs by a few pixels from
    run to run: rewriting the file for those would show as a change in git after every test run."""
    if not path.exists():
        return False
    saved = PILImage.open(path).convert("RGB")
    if saved.size != shot.size:
        return False
    changed = ImageChops.difference(saved, shot).convert("L").point(lambda v: 255 if v > 24 else 0)
    return changed.histogram()[255] <= shot.width * shot.height // 1000


def test_the_grid_shows_renditions_near_the_tiles_width_and_the_detail_a_large_one(page: Page) -> None:
    colours = ["#f7a072", "#8ecae6", "#ffd6a5", "#caffbf", "#0b132b", "#023e8a"]
    stored_bytes = 0
    for number in range(24):
        sky = (colours[number % 6], colours[(number + 1) % 6])
        image = api_upload(page, scene(sky, "#ffe29a", "#3d405b", size=(1600, 1200)), title=f"Scene {number}")
        stored_bytes += image["size"]
    open_gallery(page)
    expect(card_titles(page)).to_have_count(24)
    # Bring every lazy thumbnail into view, so that each loads.
    for thumbnail in page.locator("#grid img").all():
        thumbnail.scroll_into_view_if_needed()
    page.wait_for_function(
        """() => [...document.querySelectorAll("#grid img")]
            .every((img) => img.complete && img.naturalWidth > 0)"""
    )
    shown = page.evaluate(
        """() => [...document.querySelectorAll("#grid img")].map((img) => ({
            src: img.currentSrc, displayed: img.getBoundingClientRect().width }))"""
    )
    for thumbnail in shown:
        match = re.search(r"/images/\d+/file\?width=(\d+)$", thumbnail["src"])
        assert match, thumbnail  # a rendition, not the stored file
        assert int(match[1]) <= 2 * thumbnail["displayed"], thumbnail
    downloaded = page.evaluate(
        """() => performance.getEntriesByType("resource")
            .filter((entry) => entry.name.includes("/file?"))
            .reduce((total, entry) => total + entry.encodedBodySize, 0)"""
    )
    # 24 tiles: kilobytes in all, a small part of the stored files.
    assert 0 < downloaded < min(200 * 1024, stored_bytes / 10), (downloaded, stored_bytes)

    page.get_by_role("link", name=re.compile("Scene 0")).click()
    picture = page.locator("#detail").get_by_role("img", name="Scene 0")
    expect(picture).to_be_visible()
    assert picture.evaluate("img => img.decode().then(() => img.naturalWidth)") == 1600
    assert re.search(r"/images/\d+/file\?preset=large$", picture.evaluate("img => img.currentSrc"))


def test_thumbnails_fall_back_to_the_stored_file_when_reads_need_a_key(page: Page, settings: Any) -> None:
    image = api_upload(page, picture(size=(300, 200)), title="Private")
    settings.IMAGERY_AUTH = "all"
    from rest_framework_api_key.models import APIKey

    _, key = APIKey.objects.create_key(name="viewer")
    page.context.add_init_script(f"sessionStorage.setItem('imagery.apiKey', {key!r})")
    open_gallery(page)
    thumbnail = page.locator("#grid").get_by_role("img", name="Private")
    expect(thumbnail).to_be_visible()
    page.wait_for_function("""() => document.querySelector("#grid img").naturalWidth > 0""")
    assert thumbnail.evaluate("img => img.currentSrc") == image["url"]


def test_an_image_is_renamed_and_deleted_from_its_view(page: Page) -> None:
    api_upload(page, picture((10, 120, 10)), title="Keep me")
    image = api_upload(page, picture(size=(300, 200)), title="Wrong name")
    open_gallery(page)
    page.get_by_role("link", name=re.compile("Wrong name")).click()

    title = page.get_by_label("Change the title")
    expect(title).to_have_value("Wrong name")
    title.fill("  Right name ")
    page.get_by_role("button", name="Save title").click()
    expect(page.locator("#edit-title-status")).to_have_text("Title saved.")
    expect(page.get_by_role("heading", name="Right name")).to_be_visible()
    expect(page).to_have_title(f"Right name {DASH} Imagery")
    expect(title).to_have_value("Right name")

    # An empty title is refused next to the field, and nothing changes.
    title.fill("   ")
    page.get_by_role("button", name="Save title").click()
    expect(page.locator("#edit-title-error")).to_be_visible()
    assert page.request.get(f"/images/{image['id']}").json()["title"] == "Right name"

    # Someone else renames it meanwhile: saving is refused rather than overwriting their change.
    assert page.request.patch(f"/images/{image['id']}", data={"title": "Their name"}).status == 200
    title.fill("Mine again")
    page.get_by_role("button", name="Save title").click()
    expect(page.locator("#edit-title-error")).to_contain_text(
        "Someone changed this image since you opened it"
    )
    assert page.request.get(f"/images/{image['id']}").json()["title"] == "Their name"
    page.reload()
    expect(page.get_by_role("heading", name="Their name")).to_be_visible()

    # Deleting asks first; keeping it changes nothing.
    page.get_by_role("button", name="Delete this image…").click()
    dialog = page.get_by_role("dialog", name="Delete this image?")
    expect(dialog).to_contain_text("“Their name” will be deleted for good")
    dialog.get_by_role("button", name="Keep it").click()
    expect(dialog).to_be_hidden()
    assert page.request.get(f"/images/{image['id']}").status == 200

    page.get_by_role("button", name="Delete this image…").click()
    dialog.get_by_role("button", name="Delete", exact=True).click()
    expect(page.locator("#list-notice")).to_have_text("Deleted “Their name”.")
    expect(card_titles(page)).to_have_text(["Keep me"])
    assert page.request.get(f"/images/{image['id']}").status == 404
