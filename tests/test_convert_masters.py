"""`manage.py convert_masters`: JPEG masters stored progressive (before issue 22) are rewritten baseline
with the same pixels, their rows follow, the old file and its renditions go; run again, it only reads the
first bytes of each file; interrupted, it resumes."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from PIL import Image as PILImage
from PIL import ImageChops

from images import masters, storage
from images.exceptions import StorageUnavailable
from images.models import Image
from images.pixels.masters import is_progressive_jpeg
from tests.conftest import Client, name_of, put_stored_file, remove_stored_file, stored_names
from tests.images import encode, halves, meadow, quadrants


def progressive(data: bytes) -> bool:
    im = PILImage.open(io.BytesIO(data))
    return bool(im.info.get("progressive") or im.info.get("progression"))


def file_of(pk: int) -> tuple[str, int]:
    row = Image.objects.get(pk=pk)
    return row.file.name, row.size


def read(name: str) -> bytes:
    with storage.open_file(name) as file:
        return file.read()


def make_old(body: dict[str, Any]) -> str:
    """Store an image's master as the app did before issue 22 (progressive), its row pointing at it."""
    name = name_of(body)
    with PILImage.open(io.BytesIO(read(name))) as im:
        old = encode(im, "JPEG", quality="keep", subsampling="keep", optimize=True, progressive=True)
    old_name = storage.content_name(old, "jpg")
    put_stored_file(old_name, old)
    Image.objects.filter(file=name).update(file=old_name, size=len(old))
    remove_stored_file(name)
    return old_name


def clone(pk: int, title: str) -> int:
    row = Image.objects.get(pk=pk)
    row.pk, row.title, row.title_folded = None, title, title
    row.save()
    return row.pk


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("convert_masters", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def full_reads() -> Iterator[list[str]]:
    """The stored files the conversion reads whole, in order."""
    opened: list[str] = []
    real = storage.open_file

    def open_file(name: str, **kwargs: Any) -> Any:
        opened.append(name)
        return real(name, **kwargs)

    with mock.patch.object(masters.storage, "open_file", open_file):
        yield opened


def test_progressive_masters_become_baseline_with_the_same_pixels(
    api: Client, posted: Callable[..., dict[str, Any]], full_reads: list[str]
) -> None:
    photo = posted(meadow((800, 600)), fmt="JPEG", filename="meadow.jpg", title="photo")
    other = posted(quadrants((400, 300)), fmt="JPEG", filename="q.jpg", title="other")
    png = posted(halves((60, 30), (255, 0, 0), (0, 0, 255)), title="png")
    baseline = posted(meadow((320, 240)), fmt="JPEG", filename="new.jpg", title="new")
    old_name, old_other = make_old(photo), make_old(other)
    twin = clone(photo["id"], "seeded")
    before = PILImage.open(io.BytesIO(read(old_name))).convert("RGB")
    # A rendition of the old master, which the conversion removes with it.
    assert api.get(f"/images/{photo['id']}/file?width=320&format=webp").status_code == 200
    old_digest = storage.digest_of(old_name)
    assert any(n.startswith(f"renditions/{old_digest}/") for n in stored_names())

    full_reads.clear()
    out, err = run("--batch", "2")
    read_whole = list(full_reads)

    new_name, size = file_of(photo["id"])
    assert new_name != old_name and file_of(twin) == (new_name, size)
    response = api.get(f"/images/{photo['id']}/file")
    served = b"".join(response.streaming_content)
    assert response.status_code == 200 and len(served) == size == storage.size_of(new_name)
    assert not progressive(served)
    after = PILImage.open(io.BytesIO(served)).convert("RGB")
    assert after.size == before.size == (800, 600)
    # Same quantization tables: only rounding differs (58 dB on a photo); no pixel off by more than a few.
    assert max(high for _low, high in ImageChops.difference(before, after).getextrema()) <= 8
    assert not progressive(read(file_of(other["id"])[0]))
    names = stored_names()
    assert old_name not in names and old_other not in names
    assert not any(n.startswith(f"renditions/{old_digest}/") for n in names)
    # A rendition of the converted image renders from its new file.
    assert api.get(f"/images/{photo['id']}/file?width=320&format=webp").status_code == 200
    # The PNG and the master already baseline keep their files, and the latter was only looked at.
    assert file_of(png["id"])[0] == name_of(png) and file_of(baseline["id"])[0] == name_of(baseline)
    assert sorted(read_whole) == sorted([old_name, old_other])
    assert "2 files rewritten baseline for 3 images" in out and "1 already baseline." in out
    assert "convert_masters: 4 of 4 rows, done." in err

    full_reads.clear()
    out, _err = run()
    assert full_reads == []  # run again: the first bytes of each file, nothing more
    assert "0 files rewritten baseline for 0 images" in out and "3 already baseline." in out


def test_an_interrupted_conversion_resumes(
    api: Client, posted: Callable[..., dict[str, Any]], full_reads: list[str]
) -> None:
    first, second = (
        posted(meadow((300 + 20 * i, 200)), fmt="JPEG", filename="m.jpg", title=f"m{i}") for i in range(2)
    )
    old = [make_old(first), make_old(second)]
    real, calls = storage.store_as, []

    def store_fails_on_the_second_file(name: str, data: bytes, *, media_type: str) -> bool:
        calls.append(name)
        if len(set(calls)) == 2:
            raise StorageUnavailable("The file store is unavailable; nothing was saved.")
        return real(name, data, media_type=media_type)

    full_reads.clear()
    with (
        mock.patch.object(masters.storage, "store_as", store_fails_on_the_second_file),
        pytest.raises(CommandError, match=r"Run it again later: it resumes\.") as raised,
    ):
        run("--batch", "1")
    assert raised.value.returncode == 2
    assert full_reads == old
    assert file_of(first["id"])[0] != old[0] and file_of(second["id"])[0] == old[1]
    assert not progressive(read(file_of(first["id"])[0])) and progressive(read(old[1]))

    full_reads.clear()
    out, _err = run()
    assert full_reads == [old[1]]  # the converted one is only looked at
    assert "1 files rewritten baseline for 1 images" in out and "1 already baseline." in out
    assert not progressive(read(file_of(second["id"])[0])) and old[1] not in stored_names()


def test_a_missing_master_is_reported_and_the_others_converted(
    api: Client, posted: Callable[..., dict[str, Any]]
) -> None:
    lost, fine = (
        posted(meadow((300 + 20 * i, 200)), fmt="JPEG", filename="m.jpg", title=f"m{i}") for i in range(2)
    )
    lost_name = make_old(lost)
    make_old(fine)
    remove_stored_file(lost_name)

    with pytest.raises(CommandError, match="1 files could not be converted") as raised:
        run()
    assert raised.value.returncode == 1
    assert not progressive(read(file_of(fine["id"])[0]))
    assert file_of(lost["id"])[0] == lost_name
    # A row without its file fails the suite's row/file check: it goes, as an operator would remove it.
    Image.objects.filter(pk=lost["id"]).delete()


def test_progressive_is_told_from_the_first_bytes() -> None:
    pixels = meadow((64, 48))
    base, prog = encode(pixels, "JPEG"), encode(pixels, "JPEG", progressive=True)
    with_exif = encode(pixels, "JPEG", progressive=True, exif=b"Exif\x00\x00" + b"\x00" * 5000)
    assert is_progressive_jpeg(base[:1024]) is False
    assert is_progressive_jpeg(prog[:1024]) is True
    assert is_progressive_jpeg(with_exif[:8192]) is True
    assert is_progressive_jpeg(with_exif[:1024]) is None  # the frame header is further on
    assert is_progressive_jpeg(encode(pixels, "PNG")) is None
    assert is_progressive_jpeg(b"") is None


def test_a_master_whose_frame_header_is_past_the_first_bytes_is_read_whole_and_converted(
    api: Client, posted: Callable[..., dict[str, Any]]
) -> None:
    # No upload stores metadata, but a file put in the store by hand may carry 70 KB of it.
    body = posted(meadow((300, 200)), fmt="JPEG", filename="m.jpg")
    with PILImage.open(io.BytesIO(read(name_of(body)))) as im:
        exif = b"Exif\x00\x00" + b"\x00" * 60_000
        old = encode(im, "JPEG", quality="keep", progressive=True, exif=exif, comment=b"x" * 12_000)
    assert is_progressive_jpeg(old[: 64 * 1024]) is None
    old_name = storage.content_name(old, "jpg")
    put_stored_file(old_name, old)
    Image.objects.filter(pk=body["id"]).update(file=old_name, size=len(old))
    remove_stored_file(name_of(body))

    out, _err = run()

    assert "1 files rewritten baseline for 1 images" in out
    new = read(file_of(body["id"])[0])
    assert not progressive(new) and "comment" not in PILImage.open(io.BytesIO(new)).info
    assert len(new) < 40_000  # nothing of the metadata is left
