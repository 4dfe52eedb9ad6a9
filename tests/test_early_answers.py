"""An answer given before the body is read (401, 429, 503, 413) reaches a client that sends the whole body
first, as nginx does: gunicorn's worker reads a body before the app runs, or drains the connection after
an answer to a body too long to read (api/slow_clients.py), so the connection is never reset under it.

Found by the chaos rig (bench/chaos): with PostgreSQL stopped, an upload's API key could not be checked and
the app answered 503 at once; gunicorn closed the connection with most of the body unread, the kernel reset
it, and nginx, still writing the body, got a broken pipe and answered 502 without the Retry-After. Only a
real server shows it (Django's test client and runserver read every body), so this runs gunicorn.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.server import AppServer

BODY_BYTES = 6 * 1024 * 1024
UPLOAD_LIMIT_BYTES = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    data_dir: Path = tmp_path_factory.mktemp("early-answers")
    env = {
        "IMAGERY_AUTH": "write",
        "THROTTLE_UPLOADS_PER_KEY": "1/hour",
        "IMAGE_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT_BYTES),
    }
    with AppServer(data_dir, env=env) as app:
        yield app


def post_whole_body_then_read(port: int, headers: dict[str, str], body: bytes) -> bytes:
    """Like nginx's proxying: HTTP/1.0, send every byte of the body, only then read the answer."""
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    request = f"POST /images HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n{head}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request.encode())
        try:
            conn.sendall(body)
        except OSError as error:  # a reset (broken pipe) while the body was still being sent
            pytest.fail(f"the server closed the connection before reading the body: {error!r}")
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def multipart_body() -> tuple[bytes, str]:
    boundary = "early-answer-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="big.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + b"\0" * BODY_BYTES
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_an_upload_refused_for_want_of_a_key_gets_its_401(server):
    body, content_type = multipart_body()
    answer = post_whole_body_then_read(server.port, {"Content-Type": content_type}, body)
    assert status_of(answer) == 401, answer[:200]


def test_an_upload_declared_too_large_gets_its_413(server):
    body, content_type = multipart_body()
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {server.create_api_key()}"}
    answer = post_whole_body_then_read(server.port, headers, body)
    assert status_of(answer) == 413, answer[:200]


def test_an_upload_over_the_rate_limit_gets_its_429(server):
    # A fresh key with a limit of one upload an hour: the first is let through (and is too large), the
    # second is refused before its body is read.
    body, content_type = multipart_body()
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {server.create_api_key()}"}
    statuses = [status_of(post_whole_body_then_read(server.port, headers, body)) for _ in range(2)]
    assert statuses[-1] == 429, statuses
    assert statuses == [413, 429], statuses
