"""Renditions benchmark (issue 14): GET /images/{id}/file against baselines measured in the same run.

Run with `make bench` (or `.venv/bin/python bench/renditions.py --help`). It uploads bench/inputs.py's
4000x3000 photo to the app under gunicorn (bench/server.py: one worker, SQLite and local files in a
temporary DATA_DIR, render budgets off), stored at full size, then measures:

1. First request of `?width=320&format=jpeg` (the rendition's file deleted before each run, outside the
   timing) against the bare pipeline (`processing.render`: Pillow's DCT-scaled draft decode, resize and
   encode) of the *uploaded* file to the same output, run interleaved in this process. The target: at
   most 1.3x (issue 22: the stored file must not cost more to decode than the upload did). Shown too:
   the bare pipeline on the stored file, and on the stored file rewritten progressive (how uploads were
   stored before issue 22).
2. A stored rendition (`?width=320&format=jpeg` again) against the app serving a stored original of the
   same kind and size (a second upload stored 320 wide, fetched at its `url`, /media/...), interleaved;
   p50 of each, one new connection per request. The target: at most 1.5x. Shown too: the 4000x3000
   original at its `url` and through `/images/{id}/file` with no parameters.
3. First-request time of AVIF at 320, 1280 and 2560 wide at the configured speed (IMAGE_AVIF_SPEED), next
   to WebP and JPEG, and the bare pipeline's AVIF at libavif's default speed (6) for comparison.
4. Concurrency (issue 22): first renders (`?width=320&format=jpeg`) of twelve distinct 4000x3000 photos
   under `make run`'s process model as the README's figures were measured (deploy/gunicorn.conf.py:
   cores + 1 workers of 2 threads, 4 by default since; one decode slot each), by 1 client and by 4 clients at
   once, alternating rounds; the target: 4 clients' throughput
   at least 1.8x one client's on 2 cores.

It prints a table, then each target with PASS or MISS. It always exits 0: it reports, it does not test.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

import inputs  # noqa: E402
from PIL import Image  # noqa: E402
from server import HOST, AppServer, load_average, multipart  # noqa: E402

from images.pixels.processing import EncodeOptions, OutputFormat, render  # noqa: E402

MAX_FIRST_RATIO = 1.3
MAX_STORED_RATIO = 1.5
AVIF_WIDTHS = (320, 1280, 2560)
MIN_CONCURRENT_RATIO = 1.8
CONCURRENT_CLIENTS = 4


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]


def get(server: AppServer, path: str, accept: str = "*/*") -> Answer:
    """One GET on a new connection, read to the end."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=120)
    try:
        conn.request("GET", path, headers={"Connection": "close", "Accept": accept})
        response = conn.getresponse()
        return Answer(response.status, response.read(), {k.lower(): v for k, v in response.getheaders()})
    finally:
        conn.close()


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def upload(server: AppServer, data: bytes, **fields: str) -> dict[str, object]:
    body, content_type = multipart(fields, "image", "photo.jpg", data)
    status, payload = server.request("POST", "/images", body, content_type)
    if status != 201:
        raise RuntimeError(f"POST /images answered {status}: {payload[:300]!r}")
    return json.loads(payload)


def forget_renditions(server: AppServer) -> None:
    shutil.rmtree(server.data_dir / "media" / "renditions", ignore_errors=True)


def first_render(server: AppServer, path: str) -> Answer:
    forget_renditions(server)
    answer = get(server, path)
    if answer.status != 200:
        raise RuntimeError(f"GET {path} answered {answer.status}: {answer.body[:300]!r}")
    return answer


def median_interleaved(a: Callable[[], object], b: Callable[[], object], runs: int) -> tuple[float, float]:
    """Medians (ms) of `a` and `b`, run alternately after a warm-up each, so both see the same noise."""
    a(), b()
    times_a, times_b = [], []
    for _ in range(runs):
        times_a.append(timed(a))
        times_b.append(timed(b))
    return statistics.median(times_a), statistics.median(times_b)


def first_renders_per_second(server: AppServer, paths: list[str], clients: int) -> float:
    """First renders of every path, by `clients` threads at once (each its share), per second."""
    forget_renditions(server)
    start_line = threading.Barrier(clients + 1)
    failures: list[str] = []

    def client(share: list[str]) -> None:
        start_line.wait()
        for path in share:
            answer = get(server, path)
            if answer.status != 200:
                failures.append(f"{path}: {answer.status}")

    threads = [threading.Thread(target=client, args=(paths[i::clients],)) for i in range(clients)]
    for t in threads:
        t.start()
    start_line.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"first renders failed: {failures[:3]}")
    return len(paths) / elapsed


def measure_concurrency(folder: Path, limits: dict[str, str | None], rounds: int) -> tuple[float, float]:
    """Median first renders per second with one client and with CONCURRENT_CLIENTS, alternating."""
    photos = inputs.photo_variants(BENCH / "out" / "photo-variants", 12)
    env = {**limits, "WEB_CONCURRENCY": str((os.cpu_count() or 1) + 1), "GUNICORN_THREADS": "2"}
    with AppServer(folder, env=env) as server:
        ids = [upload(server, photo.read_bytes())["id"] for photo in photos]
        paths = [f"/images/{i}/file?width=320&format=jpeg" for i in ids]
        first_renders_per_second(server, paths, CONCURRENT_CLIENTS)  # warm every worker up
        one, many = [], []
        for _ in range(rounds):
            one.append(first_renders_per_second(server, paths, 1))
            many.append(first_renders_per_second(server, paths, CONCURRENT_CLIENTS))
    return statistics.median(one), statistics.median(many)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15, help="timed first renders per side (default 15)")
    parser.add_argument("--reads", type=int, default=301, help="timed reads per side (default 301)")
    parser.add_argument("--avif-runs", type=int, default=5, help="timed runs per AVIF width (default 5)")
    parser.add_argument("--rounds", type=int, default=5, help="concurrency rounds per side (default 5)")
    args = parser.parse_args()

    photo = inputs.ensure_inputs(BENCH / "out" / "inputs")[inputs.PHOTO_JPEG]
    # Every first render is timed many times over: the render budgets are off (the read limits stay).
    limits = {
        "THROTTLE_RENDER_CPU_SECONDS_PER_ADDRESS": "",
        "THROTTLE_RENDER_MEGABYTES_PER_ADDRESS": "",
        "THROTTLE_RENDER_CPU_SECONDS_PER_KEY": "",
        "THROTTLE_RENDER_MEGABYTES_PER_KEY": "",
    }
    print(f"load average at the start: {load_average()}")
    with (
        tempfile.TemporaryDirectory(prefix="imagery-bench-") as tmp,
        AppServer(Path(tmp), env=limits) as server,
    ):
        big = upload(server, photo.read_bytes())
        small = upload(server, photo.read_bytes(), width="320")
        stored_path = Path(tmp) / "media" / str(big["url"]).split("/media/", 1)[1]
        stored = stored_path.read_bytes()
        file_path = f"/images/{big['id']}/file"
        rendition = f"{file_path}?width=320&format=jpeg"

        def bare(
            width: int = 320,
            fmt: OutputFormat = OutputFormat.JPEG,
            speed: int | None = None,
            path: Path = stored_path,
        ) -> bytes:
            options = EncodeOptions() if speed is None else EncodeOptions(avif_speed=speed)
            with path.open("rb") as f:
                return render(f, width=width, output_format=fmt, options=options).data

        # 1. First render against the bare pipeline on the uploaded file.
        print("measuring first renders ...", file=sys.stderr, flush=True)
        http_ms, uploaded_ms = median_interleaved(
            lambda: first_render(server, rendition), lambda: bare(path=photo), args.runs
        )
        same = first_render(server, rendition).body == bare()
        progressive_path = Path(tmp) / "stored-progressive.jpg"
        with Image.open(stored_path) as im:
            im.save(
                progressive_path, "JPEG", quality="keep", subsampling="keep", optimize=True, progressive=True
            )
        bare_ms, progressive_ms = median_interleaved(bare, lambda: bare(path=progressive_path), args.runs)

        # 2. A stored rendition against a stored original of the same size, both served by the app.
        print("measuring stored reads ...", file=sys.stderr, flush=True)
        get(server, rendition)
        small_path = "/media/" + str(small["url"]).split("/media/", 1)[1]
        rendition_size, small_size = len(get(server, rendition).body), len(get(server, small_path).body)
        stored_ms, original_ms = median_interleaved(
            lambda: get(server, rendition), lambda: get(server, small_path), args.reads
        )
        big_media = "/media/" + str(big["url"]).split("/media/", 1)[1]
        big_ms, big_api_ms = median_interleaved(
            lambda: get(server, big_media), lambda: get(server, file_path), max(31, args.reads // 10)
        )

        # 3. AVIF (and WebP, JPEG) first renders by width.
        print("measuring AVIF ...", file=sys.stderr, flush=True)
        rows = []
        for width in AVIF_WIDTHS:
            row = {"width": width}
            for fmt in ("avif", "webp", "jpeg"):
                path = f"{file_path}?width={width}&format={fmt}"
                times = [timed(lambda path=path: first_render(server, path)) for _ in range(args.avif_runs)]
                row[fmt] = statistics.median(times)
                row[f"{fmt}_bytes"] = len(first_render(server, path).body)
            slow = [
                timed(lambda w=width: bare(w, OutputFormat.AVIF, 6))
                for _ in range(max(3, args.avif_runs // 2))
            ]
            row["avif6_bare"] = statistics.median(slow)
            row["avif6_bytes"] = len(bare(width, OutputFormat.AVIF, 6))
            rows.append(row)

    # 4. Concurrency of first renders.
    print("measuring concurrent first renders ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="imagery-bench-") as tmp:
        one_rps, many_rps = measure_concurrency(Path(tmp), limits, args.rounds)

    print(
        f"stored original: {len(stored)} bytes, 4000x3000 JPEG; the 320-wide rendition {rendition_size} bytes"
    )
    print()
    print(f"first request ?width=320&format=jpeg, median of {args.runs}: {http_ms:.1f} ms; bare pipeline on")
    print(f"  the uploaded file, interleaved: {uploaded_ms:.1f} ms; ratio {http_ms / uploaded_ms:.2f}x")
    print(f"  bytes served {'identical to' if same else 'DIFFERENT from'} the bare pipeline's (stored file)")
    print(f"  the bare pipeline on the stored (baseline) file: {bare_ms:.1f} ms; on the same stored")
    print(f"  progressive (before issue 22): {progressive_ms:.1f} ms, {progressive_ms / bare_ms:.2f}x")
    print(
        f"stored rendition, p50 of {args.reads}: {stored_ms:.2f} ms; the app serving a stored original of the"
    )
    print(f"  same size ({small_size} bytes, /media/), interleaved: {original_ms:.2f} ms; ratio")
    print(f"  {stored_ms / original_ms:.2f}x")
    print(f"  for scale: the 4000x3000 original at /media/ {big_ms:.2f} ms,")
    print(f"  at /images/{{id}}/file {big_api_ms:.2f} ms")
    print()
    print("first request by width (ms, median; bytes), AVIF at IMAGE_AVIF_SPEED=8 through the app;")
    print("avif@6: the bare pipeline at libavif's default speed, for comparison")
    header = f"{'width':>6} {'avif':>8} {'webp':>8} {'jpeg':>8} {'avif@6':>8}   "
    header += f"{'avif B':>8} {'webp B':>8} {'jpeg B':>8} {'avif@6 B':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['width']:>6} {r['avif']:>8.0f} {r['webp']:>8.0f} {r['jpeg']:>8.0f} "
            f"{r['avif6_bare']:>8.0f}   "
            f"{r['avif_bytes']:>8} {r['webp_bytes']:>8} {r['jpeg_bytes']:>8} {r['avif6_bytes']:>9}"
        )
    print()
    first_ok = http_ms / uploaded_ms <= MAX_FIRST_RATIO
    stored_ok = stored_ms / original_ms <= MAX_STORED_RATIO
    print(
        f"{'PASS' if first_ok else 'MISS'}  first request of width=320 <= {MAX_FIRST_RATIO}x the bare "
        f"pipeline on the uploaded file: {http_ms / uploaded_ms:.3f}x ({http_ms:.1f} vs {uploaded_ms:.1f} ms)"
    )
    print(
        f"{'PASS' if stored_ok else 'MISS'}  stored rendition p50 <= {MAX_STORED_RATIO}x the app serving a "
        f"stored original: {stored_ms / original_ms:.3f}x ({stored_ms:.2f} vs {original_ms:.2f} ms)"
    )
    concurrent_ok = many_rps / one_rps >= MIN_CONCURRENT_RATIO
    print(
        f"{'PASS' if concurrent_ok else 'MISS'}  first renders of distinct images, {CONCURRENT_CLIENTS} "
        f"clients >= {MIN_CONCURRENT_RATIO}x one client's throughput on {os.cpu_count()} cores: "
        f"{many_rps / one_rps:.2f}x ({many_rps:.1f} vs {one_rps:.1f} renders/s)"
    )
    avif = ", ".join(f"{r['width']}: {r['avif']:.0f} ms" for r in rows)
    print(f"INFO  AVIF first request at speed 8: {avif}")
    print(f"\nload average at the end: {load_average()}")


if __name__ == "__main__":
    main()
