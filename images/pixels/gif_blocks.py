"""A GIF's blocks walked exactly as Pillow's GIF reader walks them, without decoding a pixel: the canvas
its frames will grow, and how many frames it will find.

Pillow grows a GIF's canvas to fit any frame that reaches past the logical screen (up to 65535 pixels
each way) and allocates it when that frame loads, so the screen in the header says nothing about the
memory a GIF costs. This walk is the pre-check of that cost, and it is only worth anything if it sees
every frame the reader will see: a walk that stopped at a byte the reader skips let a 100-byte file
grow an 11000x11000 canvas. So it mirrors Pillow 13's `GifImagePlugin` (`_open`, `_seek`, `data`)
step by step, quirks included:

- a byte that starts no block (not `!`, `,` or `;`) between blocks is skipped, and reading goes on;
- an extension's first sub-block is read before its label is looked at, and the sub-blocks after it
  are skipped until an empty one: so an extension with no data (its label, then the terminator) makes
  the reader take the *next* bytes as sub-blocks too; only comments stop at their terminator;
- in the blocks before the first frame, a NETSCAPE2.0 application extension has one more sub-block
  read on its own, with the same effect;
- a frame's image data is skipped sub-block by sub-block from where its descriptor ended.

Where the reader would raise rather than stop cleanly (a cut extension label, a graphic control block
too short to read, a cut frame descriptor, a missing LZW code size, no frame at all), the file is
refused here as InvalidImage: never a canvas reported for a file the reader walks differently.
tests/test_gif_precheck.py checks the walk against Pillow's own on generated files, so an upgrade of
Pillow that changes its walk fails there.
"""

from __future__ import annotations

from typing import BinaryIO

from images.pixels.errors import InvalidImage
from images.pixels.limits import Canvas

_TRAILER = b";"
_EXTENSION = b"!"
_IMAGE = b","
_GRAPHIC_CONTROL = 0xF9
_COMMENT = 0xFE
_APPLICATION = 0xFF


def gif_canvas(src: BinaryIO) -> Canvas:
    """The canvas Pillow's reader reaches when it goes through every frame of the GIF in `src`, and
    how many frames it finds (its `n_frames`). Reads from the current position and goes back to it.

    Raises InvalidImage where the reader would fail on the file's structure.
    """
    start = src.tell()
    try:
        return _Walk(src).canvas()
    finally:
        src.seek(start)


class _Walk:
    def __init__(self, src: BinaryIO) -> None:
        self.src = src

    def canvas(self) -> Canvas:
        header = self.src.read(13)
        if len(header) < 13:
            raise _cut("header")
        width, height = int.from_bytes(header[6:8], "little"), int.from_bytes(header[8:10], "little")
        if header[10] & 0x80 and not self._skip_color_table(header[10]):
            raise _cut("global colour table")
        frames = 0
        data_at: int | None = None  # where the last frame's image data starts
        while True:
            if data_at is not None:
                # The reader goes back to the last frame's data and skips it before reading on.
                self.src.seek(data_at)
                while self._sub_block():
                    pass
            extent = self._next_frame(first=frames == 0)
            if extent is None:
                break
            left, top, frame_width, frame_height, data_at = extent
            width, height = max(width, left + frame_width), max(height, top + frame_height)
            frames += 1
        if frames == 0:
            raise InvalidImage("The GIF has no image in it.")
        return Canvas(width, height, frames=frames)

    def _next_frame(self, *, first: bool) -> tuple[int, int, int, int, int] | None:
        """The next frame's extent and where its image data starts, or None at the trailer or the end
        of the file (the reader's EOFError); skips what the reader skips on the way."""
        while True:
            introducer = self.src.read(1)
            if not introducer or introducer == _TRAILER:
                return None
            if introducer == _EXTENSION:
                self._skip_extension(first=first)
            elif introducer == _IMAGE:
                return self._read_descriptor()
            # Anything else starts no block: the reader skips the byte and reads on.

    def _skip_extension(self, *, first: bool) -> None:
        label = self.src.read(1)
        block = self._sub_block()  # read before the label is looked at, whatever the label
        if not label:
            raise _cut("extension")
        if label[0] == _GRAPHIC_CONTROL and block is not None:
            # The reader takes the flags, the delay and (when flagged) the transparent index from it.
            if len(block) < 3 or (block[0] & 1 and len(block) < 4):
                raise _cut("graphic control extension")
        elif label[0] == _COMMENT:
            while block:
                block = self._sub_block()
            return
        elif label[0] == _APPLICATION and first and block is not None and block.startswith(b"NETSCAPE2.0"):
            self._sub_block()  # the loop count, read on its own
        while self._sub_block():
            pass

    def _read_descriptor(self) -> tuple[int, int, int, int, int]:
        descriptor = self.src.read(9)
        if len(descriptor) < 9:
            raise _cut("image descriptor")
        left, top, width, height = (int.from_bytes(descriptor[i : i + 2], "little") for i in range(0, 8, 2))
        flags = descriptor[8]
        if flags & 0x80:
            self._skip_color_table(flags)  # a short table means the end of the file, caught just below
        if not self.src.read(1):  # the LZW minimum code size
            raise _cut("image descriptor")
        return left, top, width, height, self.src.tell()

    def _skip_color_table(self, flags: int) -> bool:
        """Skip a colour table of the size `flags` give; False when the file ends inside it."""
        size = 3 << ((flags & 0x07) + 1)
        return len(self.src.read(size)) == size

    def _sub_block(self) -> bytes | None:
        """One data sub-block as the reader's `data()` reads it: None for the empty one (or the end of the
        file), else the bytes its length byte announces, fewer where the file ends."""
        length = self.src.read(1)
        if length and length[0]:
            return self.src.read(length[0])
        return None


def _cut(what: str) -> InvalidImage:
    return InvalidImage(f"The GIF's {what} is cut short or corrupt.")
