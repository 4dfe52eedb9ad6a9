"""Reading the list through the API: one page, its ids, and walking its links."""

from __future__ import annotations

from typing import Any

from django.test import Client

# The fields of an image object, as every operation answers it.
IMAGE_FIELDS = {
    "id",
    "url",
    "title",
    "width",
    "height",
    "format",
    "size",
    "created_at",
    "srcset",
    "presets",
    "placeholder",
    "color",
    "phash",
    "duplicate_of",
    "visibility",
    "focal",
    "metadata",
}


def get_list(api: Client, **params: Any) -> Any:
    return api.get("/images", params)


def ids(response: Any) -> list[int]:
    return [item["id"] for item in response.json()["results"]]


def local(url: str) -> str:
    assert url.startswith("http://testserver/"), url
    return url.removeprefix("http://testserver")


def walk(api: Client, first: str, link: str) -> list[list[int]]:
    """Follow `next` (or `previous`) links from `first`; the ids of every page seen, in order."""
    pages, url = [], first
    while url is not None:
        response = api.get(url)
        assert response.status_code == 200, response.content
        pages.append(ids(response))
        url = response.json()[link]
        url = local(url) if url else None
    return pages
