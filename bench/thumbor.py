"""Imagery against thumbor (issue 22): the same four cases side by side, requests alternating.

Run with `make bench`, which installs the pinned thumbor (requirements/bench-thumbor.txt) into a virtual
environment of its own (bench/out/thumbor-venv, never the app's) and passes its `thumbor` here; or
`.venv/bin/python bench/thumbor.py --thumbor PATH/TO/bin/thumbor`.

Both servers run on this machine at once, configured alike:
- Imagery under gunicorn as `make run` started it when the README's figures were measured
  (deploy/gunicorn.conf.py: cores + 1 workers, 2 threads each; 4 by default since), SQLite and local files in
  a temporary DATA_DIR, render rate limits out of reach; the photos
  uploaded unchanged (stored at full size, as the app stores them);
- thumbor with its file loader (the photos as uploaded) and file result storage, three processes (as many
  as Imagery's workers), JPEG quality 85 and WebP 80 like ours, progressive JPEG (its default, like our
  renditions).

The photos: twelve 4000x3000 photo-like JPEGs (bench/inputs.py's `photo_variants`). The cases, each
request alternating between the two servers on the same photo:
1. the first 320-wide JPEG of a photo (the stored renditions and thumbor's results deleted before each
   round, outside the timing);
2. the first 1280-wide WebP;
3. the same 320-wide JPEG again (stored), p50 over many requests, one keep-alive connection per side;
4. stored 320-wide JPEGs, 8 client threads with a keep-alive connection each, requests per second over
   alternating blocks of a few seconds.
For cases 1 and 2, the outputs' bytes and PSNR against a full-size Lanczos resize of the upload.

With `--nginx` (make bench passes Debian's, unpacked with the deploy tools), cases 3 and 4 again through
deploy/nginx.conf in front of a second app server with `FILE_ACCEL_REDIRECT=/_stored/` (the app answers
the headers, nginx sends the file: bench/front.py) and nginx's cache of the file endpoint (after the first
request of a URL, nginx answers it alone for a minute), alternating with thumbor; the goal there is 5x
thumbor's throughput. With `--wrk` (make bench installs Debian's wrk), that throughput is measured for both
sides by wrk, a C client on an event loop, with as many connections as there are client threads: Python
threads cannot send requests as fast as nginx answers them from its cache, so they would measure
themselves. The app's own X-Accel-Redirect answers are measured too, through the same configuration with
the cache off (`proxy_cache off`) in front of the same app.

It prints a table and each goal with PASS or MISS; it always exits 0: it reports, it does not test.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

import inputs  # noqa: E402
from baseline import psnr, reference  # noqa: E402
from front import NginxFront  # noqa: E402
from PIL import Image  # noqa: E402
from server import HOST, AppServer, free_port, load_average, multipart  # noqa: E402

from images.pixels.processing import EncodeOptions  # noqa: E402

PHOTOS = 12
CLIENTS = 8
PROCESSES = 3
APP_ENV = {
    # No render budgets: the bench measures the work, not the limits on it.
    "THROTTLE_RENDER_CPU_SECONDS_PER_ADDRESS": "",
    "THROTTLE_RENDER_CPU_SECONDS_PER_KEY": "",
    "THROTTLE_RENDER_MEGABYTES_PER_ADDRESS": "",
    "THROTTLE_RENDER_MEGABYTES_PER_KEY": "",
    "THROTTLE_READS_PER_ADDRESS": "100000000/minute",
    "THROTTLE_READS_PER_KEY": "100000000/minute",
    # `make run`'s process model when the README's figures were measured: cores + 1 workers of 2 threads.
    "WEB_CONCURRENCY": str(PROCESSES),
    "GUNICORN_THREADS": "2",
}


@dataclass
class Side:
    """One server's numbers."""

    first_320: list[float] = field(default_factory=list)
    first_1280: list[float] = field(default_factory=list)
    stored: list[float] = field(default_factory=list)
    bytes_320: list[int] = field(default_factory=list)
    bytes_1280: list[int] = field(default_factory=list)
    psnr_320: list[float] = field(default_factory=list)
    psnr_1280: list[float] = field(default_factory=list)
    throughput: list[float] = field(default_factory=list)
    front_stored: list[float] = field(default_factory=list)  # behind nginx: from its cache
    front_throughput: list[float] = field(default_factory=list)
    front_uncached: list[float] = field(default_factory=list)  # behind nginx: the app's X-Accel-Redirect
    front_uncached_p50: list[float] = field(default_factory=list)


class Client:
    """GETs on one keep-alive connection to a server (reconnecting when the server closes it)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> bytes:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=120)
            try:
                self.conn.request("GET", path)
                response = self.conn.getresponse()
                body = response.read()
                if response.will_close:
                    self.close()
                if response.status != 200:
                    raise RuntimeError(
                        f"GET {path} on :{self.port} answered {response.status}: {body[:200]!r}"
                    )
                return body
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class ThumborServer:
    """thumbor from its own virtual environment, on a free port; use as a context manager."""

    def __init__(self, binary: Path, folder: Path, originals: Path) -> None:
        self.binary, self.folder, self.originals = binary, folder, originals
        self.port = free_port()
        self.results = folder / "results"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ThumborServer:
        options = EncodeOptions()
        conf = self.folder / "thumbor.conf"
        conf.write_text(
            "\n".join(
                [
                    "LOADER = 'thumbor.loaders.file_loader'",
                    f"FILE_LOADER_ROOT_PATH = '{self.originals}'",
                    "STORAGE = 'thumbor.storages.no_storage'",
                    "RESULT_STORAGE = 'thumbor.result_storages.file_storage'",
                    f"RESULT_STORAGE_FILE_STORAGE_ROOT_PATH = '{self.results}'",
                    "RESULT_STORAGE_STORES_UNSAFE = True",
                    "RESULT_STORAGE_EXPIRATION_SECONDS = 0",
                    "ALLOW_UNSAFE_URL = True",
                    f"QUALITY = {options.jpeg_quality}",
                    f"WEBP_QUALITY = {options.webp_quality}",
                    "PROGRESSIVE_JPEG = True",
                    "AUTO_WEBP = False",
                    "RESPECT_ORIENTATION = True",
                    "MAX_AGE = 31536000",
                    "",
                ]
            )
        )
        self.log = (self.folder / "thumbor.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(self.binary),
                f"--port={self.port}",
                f"--ip={HOST}",
                f"--conf={conf}",
                f"--processes={PROCESSES}",
                "--log-level=error",
            ],
            stdout=self.log,
            stderr=self.log,
            # Its own process group: `--processes` forks workers that outlive a master stopped alone.
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"thumbor exited: {(self.folder / 'thumbor.log').read_text()[-2000:]}")
            try:
                Client(self.port).get("/healthcheck")
                return self
            except (OSError, RuntimeError):
                time.sleep(0.2)
        raise RuntimeError("thumbor did not answer in 60 s")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            # The master and the workers it forked, which a bench that stopped the master alone left running.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()

    def forget_results(self) -> None:
        shutil.rmtree(self.results, ignore_errors=True)


def timed(fn: Callable[[], bytes]) -> tuple[float, bytes]:
    start = time.perf_counter()
    body = fn()
    return (time.perf_counter() - start) * 1000, body


def throughput(port: int, paths: list[str], seconds: float) -> float:
    """Requests per second of CLIENTS threads, each on its own keep-alive connection, for `seconds`."""
    counts = [0] * CLIENTS
    stop = threading.Event()
    start_line = threading.Barrier(CLIENTS + 1)

    def client(index: int) -> None:
        c = Client(port)
        start_line.wait()
        i = index
        while not stop.is_set():
            c.get(paths[i % len(paths)])
            counts[index] += 1
            i += 1
        c.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    start_line.wait()
    began = time.perf_counter()
    time.sleep(seconds)  # the measuring window itself; nothing waits on it to be correct
    stop.set()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - began)


WRK_SCRIPT = """
local paths = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
"""


def wrk_throughput(wrk: Path, port: int, paths: list[str], seconds: float, folder: Path) -> float:
    """Requests per second by wrk: CLIENTS keep-alive connections on two threads, `paths` in turn."""
    script = folder / "paths.lua"
    script.write_text(WRK_SCRIPT % ", ".join(json.dumps(p) for p in paths))
    out = subprocess.run(
        [
            str(wrk),
            "-t2",
            f"-c{CLIENTS}",
            f"-d{max(1, round(seconds))}s",
            "-s",
            str(script),
            f"http://{HOST}:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw failed requests:\n{out}")
    return float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec:")))


@contextmanager
def servers(thumbor_bin: Path, folder: Path, photos: list[Path]) -> Iterator[tuple[AppServer, ThumborServer]]:
    folder.chmod(0o755)  # nginx's workers (another user when run as root) read the media folder
    originals = folder / "originals"
    originals.mkdir()
    for photo in photos:
        shutil.copy(photo, originals / photo.name)
    with (
        AppServer(folder / "imagery", env=APP_ENV) as app,
        ThumborServer(thumbor_bin, folder, originals) as th,
    ):
        yield app, th


def upload_all(app: AppServer, photos: list[Path]) -> list[int]:
    ids = []
    for photo in photos:
        body, content_type = multipart({}, "image", photo.name, photo.read_bytes())
        status, payload = app.request("POST", "/images", body, content_type)
        if status != 201:
            raise RuntimeError(f"upload answered {status}: {payload[:300]!r}")
        ids.append(json.loads(payload)["id"])
    return ids


def measure_front(
    nginx: Path, folder: Path, photos: list[Path], th: ThumborServer, sides: tuple[Side, Side], args: Any
) -> None:
    """Cases 3 and 4 through nginx in front of an app server that answers X-Accel-Redirect."""
    imagery, thumbor = sides
    env = {**APP_ENV, "FILE_ACCEL_REDIRECT": "/_stored/"}
    media = folder / "imagery-front" / "media"
    with (
        AppServer(folder / "imagery-front", env=env) as app,
        NginxFront(nginx, folder / "nginx", app_port=app.port, media_root=media) as front,
    ):
        ids = upload_all(app, photos)
        paths = [f"/images/{i}/file?width=320&format=jpeg" for i in ids]
        stored_theirs = [f"/unsafe/320x0/{p.name}" for p in photos]
        ours, theirs = Client(front.port), Client(th.port)
        for a, b in zip(paths, stored_theirs, strict=True):  # rendered and stored now (thumbor's already)
            body = ours.get(a)
            if not body.startswith(b"\xff\xd8") or ours.get(a) != body:
                raise RuntimeError(f"nginx answered no JPEG, or other bytes, for {a}: {body[:200]!r}")
            theirs.get(b)
        for n in range(args.reads):
            imagery.front_stored.append(timed(functools.partial(ours.get, paths[n % PHOTOS]))[0])
            thumbor.front_stored.append(timed(functools.partial(theirs.get, stored_theirs[n % PHOTOS]))[0])
        ours.close(), theirs.close()
        for _ in range(args.blocks):
            if args.wrk is not None:
                imagery.front_throughput.append(
                    wrk_throughput(args.wrk, front.port, paths, args.seconds, folder)
                )
                thumbor.front_throughput.append(
                    wrk_throughput(args.wrk, th.port, stored_theirs, args.seconds, folder)
                )
            else:
                imagery.front_throughput.append(throughput(front.port, paths, args.seconds))
                thumbor.front_throughput.append(throughput(th.port, stored_theirs, args.seconds))
        # The same nginx without its cache: the app answers every request (X-Accel-Redirect).
        bare = NginxFront(nginx, folder / "nginx-nocache", app_port=app.port, media_root=media, cache=False)
        with bare:
            ours = Client(bare.port)
            for n in range(args.reads):
                imagery.front_uncached_p50.append(timed(functools.partial(ours.get, paths[n % PHOTOS]))[0])
            ours.close()
            for _ in range(args.blocks):
                imagery.front_uncached.append(throughput(bare.port, paths, args.seconds))


def psnr_of(body: bytes, expected: Image.Image) -> float:
    with Image.open(io.BytesIO(body)) as im:
        return psnr(im.convert("RGB"), expected)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--thumbor", type=Path, required=True, help="thumbor's executable (its own venv)")
    parser.add_argument("--nginx", type=Path, help="nginx's executable: stored renditions behind it too")
    parser.add_argument(
        "--wrk", type=Path, help="wrk's executable: the throughput behind nginx measured by it"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="first-render rounds over the photos (default 3)"
    )
    parser.add_argument("--reads", type=int, default=301, help="stored reads per side (default 301)")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of a throughput block (default 2)")
    parser.add_argument("--blocks", type=int, default=3, help="throughput blocks per side (default 3)")
    args = parser.parse_args()

    photos = inputs.photo_variants(BENCH / "out" / "photo-variants", PHOTOS)
    print(f"load average at the start: {load_average()}")
    imagery, thumbor = Side(), Side()
    with (
        tempfile.TemporaryDirectory(prefix="imagery-vs-thumbor-") as tmp,
        servers(args.thumbor, Path(tmp), photos) as (app, th),
    ):
        ids = upload_all(app, photos)
        ours, theirs = Client(app.port), Client(th.port)
        cases = [
            ("320 JPEG", "width=320&format=jpeg", "320x0", (320, 240), "first_320", "bytes_320", "psnr_320"),
            (
                "1280 WebP",
                "width=1280&format=webp",
                "1280x0/filters:format(webp)",
                (1280, 960),
                "first_1280",
                "bytes_1280",
                "psnr_1280",
            ),
        ]
        expected = {size: {} for *_, size, _, _, _ in cases}  # type: dict[tuple[int, int], dict[int, Image.Image]]
        for label, query, thumbor_op, size, times, sizes, quality in cases:
            print(f"measuring first renders, {label} ...", file=sys.stderr, flush=True)
            for round_ in range(args.rounds + 1):  # round 0 warms both up, untimed
                shutil.rmtree(app.data_dir / "media" / "renditions", ignore_errors=True)
                th.forget_results()
                for index, (image_id, photo) in enumerate(zip(ids, photos, strict=True)):
                    a = functools.partial(ours.get, f"/images/{image_id}/file?{query}")
                    b = functools.partial(theirs.get, f"/unsafe/{thumbor_op}/{photo.name}")
                    # Alternate which goes first, so neither always follows the other's work.
                    pair = [(imagery, a), (thumbor, b)] if index % 2 == 0 else [(thumbor, b), (imagery, a)]
                    for side, fn in pair:
                        ms, body = timed(fn)
                        if round_ == 0:
                            continue
                        getattr(side, times).append(ms)
                        if round_ == 1:
                            if index not in expected[size]:
                                expected[size][index] = reference(photo, size)
                            getattr(side, sizes).append(len(body))
                            getattr(side, quality).append(psnr_of(body, expected[size][index]))

        print("measuring stored renditions ...", file=sys.stderr, flush=True)
        stored_ours = [f"/images/{i}/file?width=320&format=jpeg" for i in ids]
        stored_theirs = [f"/unsafe/320x0/{p.name}" for p in photos]
        for a, b in zip(stored_ours, stored_theirs, strict=True):  # all stored now
            ours.get(a), theirs.get(b)
        for n in range(args.reads):
            imagery.stored.append(timed(functools.partial(ours.get, stored_ours[n % PHOTOS]))[0])
            thumbor.stored.append(timed(functools.partial(theirs.get, stored_theirs[n % PHOTOS]))[0])
        ours.close(), theirs.close()
        print("measuring throughput ...", file=sys.stderr, flush=True)
        for _ in range(args.blocks):
            imagery.throughput.append(throughput(app.port, stored_ours, args.seconds))
            thumbor.throughput.append(throughput(th.port, stored_theirs, args.seconds))
        if args.nginx is not None:
            print("measuring stored renditions behind nginx ...", file=sys.stderr, flush=True)
            measure_front(args.nginx, Path(tmp), photos, th, (imagery, thumbor), args)

    version = subprocess.run([args.thumbor, "--version"], capture_output=True, text=True).stdout.strip()
    report(imagery, thumbor, args, version)
    print(f"\nload average at the end: {load_average()}")


def report(imagery: Side, thumbor: Side, args: argparse.Namespace, version: str) -> None:
    med = statistics.median
    print(f"\nImagery vs {version} ({PROCESSES} processes each; thumbor: file loader and result storage),")
    print(f"{PHOTOS} 4000x3000 JPEGs, requests alternating; first renders: {args.rounds} rounds")
    header = f"{'case':<34} {'Imagery':>10} {'thumbor':>10} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    rows = [
        ("first 320-wide JPEG, p50 ms", med(imagery.first_320), med(thumbor.first_320)),
        ("first 1280-wide WebP, p50 ms", med(imagery.first_1280), med(thumbor.first_1280)),
        ("the 320 JPEG again (stored), p50 ms", med(imagery.stored), med(thumbor.stored)),
        (f"stored, {CLIENTS} clients, req/s (median)", med(imagery.throughput), med(thumbor.throughput)),
    ]
    goals = [("<=", 1.0), ("<=", 1.0), ("<=", 1.0), (">=", 1.0)]
    if imagery.front_stored:
        rows += [
            ("behind nginx: stored, p50 ms", med(imagery.front_stored), med(thumbor.front_stored)),
            (
                f"behind nginx: {CLIENTS} {'conns (wrk)' if args.wrk else 'clients'}, req/s",
                med(imagery.front_throughput),
                med(thumbor.front_throughput),
            ),
            ("  no cache (X-Accel only): p50 ms", med(imagery.front_uncached_p50), med(thumbor.front_stored)),
            (
                f"  no cache: {CLIENTS} clients, req/s",
                med(imagery.front_uncached),
                med(thumbor.throughput),
            ),
        ]
        goals += [("<=", 1.0), (">=", 5.0), ("<=", 1.0), (">=", 1.0)]
    for label, a, b in rows:
        print(f"{label:<34} {a:>10.2f} {b:>10.2f} {a / b:>6.2f}x")
    print()
    print(f"{'outputs (mean)':<34} {'Imagery':>10} {'thumbor':>10}")
    for label, key in (("320 JPEG bytes", "bytes_320"), ("1280 WebP bytes", "bytes_1280")):
        print(
            f"{label:<34} {statistics.mean(getattr(imagery, key)):>10.0f} "
            f"{statistics.mean(getattr(thumbor, key)):>10.0f}"
        )
    for label, key in (("320 JPEG PSNR dB", "psnr_320"), ("1280 WebP PSNR dB", "psnr_1280")):
        print(
            f"{label:<34} {statistics.mean(getattr(imagery, key)):>10.2f} "
            f"{statistics.mean(getattr(thumbor, key)):>10.2f}"
        )
    print("(PSNR against a full decode and one Lanczos resize of the uploaded photo)")
    print()
    for (label, a, b), (sense, target) in zip(rows, goals, strict=True):
        ok = a / b <= target if sense == "<=" else a / b >= target
        print(f"{'PASS' if ok else 'MISS'}  {label}: {a / b:.2f}x thumbor's (goal {sense} {target}x)")


if __name__ == "__main__":
    main()
