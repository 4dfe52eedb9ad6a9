"""Slow clients hold no thread: with eight of them connected, anyone else is still answered.

Found by a probe: eight connections that sent `GET /healthz` with `Content-Length: 100000000` and 1 KB of
body made `make run` answer nobody else for as long as they stayed open (a middleware read every declared
body before answering, and gunicorn's timeout does not fire for threaded workers). A request's head sent
slowly, or an upload's body, held a thread in the same way. This runs gunicorn as `make run` does, with
fewer threads than slow clients (2 workers of 2 threads), and sends a normal request while the slow ones
are still connected, sending nothing more.
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from api.slow_clients import _address
from bench.server import HOST, AppServer, multipart
from tests.images import encode, quadrants

SLOW_CLIENTS = 8
# Generous: the answer is expected at once, but the machine may be busy. Without the fix it never comes.
ANSWER_TIMEOUT_SECONDS = 15


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    data_dir: Path = tmp_path_factory.mktemp("slow-clients")
    with AppServer(data_dir, env={"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "2"}) as app:
        yield app


def exchange(port: int, request: bytes) -> bytes:
    """Send a whole request on a new connection and read the whole answer (the server closes)."""
    with socket.create_connection((HOST, port), timeout=ANSWER_TIMEOUT_SECONDS) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def normal_request_status(port: int) -> int:
    return status_of(exchange(port, b"GET /images HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"))


def open_slow_clients(
    stack: ExitStack, port: int, start: bytes, count: int = SLOW_CLIENTS
) -> list[socket.socket]:
    """`count` connections that send `start` and then nothing more (they stay open)."""
    clients = []
    for _ in range(count):
        conn = stack.enter_context(socket.create_connection((HOST, port), timeout=ANSWER_TIMEOUT_SECONDS))
        conn.sendall(start)
        clients.append(conn)
    return clients


def still_open(conn: socket.socket) -> bool:
    """True when the server has neither answered nor closed this connection."""
    conn.setblocking(False)
    try:
        conn.recv(1)
    except BlockingIOError:
        return True
    except ConnectionError:  # reset
        return False
    finally:
        conn.setblocking(True)
    return False


SLOW_STARTS = {
    # The probe's request: a body declared huge (more than an upload may be, so it is never read: the
    # probe is answered at once), 1 KB of it sent.
    "declared-body": b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000\r\n\r\n"
    + b"x" * 1024,
    # A body declared as long as an upload may be: read by the server as it comes, without a thread.
    "declared-upload-size": b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n"
    + b"x" * 1024,
    # A request's head, never finished.
    "head": b"GET /images HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
    # An upload whose body stops after 1 KB.
    "upload-body": (
        b"POST /images HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b'Content-Length: 1000000\r\n\r\n--b\r\nContent-Disposition: form-data; name="image"; '
        b'filename="a.png"\r\nContent-Type: image/png\r\n\r\n' + b"x" * 1024
    ),
}


@pytest.mark.parametrize("slow_part", SLOW_STARTS)
def test_slow_clients_leave_the_server_to_the_others(server, slow_part):
    with ExitStack() as stack:
        slow = open_slow_clients(stack, server.port, SLOW_STARTS[slow_part])
        assert normal_request_status(server.port) == 200
        # ... and an upload, whose body arrives at once.
        body, content_type = multipart({}, "image", "k.png", encode(quadrants((40, 20)), "PNG"))
        head = (
            f"POST /images HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        assert status_of(exchange(server.port, head.encode() + body)) == 201
        if slow_part == "declared-body":
            assert [status_of(conn.recv(65536)) for conn in slow] == [200] * SLOW_CLIENTS
        else:  # still waiting for the rest of their request
            assert all(still_open(conn) for conn in slow)


def test_an_upload_that_expects_100_continue_gets_it_once(server):
    body, content_type = multipart({}, "image", "k.png", encode(quadrants((40, 20)), "PNG"))
    head = (
        f"POST /images HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nExpect: 100-continue\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection((HOST, server.port), timeout=ANSWER_TIMEOUT_SECONDS) as conn:
        conn.sendall(head.encode())
        # As curl does: the body only once the server said it wants it.
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += conn.recv(1)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        conn.sendall(body)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 201 "), answer[:200]


def test_requests_sent_one_behind_the_other_on_one_connection_are_all_answered(server):
    one = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    last = b"GET /images HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    answer = exchange(server.port, one + one + last)
    assert answer.count(b"HTTP/1.1 200 OK") == 3, answer[:500]


def test_a_kept_alive_connection_serves_one_request_after_another(server):
    conn = http.client.HTTPConnection(HOST, server.port, timeout=ANSWER_TIMEOUT_SECONDS)
    try:
        statuses, local_ports = [], set()
        for path in ("/healthz", "/images", "/healthz"):
            conn.request("GET", path)
            local_ports.add(conn.sock.getsockname()[1])
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        assert statuses == [200, 200, 200]
        # One connection throughout: http.client opens another when the server closed the last one.
        assert len(local_ports) == 1
    finally:
        conn.close()


def test_a_chunked_body_is_answered_not_waited_for(server):
    # Django reads no chunked body (it has no Content-Length): the app answers at once, the body unread.
    request = (
        b"POST /images HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n5\r\nhello\r\n"
    )
    with socket.create_connection((HOST, server.port), timeout=ANSWER_TIMEOUT_SECONDS) as conn:
        conn.sendall(request)
        answer = conn.recv(65536)
    assert 400 <= status_of(answer) < 500, answer[:300]


PER_ADDRESS = 8


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """One worker of 20 connections, of which one address may hold PER_ADDRESS."""
    env = {
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": "2",
        "GUNICORN_CONNECTIONS_PER_ADDRESS": str(PER_ADDRESS),
        "GUNICORN_CMD_ARGS": "--worker-connections 20",
    }
    with AppServer(tmp_path_factory.mktemp("slow-clients-per-address"), env=env) as app:
        yield app


def test_one_address_cannot_take_every_connection(small_server):
    # 30 slow uploads from 127.0.0.1: more than the worker's 20 connections. Another address is answered.
    with ExitStack() as stack:
        slow = open_slow_clients(stack, small_server.port, SLOW_STARTS["upload-body"], count=30)
        other = socket.create_connection(
            (HOST, small_server.port), timeout=ANSWER_TIMEOUT_SECONDS, source_address=("127.0.0.2", 0)
        )
        with other:
            other.sendall(b"GET /images HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert status_of(other.recv(65536)) == 200
        assert sum(still_open(conn) for conn in slow) == PER_ADDRESS


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        ("203.0.113.7", "203.0.113.8", False),
        # One host is given a whole /64: every address in it counts as that host's.
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", True),
        ("2001:db8:1:2::1", "2001:db8:1:3::1", False),
        ("::ffff:203.0.113.7", "203.0.113.7", True),
    ],
)
def test_connections_per_address_count_an_ipv6_host_by_its_64(one: str, other: str, same: bool) -> None:
    assert (_address((one, 0)) == _address((other, 0))) is same
