"""Render budgets benchmark (issue 20.3): one address hammering distinct renditions against a live server.

Run with `make bench` (or `.venv/bin/python bench/render_budget.py --help`). It starts the app under
gunicorn (bench/server.py: SQLite and local files in a temporary DATA_DIR) with one worker process of four
threads and two decode slots, so that one process can keep both cores of the bench machine busy and its
own memory holds every count (several processes need a shared cache for that: README, "Render budgets").
`NUM_PROXIES=1` lets the bench speak for several client addresses through `X-Forwarded-For`. It uploads
four 4000x3000 photos (bench/inputs.py, turned four ways so their renditions differ), then:

1. A person browsing (one address): 100 distinct small renditions, the gallery's `srcset` widths up to
   640 and its presets, format `auto` as Chromium asks, four at a time. Reported: answers other than 200
   (the budget must never refuse them) and the CPU the server spent.
2. An attacker (another address): four connections asking distinct renditions, the costliest first (every
   size and format of the four photos, by output pixels weighted by format), for `--seconds` (60).
   Reported: the answers, the CPU seconds the worker process spent (all its threads,
   from /proc) and the bytes of renditions stored, against the budget's bounds at the defaults: 30 s of
   CPU in a minute (two windows of `THROTTLE_RENDER_CPU_SECONDS_PER_ADDRESS`, 15/minute) and 200 MB in an
   hour (two of `THROTTLE_RENDER_MEGABYTES_PER_ADDRESS`, 100/hour).
   It asks again as soon as Retry-After allows: it gets everything the budget lets through, and the
   server's CPU is that of its renders (asking sooner only adds refusals, which the read limit bounds).
3. The baseline: the same attacker for `--baseline-seconds` (20) against a second server with the render
   budgets off, as CPU seconds and megabytes per minute; the ratio is what the budget leaves of it.

It prints a table and the figures. It always exits 0: it reports, it does not test.
"""

from __future__ import annotations

import argparse
import http.client
import io
import itertools
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

import inputs  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402
from server import HOST, AppServer, load_average, multipart  # noqa: E402

CHROMIUM_ACCEPT = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"
# Relative encoding cost per output pixel (images/render_costs.py): the attacker asks the dearest first.
FORMAT_WEIGHT = {"png": 0.45, "avif": 0.25, "webp": 0.17, "jpeg": 0.09}
# The app's ladder (images/renditions.py): 16, then 20 * 2^(k/5) up to 4096.
LADDER = (16, *(round(20 * 2 ** (k / 5)) for k in range(39) if round(20 * 2 ** (k / 5)) < 4096))
PRESETS = ("thumb", "small", "large")
CPU_BOUND_PER_MINUTE = 2 * 15.0
BYTES_BOUND_PER_HOUR = 2 * 100e6
BUDGETS_OFF = {
    "THROTTLE_RENDER_CPU_SECONDS_PER_ADDRESS": "",
    "THROTTLE_RENDER_MEGABYTES_PER_ADDRESS": "",
    "THROTTLE_RENDER_CPU_SECONDS_PER_KEY": "",
    "THROTTLE_RENDER_MEGABYTES_PER_KEY": "",
}
# One process all along: a worker recycled after GUNICORN_MAX_REQUESTS would forget the counts it holds.
SERVER_ENV = {
    "GUNICORN_THREADS": "4",
    "IMAGE_DECODE_CONCURRENCY": "2",
    "NUM_PROXIES": "1",
    "GUNICORN_MAX_REQUESTS": "0",
}


@dataclass
class Run:
    answers: Counter[int] = field(default_factory=Counter)
    cpu_seconds: float = 0.0
    stored_bytes: int = 0
    seconds: float = 0.0


def worker_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def renditions_bytes(server: AppServer) -> int:
    folder = server.data_dir / "media" / "renditions"
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def upload_photos(server: AppServer, photo: Path) -> list[int]:
    """Four photos from one: as it is, mirrored, flipped, turned; stored at full size."""
    ids = []
    base = Image.open(photo)
    for variant in (base, ImageOps.mirror(base), ImageOps.flip(base), base.rotate(180)):
        buffer = io.BytesIO()
        variant.save(buffer, "JPEG", quality=92)
        body, content_type = multipart({"title": "bench"}, "image", "photo.jpg", buffer.getvalue())
        status, answer = server.request("POST", "/images", body, content_type)
        if status != 201:
            raise RuntimeError(f"upload answered {status}: {answer[:300]!r}")
        ids.append(json.loads(answer)["id"])
    return ids


def attacker_queries(ids: list[int], size: tuple[int, int]) -> list[str]:
    """Every distinct rendition of the photos, the costliest (output pixels x format weight) first."""
    w, h = size
    asks: list[tuple[float, str]] = []
    for image_id, fmt in itertools.product(ids, FORMAT_WEIGHT):
        sides = [(f"width={x}", x * x * h / w) for x in LADDER if x < w] + [
            (f"height={y}", y * y * w / h) for y in LADDER if y < h
        ]
        sides += [
            (f"preset={p}", {"thumb": 200 * 200, "small": 480 * 360, "large": 1600 * 1200}[p])
            for p in PRESETS
        ]
        for query, pixels in sides:
            asks.append((pixels * FORMAT_WEIGHT[fmt], f"/images/{image_id}/file?{query}&format={fmt}"))
    return [path for _, path in sorted(asks, reverse=True)]


def person_queries(ids: list[int], count: int) -> list[str]:
    """What a person browsing the gallery asks: srcset widths up to 640 and the presets, format auto."""
    paths = [f"/images/{i}/file?width={x}" for x in LADDER if x <= 640 for i in ids]
    paths += [f"/images/{i}/file?preset={p}" for i in ids for p in ("thumb", "small")]
    return paths[:count]


def hammer(
    server: AppServer,
    paths: list[str],
    *,
    address: str,
    accept: str,
    connections: int,
    seconds: float | None,
    insist: bool = False,
    method: str = "GET",
) -> Run:
    """Ask `paths` in turn over `connections` keep-alive connections until done or `seconds` have passed.

    `insist`: a path refused (429, 503) is asked again, before the next, as soon as Retry-After allows:
    the costliest renditions not made yet, everything the budget lets through (asking sooner adds only
    refusals, which the read rate limit bounds).
    """
    run = Run()
    queue = list(reversed(paths))  # popped from the end
    lock = threading.Lock()
    deadline = None if seconds is None else time.monotonic() + seconds
    pid = server.worker_pid()
    cpu_before, bytes_before, started = worker_cpu_seconds(pid), renditions_bytes(server), time.monotonic()

    def client() -> None:
        conn = http.client.HTTPConnection(HOST, server.port, timeout=120)
        headers = {"X-Forwarded-For": address, "Accept": accept}
        while deadline is None or time.monotonic() < deadline:
            with lock:
                if not queue:
                    break
                path = queue.pop()
            try:
                conn.request(method, path, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
                retry_after = float(response.getheader("Retry-After") or 0)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(HOST, server.port, timeout=120)
                status, retry_after = 0, 1.0
            with lock:
                run.answers[status] += 1
                if insist and status in (0, 429, 503):
                    queue.append(path)
            if insist and retry_after and deadline is not None:
                threading.Event().wait(min(retry_after, max(deadline - time.monotonic(), 0)))
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.seconds = time.monotonic() - started
    run.cpu_seconds = worker_cpu_seconds(pid) - cpu_before
    run.stored_bytes = renditions_bytes(server) - bytes_before
    return run


def answers(run: Run) -> str:
    return ", ".join(f"{status or 'error'}: {n}" for status, n in sorted(run.answers.items()))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=60, help="how long the attacker hammers (default 60)"
    )
    parser.add_argument("--baseline-seconds", type=float, default=20, help="the unbudgeted run (default 20)")
    parser.add_argument("--connections", type=int, default=4, help="the attacker's connections (default 4)")
    args = parser.parse_args()

    photo = inputs.ensure_inputs(BENCH / "out" / "inputs")[inputs.PHOTO_JPEG]
    size = Image.open(photo).size
    print(f"load average at the start: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="imagery-bench-") as tmp:
        with AppServer(Path(tmp) / "budgeted", env=SERVER_ENV) as server:
            ids = upload_photos(server, photo)
            person = hammer(
                server,
                person_queries(ids, 100),
                address="10.0.0.2",
                accept=CHROMIUM_ACCEPT,
                connections=4,
                seconds=None,
            )
            attack = hammer(
                server,
                attacker_queries(ids, size),
                address="10.0.0.1",
                accept="*/*",
                connections=args.connections,
                seconds=args.seconds,
                insist=True,
            )
        with AppServer(Path(tmp) / "unbudgeted", env={**SERVER_ENV, **BUDGETS_OFF}) as server:
            ids = upload_photos(server, photo)
            baseline = hammer(
                server,
                attacker_queries(ids, size),
                address="10.0.0.1",
                accept="*/*",
                connections=args.connections,
                seconds=args.baseline_seconds,
                insist=True,
            )

    per_minute = 60 / attack.seconds
    base_per_minute = 60 / baseline.seconds
    print()
    print("| run | time | answers | server CPU | renditions stored |")
    print("|---|---|---|---|---|")
    for name, run in (
        ("a person: 100 small renditions", person),
        ("one address hammering, budgets on", attack),
        ("one address hammering, budgets off", baseline),
    ):
        print(
            f"| {name} | {run.seconds:.1f} s | {answers(run)} | {run.cpu_seconds:.1f} s "
            f"| {run.stored_bytes / 1e6:.1f} MB |"
        )
    print()
    refused = sum(n for status, n in person.answers.items() if status != 200)
    asked = sum(person.answers.values())
    print(f"person: {refused} of {asked} answers were not 200 (the budget must refuse none)")
    cpu, base_cpu = attack.cpu_seconds * per_minute, baseline.cpu_seconds * base_per_minute
    print(
        f"attacker, server CPU a minute: {cpu:.1f} s (bound {CPU_BOUND_PER_MINUTE:.0f} s: "
        f"{cpu / CPU_BOUND_PER_MINUTE:.2f} of it); without budgets {base_cpu:.1f} s (what this machine "
        f"gave), so the budget leaves {cpu / max(base_cpu, 1e-9):.2f} of it"
    )
    stored, bound = attack.stored_bytes / 1e6, BYTES_BOUND_PER_HOUR / 1e6
    base_stored = baseline.stored_bytes * base_per_minute / 1e6
    print(
        f"attacker, stored: {stored:.1f} MB in {attack.seconds:.0f} s (bound {bound:.0f} MB an hour: "
        f"{stored / bound:.2f} of it); without budgets {base_stored:.0f} MB a minute"
    )
    print(f"load average at the end: {load_average()}")


if __name__ == "__main__":
    main()
