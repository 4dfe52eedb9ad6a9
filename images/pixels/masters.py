"""Stored files that decode fast: telling a progressive JPEG from its first bytes, and rewriting one as
baseline with its own quantization tables and subsampling (close to lossless: about 58 dB PSNR on a
photo). Pure Pillow; no Django.

Every rendition decodes an upload's stored file (its master) again. libjpeg must decode every scan of a
progressive JPEG at full coefficient size before it can scale in the DCT domain, which makes a small
rendition 3-4x as costly as from a baseline file (README, "Renditions"); uploads are stored baseline
since issue 22, and `manage.py convert_masters` rewrites the masters stored before.
"""

from __future__ import annotations

from typing import BinaryIO

from images.pixels.decoding import decode, open_image
from images.pixels.encoding import save
from images.pixels.errors import UnsupportedFormat
from images.pixels.limits import Limits

# Enough of a file to reach its frame header: masters carry no metadata, so theirs is within 1 KB.
HEAD_BYTES = 64 * 1024

# Start-of-frame markers (0xFFC0-0xFFCF, less DHT, JPG and DAC) and which of them are progressive.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PROGRESSIVE_SOF = {0xC2, 0xC6, 0xCA, 0xCE}
# Markers without a length: SOI, EOI, TEM and the restart markers.
_STANDALONE = {0xD8, 0xD9, 0x01, *range(0xD0, 0xD8)}


def is_progressive_jpeg(head: bytes) -> bool | None:
    """Whether the JPEG these first bytes start is progressive; None when they are no JPEG, or its frame
    header is not among them (walks the marker segments up to the frame header, reads no pixel)."""
    if not head.startswith(b"\xff\xd8"):
        return None
    at = 2
    while at + 4 <= len(head):
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _SOF:
            return marker in _PROGRESSIVE_SOF
        if marker == 0xDA:  # scan data before any frame header: not a JPEG we can read
            return None
        if marker in _STANDALONE:
            at += 2
            continue
        at += 2 + int.from_bytes(head[at + 2 : at + 4], "big")
    return None


def baseline_jpeg(src: BinaryIO, limits: Limits) -> bytes:
    """The JPEG `src` rewritten baseline (Huffman-optimized), with its quantization tables and chroma
    subsampling, without metadata. Raises InvalidImage, UnsupportedFormat, ImageTooLarge like `render`."""
    im = open_image(src, limits)
    try:
        if im.format != "JPEG":
            raise UnsupportedFormat(f"A {im.format} file is no JPEG.")
        decode(im, limits)
        # Nothing of the file's own metadata is carried over (masters have none, but a comment would be).
        im.info = {}
        return save(im, "JPEG", quality="keep", subsampling="keep", optimize=True, progressive=False)
    finally:
        im.close()
