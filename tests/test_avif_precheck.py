"""An AVIF's pre-check agrees with what its decoder allocates: the AV1 data's frame size, not the box's.

libavif hands the AV1 data to dav1d, which decodes a frame at the size the AV1 sequence header (and a
frame header, where it overrides it) declares, whatever the container's `ispe` box says; Pillow then
reports the box's size. The hostile files here are made as an attacker would: a real AVIF, encoded by
Pillow, with its boxes edited (the `ispe` made 16x16, the item's data pointed at AV1 headers written
bit by bit). HEIC/HEIF is checked the same way: libheif holds the coded size to the declared one itself.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import AvifImagePlugin, Image

from images.pixels.avif_boxes import avif_canvases
from images.pixels.errors import ImageTooLarge, InvalidImage
from images.pixels.limits import Canvas
from tests.conftest import assert_nothing_stored
from tests.images import encode, quadrants
from tests.problems import assert_problem

# Box editing: walk an ISOBMFF file's boxes and rewrite fields in place.

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"iprp", b"ipco"}


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, body start, end) of every box, depth first."""
    end = len(data) if end is None else end
    while start < end:
        size, kind = struct.unpack_from(">I4s", data, start)
        yield kind, start + 8, start + size
        if kind in CONTAINERS:
            yield from boxes(data, start + 8, start + size)
        elif kind == b"meta":
            yield from boxes(data, start + 12, start + size)
        start += size


def body(data: bytes, kind: bytes) -> int:
    """Where the first box of `kind` starts its body."""
    return next(start for found, start, _ in boxes(data) if found == kind)


def declare(data: bytes, width: int, height: int) -> bytes:
    """Every `ispe` (and a track's header) made to declare `width` x `height`; the AV1 data kept."""
    edited = bytearray(data)
    for kind, start, end in boxes(data):
        if kind == b"ispe":
            edited[start + 4 : start + 12] = struct.pack(">II", width, height)
        elif kind == b"tkhd":
            edited[end - 8 : end] = struct.pack(">II", width << 16, height << 16)
    return bytes(edited)


def with_item_data(data: bytes, stream: bytes) -> bytes:
    """The primary item's data replaced by `stream`, appended in a new `mdat` (its `iloc` extent
    rewritten in place: Pillow writes 4-byte offsets and lengths, one extent)."""
    edited = bytearray(data)
    iloc = body(data, b"iloc")
    assert data[iloc + 4 : iloc + 6] == b"\x44\x00", "4-byte offsets and lengths, no base offset"
    extent = iloc + 4 + 2 + 2 + 2 + 2 + 2  # sizes, count, item, data reference, extent count
    edited[extent : extent + 8] = struct.pack(">II", len(data) + 8, len(stream))
    return bytes(edited) + struct.pack(">I4s", 8 + len(stream), b"mdat") + stream


class Bits:
    """An AV1 header written bit by bit, most significant first."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def put(self, value: int, count: int) -> Bits:
        self.bits += [(value >> (count - 1 - i)) & 1 for i in range(count)]
        return self

    def bytes(self) -> bytes:
        padded = self.bits + [0] * (-len(self.bits) % 8) + [0] * 64  # the rest of the header, zeros
        return bytes(int("".join(map(str, padded[i : i + 8])), 2) for i in range(0, len(padded), 8))


def obu(kind: int, payload: bytes) -> bytes:
    assert len(payload) < 128
    return bytes([kind << 3 | 0x2, len(payload)]) + payload


def sequence_header(width: int, height: int, *, bits: int = 14) -> bytes:
    """A full (not reduced) sequence header: frame headers may override the frame size."""
    header = Bits().put(0, 3).put(0, 1).put(0, 1)  # profile, still picture, reduced
    header.put(0, 1).put(0, 1).put(0, 5)  # no timing info, no display model, one operating point
    header.put(0, 12).put(0, 5)  # its layers, its level (no tier bit)
    header.put(bits - 1, 4).put(bits - 1, 4).put(width - 1, bits).put(height - 1, bits)
    header.put(0, 1).put(0, 3).put(0, 4).put(0, 1)  # frame ids, tools, order hint
    header.put(1, 1).put(1, 1)  # screen content tools and integer MVs chosen per frame
    return obu(1, header.bytes())


def key_frame_header(*, override: bool) -> bytes:
    header = Bits().put(0, 1).put(0, 2).put(1, 1)  # not an existing frame; a key frame, shown
    header.put(0, 1).put(0, 1)  # CDF updates on; no screen content tools
    header.put(int(override), 1)  # frame_size_override_flag
    if override:
        header.put(16383, 14).put(16383, 14)  # a 16384x16384 frame
    return obu(3, header.bytes())


def peak_memory(tmp_path: Path, data: bytes, name: str) -> dict[str, Any]:
    """A render at the default limits in a fresh process: the peak resident memory it adds (VmHWM)."""
    source = tmp_path / name
    source.write_bytes(data)
    result = subprocess.run(  # noqa: S603 (our own module, our arguments)
        [sys.executable, "-m", "tests.peak_memory", str(source), "{}", "{}"],
        capture_output=True,
        check=True,
        cwd=django_settings.BASE_DIR,
        timeout=300,
    )
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def big_frame_declared_small() -> bytes:
    """The file of issue #20.1's AVIF case: 8000x8000 AV1 data, its boxes saying 16x16 (about 1 KB)."""
    real = encode(Image.new("RGB", (8000, 8000), (200, 30, 40)), "AVIF", speed=10, quality=30)
    return declare(real, 16, 16)


def refuse_to_decode(self: Any, *args: Any, **kwargs: Any) -> None:
    raise AssertionError("the AV1 data reached the decoder")


def test_av1_frame_larger_than_its_box_is_a_400(upload, monkeypatch, big_frame_declared_small) -> None:
    monkeypatch.setattr(AvifImagePlugin.AvifImageFile, "load", refuse_to_decode)
    response = upload(big_frame_declared_small, filename="small.avif")
    body = assert_problem(response, 400, field="image", code="invalid_image")
    assert "8000x8000" in json.dumps(body)
    assert_nothing_stored()


def test_av1_frame_larger_than_its_box_costs_no_memory(tmp_path, big_frame_declared_small) -> None:
    # Before the pre-check read the AV1 data: accepted, after about 140 MB.
    measured = peak_memory(tmp_path, big_frame_declared_small, "small.avif")
    assert measured["error"] == "InvalidImage"
    assert measured["peak_bytes"] <= 32 * 2**20


def test_a_frame_header_overriding_the_size_is_a_413(upload, monkeypatch) -> None:
    # The sequence header says 16x16, as the box does; the key frame's header asks for 16384x16384,
    # which dav1d takes (it does not hold an override to the maximum).
    monkeypatch.setattr(AvifImagePlugin.AvifImageFile, "load", refuse_to_decode)
    small = encode(Image.new("RGB", (16, 16)), "AVIF")
    stream = sequence_header(16, 16) + key_frame_header(override=True)
    response = upload(with_item_data(small, stream), filename="override.avif")
    body = assert_problem(response, 413, field="image", code="image_too_large")
    assert "16384x16384" in json.dumps(body)
    assert_nothing_stored()


def test_frames_at_the_sequence_size_are_that_size() -> None:
    small = encode(Image.new("RGB", (16, 16)), "AVIF")
    stream = sequence_header(16, 16) + key_frame_header(override=False)
    assert avif_canvases(io.BytesIO(with_item_data(small, stream)), max_samples=10) == [
        Canvas(16, 16, frames=1)
    ]


def test_animation_frames_are_counted_at_their_coded_size() -> None:
    # Every box says 16x16; the track's samples hold 300x200 frames: the track is checked at those.
    frames = [quadrants((300, 200)).rotate(180 * i) for i in range(3)]
    real = encode(frames[0], "AVIF", save_all=True, append_images=frames[1:], speed=10)
    hostile = declare(real, 16, 16)
    with pytest.raises(InvalidImage, match="300x200"):
        avif_canvases(io.BytesIO(hostile), max_samples=10)  # the primary item: its ispe
    assert Canvas(300, 200, frames=3) in avif_canvases(io.BytesIO(real), max_samples=10)
    with pytest.raises(ImageTooLarge, match="3 frames"):
        avif_canvases(io.BytesIO(real), max_samples=2)


def test_av1_data_without_a_sequence_header_is_a_400(upload) -> None:
    small = encode(Image.new("RGB", (16, 16)), "AVIF")
    response = upload(with_item_data(small, key_frame_header(override=False)), filename="x.avif")
    assert_problem(response, 400, field="image", code="invalid_image")
    assert_nothing_stored()


def test_av1_data_of_countless_empty_obus_is_a_400(upload) -> None:
    # Walking an OBU costs about a microsecond: 50 MB of two-byte ones would hold a decode slot for half
    # a minute. No real image has a hundred thousand.
    small = encode(Image.new("RGB", (16, 16)), "AVIF")
    stream = sequence_header(16, 16) + obu(15, b"") * 100_001  # padding OBUs
    with pytest.raises(InvalidImage, match="more OBUs"):
        avif_canvases(io.BytesIO(with_item_data(small, stream)), max_samples=10)
    assert_problem(upload(with_item_data(small, stream), filename="x.avif"), 400, code="invalid_image")
    assert_nothing_stored()


@pytest.mark.parametrize(
    "image",
    [
        quadrants((64, 48)),
        quadrants((63, 47), "RGBA"),
        quadrants((1001, 777)),
    ],
    ids=["still", "alpha", "odd size"],
)
def test_normal_avifs_still_upload(upload, image: Image.Image) -> None:
    response = upload(encode(image, "AVIF"), filename="normal.avif")
    assert response.status_code == 201, response.content
    assert (response.json()["width"], response.json()["height"]) == image.size


def test_normal_animated_avif_still_uploads(upload) -> None:
    frames = [quadrants((65, 47), "RGBA").rotate(90 * i, expand=False) for i in range(4)]
    data = encode(frames[0], "AVIF", save_all=True, append_images=frames[1:], duration=80)
    response = upload(data, filename="animated.avif")
    assert response.status_code == 201, response.content
    assert (response.json()["width"], response.json()["height"]) == (65, 47)


LIBAVIF = Path(__file__).parent / "fixtures" / "libavif"


def test_a_grid_with_alpha_tiles_still_uploads(upload) -> None:
    # A real file (tests/fixtures/libavif/README.md): two 80x64 colour tiles make the 80x80 grid, and each
    # has its own alpha item. Every tile is checked at its own size; the grid at the grid's.
    data = (LIBAVIF / "color_grid_alpha_nogrid.avif").read_bytes()
    assert sorted(avif_canvases(io.BytesIO(data), max_samples=10), key=str) == [
        Canvas(80, 64, frames=1)
    ] * 4 + [Canvas(80, 80, frames=1)]
    response = upload(data, filename="grid.avif")
    assert response.status_code == 201, response.content
    assert (response.json()["width"], response.json()["height"]) == (80, 80)


@settings(max_examples=25, deadline=None)
@given(
    width=st.integers(1, 90),
    height=st.integers(1, 90),
    mode=st.sampled_from(["RGB", "RGBA", "L"]),
    frames=st.integers(1, 3),
)
def test_the_precheck_reports_the_coded_size(width: int, height: int, mode: str, frames: int) -> None:
    images = [quadrants((width, height), mode).rotate(90 * i) for i in range(frames)]
    data = encode(images[0], "AVIF", save_all=True, append_images=images[1:], speed=10)
    reported = avif_canvases(io.BytesIO(data), max_samples=10)
    assert {(canvas.width, canvas.height) for canvas in reported} == {(width, height)}
    assert {canvas.frames for canvas in reported} == ({1} if frames == 1 else {1, frames})
    assert Image.open(io.BytesIO(data)).size == (width, height)


AVIF_SEEDS = [
    encode(quadrants((48, 32)), "AVIF"),
    encode(quadrants((48, 32), "RGBA"), "AVIF"),
    encode(
        quadrants((48, 32), "RGBA"),
        "AVIF",
        save_all=True,
        append_images=[quadrants((48, 32), "RGBA").rotate(180)],
    ),
]


@st.composite
def mutated_avifs(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(AVIF_SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(1, len(data)))])


@settings(max_examples=1500, deadline=None)
@given(mutated_avifs())
def test_the_precheck_refuses_cleanly_or_reports_a_size(data: bytes) -> None:
    # Only our own two refusals, never a crash (a 500), whatever the bytes (sizes, counts, offsets).
    try:
        reported = avif_canvases(io.BytesIO(data), max_samples=10)
    except (InvalidImage, ImageTooLarge):
        return
    assert reported and all(canvas.width >= 1 and canvas.height >= 1 for canvas in reported)


# HEIC/HEIF: libheif refuses a coded image larger than the declared one before it allocates it (a
# security limit it sets from the `ispe`), and one that differs at all after decoding.


def big_heic_declared_small() -> bytes:
    real = encode(Image.new("RGB", (1024, 1024), (200, 30, 40)), "HEIF", quality=10)
    return declare(real, 16, 16)


def test_heic_frame_larger_than_its_box_is_a_400(upload) -> None:
    response = upload(big_heic_declared_small(), filename="small.heic")
    assert_problem(response, 400, field="image", code="invalid_image")
    assert_nothing_stored()
