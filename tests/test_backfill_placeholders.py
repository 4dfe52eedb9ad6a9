"""`manage.py backfill_placeholders`: the images stored before placeholders existed get them, from their
stored file read once, in batches; interrupted, it resumes; it never overwrites what uploads wrote."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from images import backfill, storage
from images.models import Image
from tests.conftest import name_of, put_stored_file, remove_stored_file
from tests.images import BLUE, GREEN, RED, close, decoded, halves, meadow, rgb_of

# A placeholder and colour no computation makes: rows holding them must keep them.
SENTINEL = ("AAAAAAAAAAAAAAAAAAAAAAAAAAAA", "#123456")


def older(*bodies: dict[str, Any]) -> None:
    """Make these images look uploaded before placeholders existed."""
    Image.objects.filter(pk__in=[b["id"] for b in bodies]).update(placeholder=None, color=None)


def clone(body: dict[str, Any], title: str) -> int:
    """A row sharing the file of `body`'s image, without placeholder (as seed_images makes them)."""
    row = Image.objects.get(pk=body["id"])
    row.pk, row.title, row.title_folded, row.placeholder, row.color = None, title, title, None, None
    row.save()
    return row.pk


def values(pk: int) -> tuple[str | None, str | None]:
    row = Image.objects.get(pk=pk)
    return row.placeholder, row.color


@pytest.fixture
def reads() -> Iterator[list[str]]:
    """The stored files the backfill opens, in order."""
    opened: list[str] = []
    real = storage.open_file

    def open_file(name: str) -> Any:
        opened.append(name)
        return real(name)

    with mock.patch.object(backfill.storage, "open_file", open_file):
        yield opened


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("backfill_placeholders", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_backfill_fills_older_rows_from_their_files_and_leaves_the_others(
    api: Client, posted: Callable[..., dict[str, Any]], reads: list[str]
) -> None:
    current = posted(halves((60, 30), GREEN, GREEN), title="new")
    Image.objects.filter(pk=current["id"]).update(placeholder=SENTINEL[0], color=SENTINEL[1])
    png = posted(halves((400, 200), RED, BLUE), title="png")
    jpeg = posted(meadow(), fmt="JPEG", filename="meadow.jpg", title="jpeg")
    older(png, jpeg)
    sharing = [clone(png, f"seeded {i}") for i in range(3)]

    out, err = run("--batch", "2")

    # The PNG's pixels are stored losslessly: the backfill finds exactly what the upload computed.
    for pk in [png["id"], *sharing]:
        assert values(pk) == (png["placeholder"], png["color"])
    placeholder, color = values(jpeg["id"])
    assert color is not None and placeholder is not None
    assert close(rgb_of(color), rgb_of(jpeg["color"]), 12), (color, jpeg["color"])
    assert decoded(placeholder).size == decoded(jpeg["placeholder"]).size
    assert values(current["id"]) == SENTINEL  # had them: not read, not touched
    assert sorted(reads) == sorted([name_of(png), name_of(jpeg)])  # each file once, for five rows
    assert "5 images filled, 2 stored files read." in out
    assert "backfill_placeholders: 5 of 5 rows, done." in err
    assert backfill.lacking().count() == 0


def test_backfill_with_nothing_to_do_reads_nothing(
    api: Client, posted: Callable[..., dict[str, Any]], reads: list[str]
) -> None:
    posted(halves((60, 30), RED, BLUE))
    out, _err = run()
    assert reads == []
    assert "0 images filled, 0 stored files read." in out


def test_backfill_reports_rows_whose_file_is_missing_or_broken_and_fills_the_rest(
    api: Client, posted: Callable[..., dict[str, Any]]
) -> None:
    lost, broken, fine = (
        posted(halves((40, 20), c, c), title=t) for c, t in [(RED, "a"), (GREEN, "b"), (BLUE, "c")]
    )
    older(lost, broken, fine)
    remove_stored_file(name_of(lost))
    # The broken file: its name, bytes that do not decode (a disk that went bad).
    remove_stored_file(name_of(broken))
    put_stored_file(name_of(broken), b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)

    with pytest.raises(CommandError, match="2 rows were left without a placeholder") as raised:
        run()
    assert raised.value.returncode == 1
    assert values(fine["id"]) == (fine["placeholder"], fine["color"])
    assert values(lost["id"]) == (None, None) and values(broken["id"]) == (None, None)
    # Rows without their file fail the suite's row/file check: they go, as an operator would remove them.
    Image.objects.filter(pk__in=[lost["id"], broken["id"]]).delete()


def test_an_interrupted_backfill_resumes_where_it_stopped_reading_each_file_once(
    api: Client, posted: Callable[..., dict[str, Any]], reads: list[str]
) -> None:
    colours = [(255, 0, 0), (0, 160, 0), (0, 0, 255), (250, 200, 0), (120, 0, 160)]
    bodies = [posted(halves((80, 40), c, c), title=f"image {i}") for i, c in enumerate(colours)]
    older(*bodies)
    real_preview = backfill.pipeline.stored_summary
    calls = 0

    def stopped_on_the_fourth_file(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise KeyboardInterrupt  # the operator's Ctrl-C, in the middle of the second batch
        return real_preview(*args, **kwargs)

    with (
        mock.patch.object(backfill.pipeline, "stored_summary", stopped_on_the_fourth_file),
        pytest.raises(KeyboardInterrupt),
    ):
        run("--batch", "2")
    # The first batch was written; the second, in flight, was not.
    done = [b for b in bodies if values(b["id"]) != (None, None)]
    assert [b["id"] for b in done] == [bodies[0]["id"], bodies[1]["id"]]
    assert len(reads) == 4

    reads.clear()
    out, _err = run("--batch", "2")
    assert sorted(reads) == sorted(name_of(b) for b in bodies[2:])
    assert "3 images filled, 3 stored files read." in out
    for body in bodies:
        assert values(body["id"]) == (body["placeholder"], body["color"])


def test_backfill_never_overwrites_what_was_written_while_it_ran(
    api: Client, posted: Callable[..., dict[str, Any]]
) -> None:
    first, second = posted(halves((40, 20), RED, RED)), posted(halves((40, 20), BLUE, BLUE))
    older(first, second)
    real = backfill._describe_stored

    def meanwhile(name: str) -> Any:
        # While the batch's files are read, another writer (a second backfill, a future PATCH) fills a
        # row of the batch: what it wrote stays.
        Image.objects.filter(pk=second["id"]).update(placeholder=SENTINEL[0], color=SENTINEL[1])
        return real(name)

    with mock.patch.object(backfill, "_describe_stored", meanwhile):
        result = backfill.backfill_placeholders(batch=2)
    assert values(second["id"]) == SENTINEL
    assert values(first["id"]) == (first["placeholder"], first["color"])
    assert result.filled == 1


def test_backfill_refuses_a_batch_below_one(db: None) -> None:
    with pytest.raises(CommandError, match="--batch"):
        run("--batch", "0")


def test_backfill_on_an_animation_uses_its_first_frame(
    api: Client, posted: Callable[..., dict[str, Any]]
) -> None:
    from tests.images import encode

    frames = [halves((100, 50), RED, RED), halves((100, 50), BLUE, BLUE)]
    body = posted(
        encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100), filename="a.gif"
    )
    older(body)
    run()
    assert values(body["id"]) == (body["placeholder"], body["color"])
    assert close(rgb_of(body["color"]), RED, 10)
