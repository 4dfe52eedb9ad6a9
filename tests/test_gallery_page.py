"""GET /: the gallery page is HTML whose every asset is served by the app itself (no CDN, no inline script).

What the page does is tested in a real browser (tests/e2e); these are the fast checks of what is served.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from django.http import HttpResponse
from django.test import Client


class _Assets(HTMLParser):
    """Collects the URLs a page loads or links to, and its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[str] = []
        self.linked: list[str] = []
        self.inline_scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in ("script", "img") and attributes.get("src"):
            self.loaded.append(attributes["src"] or "")
        elif tag == "script":
            self.inline_scripts += 1
        if tag == "link" and attributes.get("href"):
            self.loaded.append(attributes["href"] or "")
        if tag == "a" and attributes.get("href"):
            self.linked.append(attributes["href"] or "")


@pytest.fixture
def home(api: Client) -> HttpResponse:
    return api.get("/")


@pytest.fixture
def assets(home: HttpResponse) -> _Assets:
    parsed = _Assets()
    parsed.feed(home.content.decode())
    return parsed


def test_gallery_is_html_at_the_root(home: HttpResponse) -> None:
    response = home
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert b'<h2 id="upload-heading">Upload an image</h2>' in response.content


def test_gallery_assets_are_served_by_the_app(api: Client, assets: _Assets) -> None:
    assert assets.loaded, "the page loads its script and style sheet"
    assert {"/static/gallery/gallery.js", "/static/gallery/gallery.css"} <= set(assets.loaded)
    for url in assets.loaded:
        assert url.startswith("/static/"), url
        served = api.get(url)
        assert served.status_code == 200, url
        # Read to the end, as a browser would: the test client closes the response then.
        body = b"".join(served.streaming_content) if served.streaming else served.content
        assert body, url
    assert assets.inline_scripts == 0


def test_gallery_links_only_to_the_app_and_its_api_docs(assets: _Assets) -> None:
    assert all(url.startswith(("/", "#")) for url in assets.linked), assets.linked
    assert {"/api/docs/", "/api/redoc/", "/api/schema/"} <= set(assets.linked)


def test_gallery_has_a_content_security_policy_without_inline_script(home: HttpResponse) -> None:
    response = home
    policy = dict(
        directive.strip().split(" ", 1) for directive in response["Content-Security-Policy"].split(";")
    )
    assert policy["script-src"] == "'self'"
    assert policy["default-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_gallery_tells_the_script_where_the_api_is_and_its_limits(home: HttpResponse, settings: Any) -> None:
    html = home.content.decode()
    assert 'data-api-url="/images"' in html
    assert f'data-max-upload-bytes="{settings.IMAGE_MAX_UPLOAD_BYTES}"' in html
    assert re.search(rf'id="width-input"[^>]*max="{settings.IMAGE_MAX_DIMENSION}"', html)


def test_post_to_the_gallery_is_405_problem(api: Client) -> None:
    response = api.post("/")
    assert response.status_code == 405
    assert response["Content-Type"] == "application/problem+json"
    assert response["Allow"] == "GET, HEAD"


def test_gallery_loads_the_thumbhash_decoder_from_the_app(api: Client, home: HttpResponse) -> None:
    # npm's thumbhash, which `make install` copies into the static files: a dependency, not a CDN's.
    found = re.search(r'data-thumbhash-url="([^"]+)"', home.content.decode())
    assert found, "the page names the ThumbHash decoder's module"
    url = found.group(1)
    assert url == "/static/gallery/vendor/thumbhash/thumbhash.js"
    served = api.get(url)
    assert served.status_code == 200, "run `make install` (npm ci) to build the gallery's assets"
    body = b"".join(served.streaming_content) if served.streaming else served.content
    assert b"export function thumbHashToDataURL" in body


def _body(response: HttpResponse) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_gallery_loads_tus_js_client_from_the_app(api: Client, assets: _Assets) -> None:
    # npm's tus-js-client, pinned at 4.3.1: its browser bundle, copied by `make install` like thumbhash.
    url = "/static/gallery/vendor/tus-js-client/tus.min.js"
    assert url in assets.loaded
    served = api.get(url)
    assert served.status_code == 200, "run `make install` (npm ci) to build the gallery's assets"
    assert b".tus=" in _body(served)
    package = api.get("/static/gallery/vendor/tus-js-client/package.json")
    assert b'"version": "4.3.1"' in _body(package)


def test_every_module_the_scripts_import_is_served(api: Client) -> None:
    # No build step: the browser follows each `import ... from "./x.js"` itself.
    seen: set[str] = set()
    todo = ["gallery.js", "upload-link.js", "direct-upload.js"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        served = api.get(f"/static/gallery/{name}")
        assert served.status_code == 200, name
        todo += re.findall(r'^import [^;]+ from "\./([\w-]+\.js)";$', _body(served).decode(), re.MULTILINE)
    assert {"api.js", "resumable.js", "detail-extras.js", "upload-sheet.js"} <= seen


@pytest.mark.parametrize("path", ["/upload-link", "/u"])
def test_the_upload_link_pages_are_html_under_the_same_policy(api: Client, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert response["Content-Security-Policy"] == api.get("/")["Content-Security-Policy"]
    parsed = _Assets()
    parsed.feed(response.content.decode())
    assert parsed.inline_scripts == 0
    for url in parsed.loaded:
        assert url.startswith("/static/"), url
        assert api.get(url).status_code == 200, url
    refused = api.post(path)
    assert refused.status_code == 405
    assert refused["Content-Type"] == "application/problem+json"


def test_the_link_page_sends_no_referrer(api: Client) -> None:
    # Its address holds the upload URL (in the fragment, which browsers never send; and nothing else leaks).
    assert api.get("/u")["Referrer-Policy"] == "no-referrer"


def test_the_link_page_offers_only_the_lifetimes_the_server_allows(api: Client, settings: Any) -> None:
    settings.UPLOAD_URL_MAX_TTL = 3600
    html = api.get("/upload-link").content.decode()
    assert re.findall(r'<option value="(\d+)"', html) == ["600", "1800", "3600"]
    assert '<option value="1800" selected>' in html
