"""A store that hangs holds a bounded number of threads, for a bounded time; requests that need only the
database go on.

Found by the chaos rig (bench/chaos, fault `s3`): with S3 stopped for 5 s, lists and details (which need
only the database) went from under 10 ms to about 2 s at p50, because requests that needed S3 held every
thread, each for up to 30 s (10 s read timeout x 3 attempts). Calls to the store now go through a guard
(images/storage.py, api/breakers.py): a cap on calls at once and on requests waiting for a turn (a request
waiting holds its thread too: with a cap on calls alone, lists waited up to 0.46 s behind a request waiting
for the hung call's turn), a bounded wait, and after a failure every call fails at once for
STORAGE_RETRY_SECONDS.

Which requests hang and which go on is only visible with a real server's threads, so the first test runs
gunicorn (one process, three threads) in front of the suite's S3 server behind a proxy that stalls on demand
(tests/stall.py): no sleeps, each step waits for an event (a request held by the stalled store, a thread
still alive), and the only time limits are client timeouts far above what a correct answer takes.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.files.storage import storages
from PIL import Image as PILImage

from bench.server import AppServer, multipart
from config.env import BASE_DIR
from images import pipeline, storage
from tests.conftest import assert_nothing_stored, new_bucket
from tests.images import quadrants
from tests.problems import assert_problem
from tests.races import until
from tests.s3 import S3Server
from tests.stall import StallingProxy

# A client gives up after this long: a request that waited on the hung store (60 s read timeout below)
# fails the test instead of hanging it; a refused or database-only request answers in well under a second.
CLIENT_TIMEOUT = 20


@pytest.fixture(scope="module")
def proxy(s3_server: S3Server) -> Iterator[StallingProxy]:
    stalling = StallingProxy(s3_server.port)
    yield stalling
    stalling.close()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server, proxy: StallingProxy
) -> Iterator[AppServer]:
    bucket = new_bucket(s3_server)
    environment = s3_server.storage_environment(
        bucket,
        AWS_S3_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}",
        # The held call waits until the test lets it go: only the guard can answer the others early.
        AWS_S3_READ_TIMEOUT="60",
        AWS_S3_MAX_ATTEMPTS="1",
        # Once the store has failed, it stays failed for the rest of the module: no race with a clock.
        STORAGE_RETRY_SECONDS="600",
        # A request waiting for a turn waits until the test ends the hung call, not until a clock runs out.
        STORAGE_WAIT_SECONDS="600",
    )
    # Three threads: by default one calls the store, one may wait for a turn, one is left for the database.
    env = {**environment, "WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "3"}
    with AppServer(tmp_path_factory.mktemp("isolation"), env=env) as app:
        yield app


def send(
    server: AppServer, method: str, path: str, *, upload: bool = False
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One request; status, headers (lower-case names) and JSON body."""
    headers = {"Connection": "close", "Authorization": f"Bearer {server.api_key}"}
    body = None
    if upload:
        buffer = io.BytesIO()
        PILImage.new("RGB", (32, 24), (200, 40, 90)).save(buffer, "PNG")
        body, headers["Content-Type"] = multipart({"title": "isolated"}, "image", "a.png", buffer.getvalue())
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        answer = {k.lower(): v for k, v in response.getheaders()}
        return response.status, answer, json.loads(payload) if payload else {}
    finally:
        conn.close()


def test_a_hung_store_holds_only_its_threads_and_the_database_reads_go_on(
    server: AppServer, proxy: StallingProxy
) -> None:
    status, _, created = send(server, "POST", "/images", upload=True)
    assert status == 201, created

    proxy.stall()
    first: dict[str, Any] = {}
    hung = threading.Thread(
        target=lambda: first.update(answer=send(server, "POST", "/images", upload=True)), daemon=True
    )
    hung.start()
    assert proxy.wait_held(1), "the upload never reached the store"

    # Two more requests that need the store: one waits for the hung call's turn, and the other, finding the
    # turn taken, a request waiting already and no call begun for STORAGE_TURNOVER_SECONDS (0.1 s), is
    # refused (a third thread held by the store would be the last one). Which is which is up to the server;
    # the refused one answers while the other waits.
    answers: list[tuple[int, dict[str, str], dict[str, Any]]] = []
    more = [
        threading.Thread(
            target=lambda: answers.append(send(server, "POST", "/images", upload=True)), daemon=True
        )
        for _ in range(2)
    ]
    for thread in more:
        thread.start()
    assert until(lambda: len(answers) == 1, timeout=CLIENT_TIMEOUT), "neither upload was refused at once"
    status, headers, body = answers[0]
    assert status == 503, body
    assert body["code"] == "storage_unavailable"
    assert int(headers["retry-after"]) > 0
    # Requests that need only the database are answered by the thread the store did not take, while the
    # hung call and the request waiting for its turn hold the other two.
    status, _, page = send(server, "GET", "/images")
    assert status == 200 and page["count"] == 1
    status, _, detail = send(server, "GET", f"/images/{created['id']}")
    assert status == 200 and detail["title"] == "isolated"
    assert hung.is_alive() and len(answers) == 1
    assert proxy.held == 1  # neither of them reached the store

    # The store fails (the connection ends): the hung upload answers 503, nothing saved, and the request
    # waiting for its turn is told at once.
    proxy.resume()
    hung.join(CLIENT_TIMEOUT)
    status, headers, body = first["answer"]
    assert status == 503, body
    assert int(headers["retry-after"]) > 0
    for thread in more:
        thread.join(CLIENT_TIMEOUT)
    assert [answer[0] for answer in answers] == [503, 503]
    assert int(answers[1][1]["retry-after"]) > 0

    # After that failure the process fails fast without asking the store (STORAGE_RETRY_SECONDS).
    forwarded = proxy.forwarded
    status, headers, body = send(server, "POST", "/images", upload=True)
    assert status == 503 and int(headers["retry-after"]) > 0, body
    assert send(server, "GET", "/readyz")[0] == 503
    assert proxy.forwarded == forwarded
    status, _, page = send(server, "GET", "/images")
    assert status == 200 and page["count"] == 1


# --- In the app's process: the guard open --------------------------------------------------------


@pytest.fixture
def guard_open(api: Any, settings: Any) -> Iterator[None]:
    """The guard open, as after a failed call; closed again before `api` checks the stored files."""
    settings.STORAGE_RETRY_SECONDS = 600
    storage.guard.trip()
    yield
    storage.guard.reset()


@pytest.fixture
def backend_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The calls that reach the storage backend."""
    reached: list[str] = []
    backend = type(storages["default"])
    for method in ("_save", "_open", "exists", "size", "delete"):
        real = getattr(backend, method)

        def spy(self: Any, *args: Any, _real: Any = real, _name: str = method, **kwargs: Any) -> Any:
            reached.append(_name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(backend, method, spy)
    return reached


def test_while_the_store_is_failing_uploads_answer_503_at_once(
    upload: Any, guard_open: None, backend_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    renders: list[object] = []
    monkeypatch.setattr(pipeline, "render", lambda *args, **kwargs: renders.append(args))
    assert_problem(upload(quadrants()), 503, "storage_unavailable")
    assert backend_calls == []
    assert renders == []  # refused before the decode: no work whose result could not be stored
    assert_nothing_stored()


def test_while_the_store_is_failing_renditions_answer_503_and_reads_go_on(
    api: Any, create: Any, settings: Any
) -> None:
    image = create(title="kept")
    settings.STORAGE_RETRY_SECONDS = 600
    storage.guard.trip()
    assert_problem(api.get(f"/images/{image['id']}/file?width=4"), 503, "storage_unavailable")
    assert api.get(f"/images/{image['id']}").json()["title"] == "kept"
    assert api.get("/images?title=kept").json()["count"] == 1
    ready = api.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["storage"] == "unavailable"
    storage.guard.reset()
    assert api.get(f"/images/{image['id']}/file?width=4").status_code == 200
    assert api.get("/readyz").status_code == 200


def test_a_failed_store_call_opens_the_guard_and_a_missing_file_does_not(
    api: Any, create: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.STORAGE_RETRY_SECONDS = 600
    image = create()
    # A rendition not made yet: the store answers "not there", which is no failure.
    assert api.get(f"/images/{image['id']}/file?width=4").status_code == 200
    assert not storage.guard.is_open()

    def failing_open(self: Any, name: str, mode: str = "rb") -> Any:
        raise OSError("the store is down")

    with monkeypatch.context() as patch:
        patch.setattr(type(storages["default"]), "_open", failing_open)
        assert_problem(api.get(f"/images/{image['id']}/file?width=8"), 503, "storage_unavailable")
    assert storage.guard.is_open()
    storage.guard.reset()


@pytest.mark.filesystem_only
def test_the_apps_own_file_route_answers_503_while_the_store_is_failing(
    api: Any, create: Any, settings: Any
) -> None:
    url = create()["url"].removeprefix("http://testserver")
    settings.STORAGE_RETRY_SECONDS = 600
    storage.guard.trip()
    assert_problem(api.get(url), 503, "storage_unavailable")
    head = api.head(url)
    assert head.status_code == 503 and int(head["Retry-After"]) > 0
    storage.guard.reset()
    assert api.get(url).status_code == 200


def test_readiness_does_not_wait_for_a_turn_and_a_store_in_use_is_ready(
    api: Any, backend_calls: list[str], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.STORAGE_MAX_CONCURRENCY = 1
    probes: list[str] = []
    monkeypatch.setattr(storage, "_probe", lambda: probes.append("probe") or True)
    with storage.guard.call():  # every turn taken (the one), by a call under way
        assert api.get("/readyz").status_code == 200
    assert probes == []
    assert api.get("/readyz").status_code == 200
    assert probes == ["probe"]


# --- Settings -----------------------------------------------------------------------------------------


def storage_settings(**env: str) -> subprocess.CompletedProcess[str]:
    """The guard's settings as a fresh process reads them from these variables."""
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.STORAGE_MAX_CONCURRENCY, s.STORAGE_MAX_WAITING, s.STORAGE_WAIT_SECONDS, "
        "s.STORAGE_RETRY_SECONDS)"
    )
    variables = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "GUNICORN_"))}
    return subprocess.run(  # noqa: S603  # our own interpreter, fixed code
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**variables, "DJANGO_SETTINGS_MODULE": "config.settings", "IMAGERY_ENV": "development", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_guard_leaves_one_thread_of_each_process_for_other_requests_by_default() -> None:
    # Calls at once, requests waiting, wait, retry: of 4 threads (the default), 2 call, 1 waits, 1 is left.
    assert storage_settings().stdout.split() == ["2", "1", "0.5", "1.0"]
    assert storage_settings(GUNICORN_THREADS="8").stdout.split()[:2] == ["4", "3"]
    assert storage_settings(GUNICORN_THREADS="2").stdout.split()[:2] == ["1", "0"]
    assert storage_settings(GUNICORN_THREADS="1").stdout.split()[:2] == ["1", "0"]  # nothing to leave
    assert storage_settings(GUNICORN_THREADS="8", STORAGE_MAX_CONCURRENCY="6").stdout.split()[:2] == [
        "6",
        "1",
    ]
    chosen = storage_settings(
        STORAGE_MAX_CONCURRENCY="3",
        STORAGE_MAX_WAITING="0",
        STORAGE_WAIT_SECONDS="2",
        STORAGE_RETRY_SECONDS="5",
    )
    assert chosen.stdout.split() == ["3", "0", "2.0", "5.0"]


@pytest.mark.parametrize(
    "env",
    [
        {"STORAGE_MAX_CONCURRENCY": "0"},
        {"STORAGE_MAX_WAITING": "-1"},
        {"STORAGE_TURNOVER_SECONDS": "-1"},
        {"GUNICORN_THREADS": "0"},
        {"STORAGE_WAIT_SECONDS": "-1"},
        {"STORAGE_RETRY_SECONDS": "-1"},
    ],
)
def test_a_bad_guard_setting_stops_the_start(env: dict[str, str]) -> None:
    result = storage_settings(**env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
