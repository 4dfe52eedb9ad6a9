"""The README's recipes for minting signed URLs (Python and Node), run as written against the server:
an app's backend can sign without calling Imagery, and the README stays true."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image as PILImage

from tests.private import keys, private, upload_as  # noqa: F401 (fixtures)

# ruff: noqa: F811 (the fixtures of tests/private.py, named as parameters)

README = Path(__file__).resolve().parent.parent / "README.md"
SECRET = "an-app-secret-of-enough-length"


def recipe(language: str) -> str:
    match = re.search(rf"<!-- recipe: {language} -->\n```\w+\n(.*?)```", README.read_text(), re.DOTALL)
    assert match, f"the README has no {language} recipe"
    return match[1]


@pytest.fixture
def app_key(settings: Any) -> str:
    settings.IMAGERY_SIGNING_KEYS = f"app:{SECRET}"
    return "app"


def fetch_size(api: Any, url: str) -> tuple[int, int]:
    parts = urlsplit(url)
    response = api.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 200, response.content
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return PILImage.open(io.BytesIO(body)).size


def test_the_python_recipe_mints_urls_the_server_accepts(api, private, app_key):
    namespace: dict[str, Any] = {}
    exec(recipe("python"), namespace)  # noqa: S102 (our README's own code)
    signed_url = namespace["signed_url"]
    assert fetch_size(api, signed_url("http://testserver", private["id"], app_key, SECRET)) == (40, 20)
    assert fetch_size(api, signed_url("http://testserver", private["id"], app_key, SECRET, width=20)) == (
        20,
        10,
    )
    webp = signed_url("http://testserver", private["id"], app_key, SECRET, width=20, format="webp")
    assert fetch_size(api, webp) == (20, 10)
    wrong = signed_url("http://testserver", private["id"], app_key, "not-the-secret-at-all")
    assert api.get(urlsplit(wrong).path + "?" + urlsplit(wrong).query).status_code == 403


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_the_node_recipe_mints_urls_the_server_accepts(api, private, app_key, tmp_path):
    script = tmp_path / "mint.js"
    calls = [
        ("http://testserver", private["id"], app_key, SECRET, {}),
        ("http://testserver", private["id"], app_key, SECRET, {"width": 20}),
        ("http://testserver", private["id"], app_key, SECRET, {"width": 20, "format": "webp"}),
        ("http://testserver", private["id"], app_key, SECRET, {"preset": "thumb"}),
    ]
    script.write_text(
        recipe("node") + f"\nfor (const args of {json.dumps(calls)}) console.log(signedUrl(...args));\n"
    )
    out = subprocess.run(["node", str(script)], capture_output=True, text=True, check=True, timeout=30)  # noqa: S603, S607
    urls = out.stdout.split()
    assert [fetch_size(api, url) for url in urls] == [(40, 20), (20, 10), (20, 10), (20, 20)]
