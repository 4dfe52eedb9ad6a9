"""Rate limits hold as written when several processes serve: each counts in the store they all share.

Found by a probe: without Redis the limiter counted in each process's memory, and `make run` starts several
gunicorn workers, so with THROTTLE_UPLOADS_PER_ADDRESS=3/hour seven of nine uploads from one address got
201. This runs gunicorn as `make run` does, with three worker processes, and no Redis.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.server import HOST, AppServer, multipart
from tests.images import encode, quadrants

LIMIT = 3
WORKERS = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    data_dir: Path = tmp_path_factory.mktemp("limits-across-workers")
    env = {
        "WEB_CONCURRENCY": str(WORKERS),
        "GUNICORN_THREADS": "2",
        "THROTTLE_UPLOADS_PER_ADDRESS": f"{LIMIT}/hour",
        "THROTTLE_READS_PER_ADDRESS": f"{LIMIT}/hour",
    }
    with AppServer(data_dir, env=env) as app:
        yield app


def upload(port: int) -> int:
    """One upload on a connection of its own, so the server's processes share them out."""
    body, content_type = multipart({}, "image", "k.png", encode(quadrants((40, 20)), "PNG"))
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        conn.request(
            "POST", "/images", body=body, headers={"Content-Type": content_type, "Connection": "close"}
        )
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def read(port: int) -> int:
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        conn.request("GET", "/images", headers={"Connection": "close"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_uploads_from_one_address_meet_one_limit_across_processes(server):
    statuses = [upload(server.port) for _ in range(3 * LIMIT)]
    assert statuses == [201] * LIMIT + [429] * (2 * LIMIT), statuses


def test_reads_sent_at_once_meet_the_limit_exactly(server):
    # Twelve reads released together, over the processes and their threads: no two spend the last one.
    senders = 4 * LIMIT
    start = threading.Barrier(senders)
    statuses: list[int] = []
    lock = threading.Lock()

    def send() -> None:
        start.wait()
        status = read(server.port)
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * LIMIT + [429] * (senders - LIMIT), statuses
