"""A GIF's pre-check agrees with Pillow's reader on every file, and what stands behind it holds alone.

The pre-check (images/pixels/gif_blocks.py) walks a GIF's blocks to find the canvas its frames will grow
before Pillow opens it. It is checked here against Pillow itself on generated files (stray bytes,
unknown and empty extensions, truncation, frames anywhere, far past the screen included, at small
coordinates so Pillow can really go there): where Pillow's reader refuses the file's structure, so
does the pre-check; elsewhere it reports the frames Pillow counts and the canvas Pillow reaches.

Then each line of defence is tested on its own, with the others switched off: the canvas checked
after every seek, Pillow's own limit (at ours, its warning an error), and a MemoryError answered 413.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from images.pixels import decoding
from images.pixels.errors import ImageTooLarge, InvalidImage
from images.pixels.gif_blocks import gif_canvas
from images.pixels.limits import Canvas, Limits
from images.pixels.processing import render
from tests.conftest import assert_nothing_stored
from tests.images import encode
from tests.problems import assert_problem


def lzw(pixels: int) -> bytes:
    """Image data (LZW, minimum code size 2) for `pixels` pixels of colour 0, as sub-blocks: a clear code
    before every pixel keeps the codes 3 bits wide. Valid, so Pillow can decode every frame it meets."""
    acc = bits = 0
    packed = bytearray()
    for code in [4, 0] * pixels + [5]:
        acc |= code << bits
        bits += 3
        while bits >= 8:
            packed.append(acc & 0xFF)
            acc >>= 8
            bits -= 8
    if bits:
        packed.append(acc)
    chunks = [packed[i : i + 255] for i in range(0, len(packed), 255)]
    return b"\x02" + b"".join(bytes([len(chunk)]) + chunk for chunk in chunks) + b"\x00"


def frame(left: int, top: int, width: int, height: int, *, local_table: bool = False) -> bytes:
    flags = 0x80 if local_table else 0  # a 2-colour local table
    table = bytes([0, 0, 0, 255, 255, 255]) if local_table else b""
    return b"," + struct.pack("<HHHHB", left, top, width, height, flags) + table + lzw(width * height)


def screen(width: int, height: int, *, global_table: bool = True) -> bytes:
    flags = 0x80 if global_table else 0
    table = bytes([0, 0, 0, 255, 255, 255]) if global_table else b""
    return b"GIF89a" + struct.pack("<HHBBB", width, height, flags, 0, 0) + table


def extension(label: int, *blocks: bytes, terminated: bool = True) -> bytes:
    return (
        b"!"
        + bytes([label])
        + b"".join(bytes([len(b)]) + b for b in blocks)
        + (b"\x00" if terminated else b"")
    )


def stray_byte_far_frame(far: int) -> bytes:
    """A 16x16 still, one stray byte, then a 10x10 frame at (far, far): the file of issue #20.1."""
    still = encode(Image.new("P", (16, 16)), "GIF")
    return still[: still.rindex(b";")] + b"\x00" + frame(far, far, 10, 10) + b";"


def empty_extension_hiding(far: bytes) -> bytes:
    """A GIF where Pillow reads a frame that a walk by the book takes for another frame's image data.

    Pillow reads the terminator of an extension with no data as its first sub-block, then takes the
    next byte, ",", as the length (44) of another one. By the book, that "," starts a 1x1 frame whose
    image data (one sub-block of 60 bytes) holds `far`; Pillow skips 44 bytes, meets an empty
    sub-block, and then reads `far` as the next frame.
    """
    assert len(far) <= 60 - 34
    decoy = b"," + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02"
    data = (b"\x00" * 34 + far).ljust(60, b"\x00")
    return screen(4, 4) + frame(0, 0, 2, 2) + extension(0x01) + decoy + b"\x3c" + data + b"\x00;"


sub_blocks = st.lists(st.binary(min_size=1, max_size=12), max_size=3)

frames = st.builds(
    lambda x, y, w, h, local: frame(x, y, w, h, local_table=local),
    st.integers(0, 40),
    st.integers(0, 40),
    st.integers(1, 8),
    st.integers(1, 8),
    st.booleans(),
)

blocks = st.one_of(
    frames,
    frames,
    # Graphic control: whole (disposal, transparency), or too short to read.
    st.builds(
        lambda flags, size: extension(0xF9, bytes([flags, 10, 0, 0])[:size]),
        st.integers(0, 15),
        st.sampled_from([4, 4, 4, 4, 4, 4, 2, 1]),
    ),
    st.builds(lambda bs: extension(0xFE, *bs), sub_blocks),  # comment
    st.builds(
        lambda loop, rest: extension(0xFF, b"NETSCAPE2.0", *loop, *rest),
        st.sampled_from([[b"\x01\x00\x00"], []]),
        sub_blocks,
    ),
    # Any extension, its terminator there or not.
    st.builds(
        lambda label, bs, terminated: extension(label, *bs, terminated=terminated),
        st.integers(0, 255),
        sub_blocks,
        st.sampled_from([True, True, True, False]),
    ),
    # Stray bytes: any value (the introducers included), mostly others.
    st.binary(min_size=1, max_size=3)
    | st.binary(min_size=1, max_size=3).filter(lambda b: not set(b) & set(b"!,;")),
)


@st.composite
def gif_files(draw: st.DrawFn) -> bytes:
    head = screen(draw(st.integers(1, 20)), draw(st.integers(1, 20)), global_table=draw(st.booleans()))
    body = b"".join(draw(st.lists(blocks, max_size=8)))
    if draw(st.integers(0, 9)):
        body = draw(frames) + body  # most files start with a frame, as real ones do
    tail = draw(st.sampled_from([b";", b";", b"", b";" + frame(50, 50, 2, 2)]))
    data = head + body + tail
    if not draw(st.integers(0, 3)):
        data = data[: draw(st.integers(0, len(data)))]
    return data


# Garbage read as a frame descriptor can place a frame anywhere up to 65535x65535; Pillow is stopped
# (its own check, made an error) before it goes past this many pixels, so the reference stays cheap.
REFERENCE_PIXELS = 100_000


@dataclass
class Walk:
    """What Pillow's reader does with a file: refuses its structure, or counts its frames and reaches a
    canvas (`complete`: every frame was reached; a frame whose data does not decode stops the seeking;
    `too_large`: the canvas went past REFERENCE_PIXELS, where the reference stops following it)."""

    refused: bool
    frames: int = 0
    size: tuple[int, int] = (0, 0)
    complete: bool = False
    too_large: bool = False


@contextmanager
def pillow_refusing_past(pixels: int) -> Iterator[None]:
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def pillow_walk(data: bytes) -> Walk:
    bomb = (Image.DecompressionBombError, Image.DecompressionBombWarning)
    with pillow_refusing_past(REFERENCE_PIXELS):
        try:
            im = Image.open(io.BytesIO(data), formats=["GIF"])
        except bomb:
            return Walk(refused=False, too_large=True)
        except (OSError, SyntaxError, EOFError, IndexError, struct.error):
            return Walk(refused=True)
        try:
            frames = im.n_frames  # the reader's walk through every block, nothing decoded
        except (OSError, SyntaxError, EOFError, IndexError, struct.error):
            return Walk(refused=True)
        walk = Walk(refused=False, frames=frames, size=im.size, complete=True)
        try:
            for index in range(1, frames):
                im.seek(index)  # grows the canvas, as decoding does (and decodes the frame before)
                walk.size = im.size
        except bomb:
            walk.complete, walk.too_large = False, True
        except (OSError, ValueError, SyntaxError, IndexError):
            walk.complete, walk.size = False, im.size
        return walk


def precheck(data: bytes) -> Canvas | None:
    try:
        return gif_canvas(io.BytesIO(data))
    except InvalidImage:
        return None


@settings(max_examples=1500, deadline=None)
@given(gif_files())
@example(stray_byte_far_frame(40))
@example(screen(4, 4) + frame(0, 0, 2, 2) + extension(0x01, terminated=False) + frame(30, 30, 2, 2) + b";")
@example(screen(4, 4) + extension(0xFF, b"NETSCAPE2.0") + b"\x2c" * 3 + frame(30, 30, 2, 2) + b";")
@example(empty_extension_hiding(frame(30, 30, 2, 2)))
def test_the_precheck_sees_every_frame_pillow_reaches(data: bytes) -> None:
    reported, walked = precheck(data), pillow_walk(data)
    event(
        "too large"
        if walked.too_large
        else "refused"
        if walked.refused
        else f"{'complete' if walked.complete else 'stopped'}, {min(walked.frames, 3)} frames, "
        f"{'grown' if walked.size != struct.unpack('<HH', data[6:10]) else 'flat'}"
    )
    if walked.too_large:
        # Pillow met a canvas past the reference's bound (before it would have refused the file, if it
        # would): the pre-check refuses the file or sees at least as much.
        assert reported is None or reported.width * reported.height > REFERENCE_PIXELS
        return
    if walked.refused:
        assert reported is None, "Pillow's reader refuses this file; the pre-check must too"
        return
    assert reported is not None, "Pillow's reader walks this file; the pre-check refused it"
    assert reported.frames == walked.frames
    if walked.complete:
        assert (reported.width, reported.height) == walked.size
    else:
        assert reported.width >= walked.size[0] and reported.height >= walked.size[1]


def test_a_stray_byte_hides_no_frame_from_the_precheck() -> None:
    assert precheck(stray_byte_far_frame(10_990)) == Canvas(11_000, 11_000, frames=2)


def test_an_empty_extension_hides_no_frame_from_the_precheck() -> None:
    data = empty_extension_hiding(frame(30, 30, 2, 2))
    assert pillow_walk(data) == Walk(refused=False, frames=2, size=(32, 32), complete=True)
    assert precheck(data) == Canvas(32, 32, frames=2)


def test_far_frame_behind_a_stray_byte_gets_413_without_decoding(upload, monkeypatch) -> None:
    def refuse_to_decode(self: Any, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the far frame reached the decoder")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse_to_decode)
    response = upload(stray_byte_far_frame(10_990), filename="stray.gif")
    body = assert_problem(response, 413, field="image", code="image_too_large")
    assert "11000x11000" in json.dumps(body)
    assert_nothing_stored()


def test_far_frame_behind_a_stray_byte_costs_no_memory(tmp_path: Path) -> None:
    # At the default limits, in a fresh process: the peak resident memory the render adds (VmHWM).
    source = tmp_path / "stray.gif"
    source.write_bytes(stray_byte_far_frame(10_990))
    result = subprocess.run(  # noqa: S603 (our own module, our arguments)
        [sys.executable, "-m", "tests.peak_memory", str(source), "{}", "{}"],
        capture_output=True,
        check=True,
        cwd=django_settings.BASE_DIR,
        timeout=120,
    )
    measured = json.loads(result.stdout)
    assert measured["error"] == "ImageTooLarge"
    assert measured["peak_bytes"] <= 32 * 2**20


def test_garbled_gif_structure_is_a_400(upload) -> None:
    cut_label = screen(4, 4) + frame(0, 0, 2, 2) + b"!"
    assert_problem(upload(cut_label, filename="cut.gif"), 400, field="image", code="invalid_image")
    assert_nothing_stored()


# Each line behind the pre-check, alone.


def header_only(src: Any) -> Canvas:
    """A pre-check that believes the logical screen, as a broken one would."""
    head = src.read(10)
    src.seek(0)
    return Canvas(int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little"), frames=1)


def test_the_canvas_is_checked_after_every_seek(upload, settings, monkeypatch) -> None:
    settings.IMAGE_MAX_PIXELS = 100 * 100
    monkeypatch.setattr(decoding, "gif_canvas", header_only)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    # The second frame takes the canvas to 210x210: past the limit only once Pillow has seeked to it.
    far = screen(16, 16) + frame(0, 0, 16, 16) + frame(200, 200, 10, 10) + b";"
    response = upload(far, filename="far.gif")
    assert_problem(response, 413, field="image", code="image_too_large")
    assert_nothing_stored()


def test_pillows_own_limit_is_ours() -> None:
    assert Image.MAX_IMAGE_PIXELS == django_settings.IMAGE_MAX_PIXELS


@pytest.mark.parametrize("far", [110, 500], ids=["between 1x and 2x the limit", "past 2x"])
def test_pillows_own_limit_refuses_alone(far: int, monkeypatch) -> None:
    # Every check of ours off, Pillow's set by bound_pillow (as the app does at start) to 10,000 pixels:
    # up to twice that Pillow itself only warns, and bound_pillow makes the warning an error. (Under
    # pytest, the warning filter the app set at start is gone: pytest restores its own per test.)
    monkeypatch.setattr(decoding, "gif_canvas", header_only)
    monkeypatch.setattr(decoding, "check_canvas", lambda canvas, limits: None)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    decoding.bound_pillow(10_000)
    data = screen(16, 16) + frame(0, 0, 16, 16) + frame(far, 0, 10, 100) + b";"
    with pytest.raises(ImageTooLarge, match="IMAGE_MAX_PIXELS"):
        render(io.BytesIO(data), limits=Limits(max_pixels=10_000))


def test_an_image_at_pillows_limit_is_no_warning(upload, settings, monkeypatch, recwarn) -> None:
    settings.IMAGE_MAX_PIXELS = 100 * 100
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    edge = screen(16, 16) + frame(0, 0, 16, 16) + frame(90, 90, 10, 10) + b";"
    assert upload(edge, filename="edge.gif").status_code == 201
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_running_out_of_memory_while_decoding_is_a_413(upload, monkeypatch) -> None:
    def out_of_memory(self: Any, *args: Any, **kwargs: Any) -> None:
        raise MemoryError

    monkeypatch.setattr(ImageFile.ImageFile, "load", out_of_memory)
    assert_problem(upload(encode(Image.new("RGB", (40, 30)), "PNG")), 413, code="image_too_large")
    assert_nothing_stored()


def test_running_out_of_memory_after_decoding_is_a_413_too(upload, monkeypatch) -> None:
    def out_of_memory(self: Any, *args: Any, **kwargs: Any) -> None:
        raise MemoryError

    monkeypatch.setattr(Image.Image, "resize", out_of_memory)
    response = upload(encode(Image.new("RGB", (40, 30)), "PNG"), width=20)
    assert_problem(response, 413, code="image_too_large")
    assert_nothing_stored()
