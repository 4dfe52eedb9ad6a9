"""`manage.py seed_images`: realistic rows, in batches, pointing at a few real stored files."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from images import storage
from images.models import Image
from images.selectors import image_count
from images.titles import fold


def seed(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("seed_images", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_seed_adds_exactly_count_rows_in_batches(db: None) -> None:
    out, err = seed("--count", "57", "--batch", "10", "--seed", "1")
    assert Image.objects.count() == 57
    assert image_count() == 57
    assert "Added 57 images" in out
    assert "57 of 57 rows, done." in err


def test_seeded_rows_point_at_a_few_real_stored_files(db: None) -> None:
    seed("--count", "40", "--seed", "2")
    names = set(Image.objects.values_list("file", flat=True))
    assert 1 < len(names) <= 4
    for name in names:
        row = Image.objects.filter(file=name).first()
        assert row is not None
        assert storage.size_of(name) == row.size


def test_seeded_titles_are_folded_and_varied(db: None) -> None:
    seed("--count", "300", "--seed", "3")
    rows = list(Image.objects.values_list("title", "title_folded"))
    assert all(folded == fold(title) for title, folded in rows)
    assert len({title for title, _ in rows}) > 200


def test_seeded_titles_have_a_common_word(db: None) -> None:
    seed("--count", "2000", "--seed", "4")
    # The seed vocabulary's first word is in well over 10 % of the titles (the benchmark's common word).
    assert Image.objects.filter(title_folded__contains="beach").count() > 200


def test_seeded_rows_are_older_than_now_and_list_newest_first(api: Client) -> None:
    seed("--count", "30", "--seed", "5")
    body = api.get("/images", {"page_size": 100}).json()
    assert body["count"] == 30
    dates = [item["created_at"] for item in body["results"]]
    assert dates == sorted(dates, reverse=True)


def test_seed_zero_adds_nothing(db: None) -> None:
    seed("--count", "0")
    assert Image.objects.count() == 0


@pytest.mark.parametrize("args", [("--count", "-1"), ("--count", "5", "--batch", "0")])
def test_seed_rejects_bad_numbers(db: None, args: Any) -> None:
    with pytest.raises(CommandError):
        seed(*args)


def test_seeded_rows_have_their_files_placeholder_and_colour(api: Client) -> None:
    seed("--count", "40")
    answered = api.get("/images", {"page_size": 100}).json()["results"]
    assert len(answered) == 40
    by_file = {}
    for item in answered:
        assert item["placeholder"] and item["color"]
        by_file.setdefault(item["url"], set()).add((item["placeholder"], item["color"]))
    assert all(len(values) == 1 for values in by_file.values())  # one file, one placeholder and colour


def test_seed_with_metadata_gives_every_row_a_user_and_an_album(api: Client) -> None:
    seed("--count", "30", "--seed", "5", "--metadata")
    # The four uploaded samples have none; the n-th row after them, user u<n> and album a<n % 97>.
    seeded = [image for image in Image.objects.order_by("id") if image.metadata]
    assert len(seeded) == 26
    assert seeded[3].metadata == {"user": "u3", "album": "a3"}
    response = api.get("/images", {"metadata.user": "u3"})
    assert [item["id"] for item in response.json()["results"]] == [seeded[3].pk]
