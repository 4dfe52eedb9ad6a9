"""The gallery's single view and upload form for issue 26: "Similar images" (GET /images?similar_to=ID), the
upload that duplicates an image already here (`duplicate_of`), and the focal point set by clicking the
picture (PATCH focal), with the `thumb` crop beside it following.

They skip, saying so, on a server whose image objects have no `phash` (duplicates) or `focal` (crops) yet.
"""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image as PILImage
from PIL import ImageDraw, ImageStat
from playwright.sync_api import Page, expect

from tests.e2e.support import api_upload, choose_file, encode, noise, open_gallery, require_field, scene

pytestmark = pytest.mark.e2e

DUSK = (("#f7a072", "#6a4c93"), "#ffe29a", "#3d405b")


def test_the_single_view_lists_similar_images_and_not_others(page: Page) -> None:
    original = api_upload(page, scene(*DUSK), title="Dusk", filename="dusk.jpg")
    require_field(original, "phash", "perceptual hashes")
    api_upload(page, scene(*DUSK, size=(240, 180)), title="Dusk, smaller", filename="small.jpg")
    api_upload(page, noise((240, 180)), title="Static")

    open_gallery(page, f"?image={original['id']}")
    similar = page.get_by_role("region", name="Similar images")
    expect(similar).to_be_visible()
    # The smaller copy, not the picture itself, and not the unrelated one.
    expect(similar.locator(".card-title")).to_have_text(["Dusk, smaller"])
    similar.get_by_role("link", name=re.compile("Dusk, smaller")).click()
    expect(page.get_by_role("heading", name="Dusk, smaller")).to_be_visible()
    expect(page.get_by_role("region", name="Similar images").locator(".card-title")).to_have_text(["Dusk"])


def test_the_upload_form_says_when_the_file_is_already_here(page: Page) -> None:
    content = scene(*DUSK)
    first = api_upload(page, content, title="First copy", filename="dusk.jpg")
    require_field(first, "phash", "duplicate detection")
    open_gallery(page)
    choose_file(page, content, filename="dusk-again.jpg", mime="image/jpeg")
    page.get_by_label("Title", exact=True).fill("Second copy")
    page.get_by_role("button", name="Upload").click()

    status = page.locator("#upload-status")
    expect(status).to_contain_text(
        f"Uploaded “Second copy”. View it This file is already here as #{first['id']}."
    )
    status.get_by_role("link", name=f"#{first['id']}").click()
    expect(page.get_by_role("heading", name="First copy")).to_be_visible()


def _mean(content: bytes) -> tuple[float, ...]:
    """The mean colour of a picture."""
    return tuple(ImageStat.Stat(PILImage.open(io.BytesIO(content)).convert("RGB")).mean)


def test_clicking_the_picture_sets_the_focal_point_and_the_thumb_crop_follows(page: Page) -> None:
    # A flat grey left third, then blue with white stripes: the default crop (centre, or attention, which
    # looks for edges and colour) is blue, the crop around a point in the grey is grey.
    im = PILImage.new("RGB", (600, 200), (30, 60, 220))
    draw = ImageDraw.Draw(im)
    for x in range(200, 600, 40):
        draw.rectangle((x, 0, x + 9, 199), fill=(255, 255, 255))
    draw.rectangle((0, 0, 199, 199), fill=(128, 128, 128))
    image = api_upload(page, encode(im), title="Grey on the left")
    require_field(image, "focal", "focal points")

    open_gallery(page, f"?image={image['id']}")
    thumb = page.get_by_role("img", name=re.compile("thumb crop"))
    expect(thumb).to_be_visible()
    before = thumb.get_attribute("src")
    assert before
    red, _, blue = _mean(page.request.get(before).body())
    assert blue - red > 60

    # The owner clicks the grey part, a tenth of the way across.
    box = page.locator("#detail-image").bounding_box()
    assert box
    page.mouse.click(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.5)
    expect(page.get_by_role("status").filter(has_text="Focal point saved")).to_be_visible()
    expect(page.locator("#focal-marker")).to_be_visible()

    # The server keeps it, and the thumb beside the picture is a new crop: the grey part's.
    focal = page.request.get(f"/images/{image['id']}").json()["focal"]
    assert focal["x"] == pytest.approx(0.1, abs=0.03)
    assert focal["y"] == pytest.approx(0.5, abs=0.03)
    expect(thumb).not_to_have_attribute("src", before)
    page.wait_for_function("() => document.getElementById('focal-thumb').naturalWidth > 0")
    after = thumb.get_attribute("src")
    assert after
    red, green, blue = _mean(page.request.get(after).body())
    assert max(red, green, blue) - min(red, green, blue) < 20

    # From the keyboard: the arrow keys move the point, Enter saves it.
    picture = page.locator("#detail-picture")
    picture.focus()
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    expect(thumb).not_to_have_attribute("src", after)
    assert page.request.get(f"/images/{image['id']}").json()["focal"]["x"] == pytest.approx(0.3, abs=0.03)
