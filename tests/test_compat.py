"""The private names of other libraries that images/pixels/compat.py, images/compat.py and api/compat.py rely
on: each test fails loudly when an upgrade of Pillow, django-storages or gunicorn changes one, naming what to
look at."""

from __future__ import annotations

import inspect
import io
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import Blend

from api import compat as gunicorn_compat
from images import compat as storages_compat
from images.pixels import compat
from tests.images import encode


def test_pillow_decodes_an_animated_webp_as_rgba_when_told_to():
    # Opaque frames smaller than the canvas: libwebp labels the file opaque, the canvas around is clear.
    frames = [Image.new("RGBA", (20, 10), (0, 0, 0, 0)) for _ in range(2)]
    frames[0].paste((255, 0, 0, 255), (0, 0, 10, 10))
    frames[1].paste((0, 255, 0, 255), (10, 0, 20, 10))
    im = Image.open(
        io.BytesIO(encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True))
    )
    assert im.mode == "RGB", (
        "Pillow now reads this WebP's alpha itself: compat.decode_animated_webp_with_alpha"
    )
    compat.decode_animated_webp_with_alpha(im)
    im.load()
    assert im.mode == "RGBA"
    assert im.getpixel((15, 5))[3] == 0, "Pillow's WebP decoder no longer takes its mode from rawmode/_mode"


def test_pillow_loads_an_apng_frame_unblended_when_told_to():
    # Frame 2 is half-transparent red drawn OVER an opaque blue frame: blended it would be purple.
    blue = Image.new("RGBA", (4, 4), (0, 0, 255, 255))
    red = Image.new("RGBA", (4, 4), (255, 0, 0, 128))
    im = Image.open(
        io.BytesIO(
            encode(blue, "PNG", save_all=True, append_images=[red], blend=[Blend.OP_SOURCE, Blend.OP_OVER])
        )
    )
    im.seek(1)
    assert im.info.get("blend") == Blend.OP_OVER
    compat.load_apng_frame_unblended(im)
    assert im.convert("RGBA").getpixel((1, 1)) == (255, 0, 0, 128), (
        "Pillow's PNG loader no longer reads the blend operation from `blend_op`"
    )


def test_django_storages_builds_its_s3_clients_from_a_boto3_session():
    import boto3
    from storages.backends.s3 import S3Storage

    backend = S3Storage(bucket_name="b", access_key="a", secret_key="s", region_name="us-east-1")
    session = storages_compat.s3_session(backend)
    assert isinstance(session, boto3.session.Session), "S3Storage._create_session changed"
    assert session.get_credentials().access_key == "a"


class _Sent:
    """A socket that records what gunicorn sends on it."""

    def __init__(self) -> None:
        self.sent = b""

    def send(self, data: bytes) -> int:
        self.sent += data
        return len(data)

    def sendall(self, data: bytes) -> None:
        self.sent += data


def _expecting_continue() -> Any:
    from gunicorn.config import Config
    from gunicorn.http.parser import RequestParser

    head = b"POST /images HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc"
    return next(RequestParser(Config(), iter([head]), ("127.0.0.1", 1))), Config()


def test_gunicorn_sends_no_second_100_continue_when_told_it_was_sent():
    from gunicorn.http import wsgi

    req, cfg = _expecting_continue()
    sock = _Sent()
    wsgi.create(req, sock, ("127.0.0.1", 1), ("127.0.0.1", 8000), cfg)
    assert sock.sent == b"HTTP/1.1 100 Continue\r\n\r\n", "gunicorn no longer answers 100-continue itself"

    req, cfg = _expecting_continue()
    sock = _Sent()
    gunicorn_compat.continue_already_sent(req)
    wsgi.create(req, sock, ("127.0.0.1", 1), ("127.0.0.1", 8000), cfg)
    assert sock.sent == b"", "gunicorn no longer reads Request._expected_100_continue: api/compat.py"


def test_gthread_still_asks_its_keepalive_hook_that_the_buffering_worker_overrides():
    from gunicorn.workers.gthread import ThreadWorker

    # api/slow_clients.BufferingWorker closes a connection whose body it left unread through this hook.
    assert "self._keepalive_after(" in inspect.getsource(ThreadWorker.handle), (
        "gthread's handle() no longer calls _keepalive_after: api/slow_clients.BufferingWorker"
    )
