"""Test images generated in memory: asymmetric, with known colours in known places."""

from __future__ import annotations

import base64
import io
import random
import struct
import zlib

import thumbhash
from PIL import Image, ImageDraw, ImageFilter

RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


def quadrants(size: tuple[int, int] = (400, 200), mode: str = "RGB") -> Image.Image:
    """Red top-left, green top-right, blue bottom-left, white bottom-right: any flip or turn shows."""
    w, h = size
    im = Image.new("RGB", size, WHITE)
    im.paste(RED, (0, 0, w // 2, h // 2))
    im.paste(GREEN, (w // 2, 0, w, h // 2))
    im.paste(BLUE, (0, h // 2, w // 2, h))
    return im.convert(mode) if mode != "RGB" else im


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **params)
    return buffer.getvalue()


def close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 40) -> bool:
    """Lossy formats shift colours a little; a wrong corner is off by ~255."""
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False))


def corners(im: Image.Image) -> tuple[tuple[int, ...], ...]:
    """The colours a quarter of the way in from each corner: TL, TR, BL, BR."""
    rgb = im.convert("RGB")
    w, h = rgb.size
    xs, ys = (w // 4, 3 * w // 4), (h // 4, 3 * h // 4)
    return (
        rgb.getpixel((xs[0], ys[0])),
        rgb.getpixel((xs[1], ys[0])),
        rgb.getpixel((xs[0], ys[1])),
        rgb.getpixel((xs[1], ys[1])),
    )


def png_with_declared_size(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge size, with almost no data: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def gif_with_logical_screen(width: int, height: int) -> bytes:
    small = encode(Image.new("P", (1, 1)), "GIF")
    return small[:6] + struct.pack("<HH", width, height) + small[10:]


def gif_with_frames(
    screen: tuple[int, int], extents: list[tuple[int, int, int, int]], disposal: int = 1
) -> bytes:
    """A GIF whose first frame fills its logical `screen` truthfully, followed by frames that declare
    `extents` (left, top, width, height) with one pixel of data each: the headers are the lie, as in a
    crafted file. Decoding the second frame allocates the canvas it declares."""
    honest = encode(Image.new("P", screen), "GIF")
    out = honest[: honest.rindex(b";")]
    for left, top, width, height in extents:
        out += b"\x21\xf9\x04" + bytes([disposal << 2]) + b"\x0a\x00\x00\x00"  # graphic control: 100 ms
        out += b"\x2c" + struct.pack("<HHHHB", left, top, width, height, 0x80)  # a 2-colour local table
        out += bytes([0, 0, 0, 255, 255, 255]) + b"\x02\x02\x44\x01\x00"  # one black pixel of LZW data
    return out + b";"


def gif_animation(frames: list[Image.Image], **params: object) -> bytes:
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], **params)


def decoded(placeholder: str) -> Image.Image:
    """The picture a client draws from the placeholder, by the thumbhash package's own decoder."""
    width, height, rgba = thumbhash.thumb_hash_to_rgba(base64.b64decode(placeholder, validate=True))
    return Image.frombytes("RGBA", (width, height), rgba)


def rgb_of(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def halves(size: tuple[int, int], left: tuple[int, int, int], right: tuple[int, int, int]) -> Image.Image:
    im = Image.new("RGB", size, left)
    im.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return im


def meadow(size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A mostly green photo: grass of many greens, a strip of sky, brown trunks, blurred like a lens."""
    rng = random.Random(17)
    w, h = size
    im = Image.new("RGB", size, (70, 140, 50))
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 0, w, h // 5), fill=(150, 190, 230))
    for _ in range(600):
        x, y = rng.randrange(w), rng.randrange(h // 5, h)
        green = (rng.randrange(30, 110), rng.randrange(110, 190), rng.randrange(10, 80))
        draw.ellipse((x, y, x + w // 30, y + h // 35), fill=green)
    for _ in range(6):
        x = rng.randrange(w)
        draw.rectangle((x, h // 3, x + w // 40, h), fill=(100, 70, 40))
    return im.filter(ImageFilter.GaussianBlur(1.5))


def png_upload() -> dict[str, io.BytesIO]:
    """An upload form of a small PNG (the `image` field), for a client's post()."""
    file = io.BytesIO(encode(quadrants((40, 20)), "PNG"))
    file.name = "k.png"
    return {"image": file}
