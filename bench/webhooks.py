"""Webhooks benchmark (issue 25): what webhooks add to an upload's answer, and how fast one worker delivers.

Run with `make bench` (or `.venv/bin/python bench/webhooks.py --help`). Two measurements, on SQLite in a
temporary folder with the database task backend (the default):

1. Through the app under gunicorn (bench/server.py): a small PNG upload's answer with no webhook endpoint
   enabled (the baseline) and with one, interleaved (an admin key switches the endpoint between uploads);
   median of each, their ratio, and the median of the paired differences (each upload with the endpoint
   against the one just before it without). With the endpoint, the upload's transaction also writes the
   event and its delivery, and the commit may wake a worker (a task row; at most one per 0.25 s per
   process): target ≤ 1 ms added.
2. One `manage.py db_worker` delivering N recorded events to a threaded receiver on loopback (keep-alive,
   answering 204): events per second, timed at the receiver from its first request to its last (the
   worker's start-up is not delivery), and from the worker's start to its exit. Target ≥ 200 events/s.

It prints a table, then each target with PASS or MISS. It always exits 0: it reports, it does not test.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from server import AppServer, load_average, multipart  # noqa: E402

MAX_ADDED_MS = 1.0
MIN_EVENTS_PER_SECOND = 200


class Receiver:
    """A threaded HTTP/1.1 receiver on loopback: answers 204 and notes when each request came."""

    def __init__(self) -> None:
        times: list[float] = []
        self.times = times

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()
                times.append(time.perf_counter())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def manage(server: AppServer, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=server.env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def call(server: AppServer, key: str, method: str, path: str, body: dict | None = None) -> dict:
    saved = server.api_key
    server.api_key = key
    try:
        status, payload = server.request(
            method, path, json.dumps(body).encode() if body is not None else None, "application/json"
        )
    finally:
        server.api_key = saved
    if status >= 300:
        raise RuntimeError(f"{method} {path} answered {status}: {payload[:300]!r}")
    return json.loads(payload) if payload else {}


def upload_times(
    server: AppServer, admin: str, endpoint_id: int, runs: int
) -> tuple[list[float], list[float]]:
    """Upload answer times (ms) without and with the endpoint enabled, interleaved."""
    png = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 90)).save(png, "PNG")
    body, content_type = multipart({"title": "bench"}, "image", "bench.png", png.getvalue())

    def timed_upload() -> float:
        start = time.perf_counter()
        status, payload = server.request("POST", "/images", body, content_type)
        elapsed = (time.perf_counter() - start) * 1000
        if status != 201:
            raise RuntimeError(f"POST /images answered {status}: {payload[:300]!r}")
        return elapsed

    without, with_one = [], []
    for enabled in (False, True):  # warm-up of each
        call(server, admin, "PATCH", f"/webhooks/{endpoint_id}", {"enabled": enabled})
        timed_upload()
    for _ in range(runs):
        call(server, admin, "PATCH", f"/webhooks/{endpoint_id}", {"enabled": False})
        without.append(timed_upload())
        call(server, admin, "PATCH", f"/webhooks/{endpoint_id}", {"enabled": True})
        with_one.append(timed_upload())
    return without, with_one


def record_events(server: AppServer, count: int) -> None:
    """`count` image.deleted events recorded (and enqueued) by this process, in the app's database."""
    code = (
        "import django; django.setup()\n"
        "from django.db import transaction\n"
        "import events\n"
        f"for start in range(0, {count}, 500):\n"
        "    with transaction.atomic():\n"
        f"        for i in range(start, min(start + 500, {count})):\n"
        "            events.record('image.deleted', {'id': i, 'key': None})\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=server.env, check=True)


RECORD_COST = """
import statistics, time
import django
django.setup()
from django.db import transaction
from events import outbox, tasks
from events.models import WebhookEndpoint

tasks.wake = lambda ids: None  # the task row is the upload's concern, measured above; not this line's
endpoint = WebhookEndpoint.objects.create(url="https://hooks.example.com/", enabled=False)
payload = {"object": {"id": 1, "title": "bench", "url": "/media/images/x.png", "width": 64}, "key": None}

def once(enabled):
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=enabled)
    start = time.perf_counter()
    with transaction.atomic():
        outbox.record(kind="image.created", payload=lambda: payload)
    return (time.perf_counter() - start) * 1000

pairs = [(once(False), once(True)) for _ in range(RUNS)]
endpoint.delete()
print(statistics.median(w - b for b, w in pairs))
"""


def record_cost(server: AppServer, runs: int) -> float:
    """In one process, ms that recording an event for one endpoint adds to a transaction (paired median)."""
    done = subprocess.run(
        [sys.executable, "-c", RECORD_COST.replace("RUNS", str(runs))],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def delivery_rate(server: AppServer, receiver: Receiver, count: int) -> tuple[float, float, int]:
    """(events/s at the receiver, events/s from the worker's start to its exit, delivered)."""
    record_events(server, count)
    receiver.times.clear()
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "manage.py", "db_worker", "--batch", "--no-startup-delay", "--interval", "0.05"],
        cwd=ROOT,
        env=server.env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    whole = time.perf_counter() - start
    got = len(receiver.times)
    span = receiver.times[-1] - receiver.times[0] if got > 1 else float("nan")
    return (got - 1) / span, got / whole, got


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=300, help="uploads of each kind (default 300)")
    parser.add_argument("--events", type=int, default=2000, help="events the worker delivers (default 2000)")
    args = parser.parse_args()

    receiver = Receiver()
    env = {
        "TASK_BACKEND": "database",
        "WEBHOOK_ALLOW_HTTP": "true",
        "WEBHOOK_ALLOW_PRIVATE": "true",
        "LOG_LEVEL": "WARNING",
    }
    try:
        with (
            tempfile.TemporaryDirectory(prefix="imagery-bench-webhooks-") as tmp,
            AppServer(Path(tmp), env=env) as server,
        ):
            admin = manage(server, "apikey", "create", "bench-admin", "--admin")
            endpoint = call(server, admin, "POST", "/webhooks", {"url": receiver.url})
            without, with_one = upload_times(server, admin, endpoint["id"], args.runs)
            in_process = record_cost(server, 1000)
            # The uploads' deliveries are not part of the rate: drop them (and their tasks) first.
            manage(server, "webhook", "remove", str(endpoint["id"]))
            manage(server, "webhook", "add", receiver.url)
            manage(
                server,
                "shell",
                "-c",
                "from django_tasks_db.models import DBTaskResult; DBTaskResult.objects.all().delete()",
            )
            at_receiver, overall, delivered = delivery_rate(server, receiver, args.events)
    finally:
        receiver.stop()

    base, one = statistics.median(without), statistics.median(with_one)
    # Each upload with the endpoint against the one just before it without: drift in the machine's load
    # cancels out of the pairs, which the difference of two medians keeps.
    added = statistics.median(w - b for b, w in zip(without, with_one, strict=True))
    print(f"load average: {load_average()}")
    print(f"{'measurement':<62} {'value':>10}")
    print(f"{'upload answer, no endpoint enabled (baseline), median ms':<62} {base:>10.3f}")
    print(f"{'upload answer, one endpoint enabled, median ms':<62} {one:>10.3f}")
    print(f"{'ratio one / none':<62} {one / base:>10.3f}")
    print(f"{'difference of the medians, ms':<62} {one - base:>+10.3f}")
    print(f"{'median of paired differences (the figure judged), ms':<62} {added:>+10.3f}")
    print(f"{'in process: record() for one endpoint, payload ready, adds, ms':<62} {in_process:>+10.3f}")
    print(f"{'events delivered by one db_worker':<62} {delivered:>10}")
    print(f"{'events/s at the receiver (first to last request)':<62} {at_receiver:>10.1f}")
    print(f"{'events/s, worker start to exit':<62} {overall:>10.1f}")
    verdict = "PASS" if added <= MAX_ADDED_MS else "MISS"
    print(f"{verdict}: one endpoint adds {added:+.3f} ms to an upload's answer (target <= {MAX_ADDED_MS} ms)")
    verdict = "PASS" if at_receiver >= MIN_EVENTS_PER_SECOND and delivered == args.events else "MISS"
    print(f"{verdict}: one worker delivers {at_receiver:.0f} events/s (target >= {MIN_EVENTS_PER_SECOND})")


if __name__ == "__main__":
    os.environ.setdefault("IMAGERY_ENV", "development")
    main()
