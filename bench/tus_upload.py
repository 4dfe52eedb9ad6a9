"""Resumable uploads benchmark (issue 24): a file at the upload size limit sent by tus in 5 MB chunks,
against a plain `POST /images` of the same file, in the same run; and the server's peak memory for each.

Run with `make bench` (or `.venv/bin/python bench/tus_upload.py --help`). The input is a PNG of noise just
under IMAGE_MAX_UPLOAD_BYTES (50 MB by default: 4096 pixels wide, noise does not compress), made once in
bench/out/inputs/. Each way runs on a fresh gunicorn (bench/server.py: one worker, SQLite and local files in
a temporary DATA_DIR), so that the worker's peak resident memory (VmHWM) is that way's alone:

- plain: one multipart `POST /images` with the API key;
- tus: `POST /uploads` (the upload URL), then tuspy (the real client the tests use) creates the upload
  and PATCHes 5 MB chunks, the last of which makes the image.

Rounds alternate between the two servers; the stored file is deleted between rounds (names are content
hashes: a repeat would skip the write). The target: tus costs at most 1.2x the plain POST (median of the
rounds), and the worker's peak stays under the pipeline's memory bound (README: 8 B x canvas pixels +
12 B x output pixels + 32 MiB, above the worker's peak before the first upload). It prints a table and
each target with PASS or MISS; it always exits 0: it reports, it does not test.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402
from server import HOST, AppServer, load_average, memory_kib, multipart  # noqa: E402
from tusclient.client import TusClient  # noqa: E402

MAX_RATIO = 1.2
CHUNK_BYTES = 5 * 1024 * 1024
MiB = 1024 * 1024
INPUTS = BENCH / "out" / "inputs"


def noise_png(limit: int) -> Path:
    """A PNG of RGB noise as large as fits under `limit` bytes (4096 wide; rows added until it would not)."""
    path = INPUTS / f"tus-noise-{limit}.png"
    if path.exists():
        return path
    INPUTS.mkdir(parents=True, exist_ok=True)
    width = 4096
    height = max(1, (limit - 64 * 1024) // (width * 3))  # PNG adds a filter byte a row and its framing
    while True:
        data = io.BytesIO()
        Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(
            data, "PNG", compress_level=1
        )
        if data.tell() <= limit:
            break
        height -= max(1, (data.tell() - limit) // (width * 3) + 1)
    path.write_bytes(data.getvalue())
    return path


def post_plain(server: AppServer, data: bytes) -> float:
    body, content_type = multipart({}, "image", "noise.png", data)
    start = time.perf_counter()
    status, answer = server.request("POST", "/images", body, content_type)
    elapsed = time.perf_counter() - start
    if status != 201:
        raise RuntimeError(f"POST /images answered {status}: {answer[:300]!r}")
    return elapsed


def post_tus(server: AppServer, data: bytes) -> float:
    """Mint the upload URL (not timed: the app's backend does it, once per file), then upload by tus."""
    status, answer = server.request("POST", "/uploads", b"{}", "application/json")
    if status != 201:
        raise RuntimeError(f"POST /uploads answered {status}: {answer[:300]!r}")
    url = f"http://{HOST}:{server.port}{urlsplit(json.loads(answer)['upload_url']).path}"
    start = time.perf_counter()
    uploader = TusClient(url).uploader(
        file_stream=io.BytesIO(data), chunk_size=CHUNK_BYTES, metadata={"filename": "noise.png"}
    )
    uploader.upload()
    elapsed = time.perf_counter() - start
    if "imagery-image" not in uploader.request.response_headers:
        raise RuntimeError("the last PATCH made no image")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--megabytes", type=int, default=50, help="The upload limit and the file's size (MiB)."
    )
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    limit = args.megabytes * MiB
    path = noise_png(limit)
    data = path.read_bytes()
    with Image.open(path) as image:
        pixels = image.width * image.height
        size = image.size
    # The pipeline's bound (README, "Memory"): a same-size PNG output, no enlargement.
    bound_kib = (8 * pixels + 12 * pixels + 32 * MiB) // 1024
    env = {"IMAGE_MAX_UPLOAD_BYTES": str(limit), "IMAGERY_AUTH": "write"}

    times: dict[str, list[float]] = {"plain": [], "tus": []}
    idle: dict[str, int] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-tus-"))
    try:
        with AppServer(tmp / "plain", env=env) as plain_server, AppServer(tmp / "tus", env=env) as tus_server:
            servers = {"plain": plain_server, "tus": tus_server}
            for way, server in servers.items():
                server.request("GET", "/images")  # the app imported and warm, before any upload
                idle[way] = memory_kib(server.worker_pid())["VmHWM"]
            for _ in range(args.rounds):
                for way, send in (("plain", post_plain), ("tus", post_tus)):
                    times[way].append(send(servers[way], data))
                    servers[way].forget_stored_files()
            peak = {way: memory_kib(server.worker_pid())["VmHWM"] for way, server in servers.items()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    plain_s, tus_s = statistics.median(times["plain"]), statistics.median(times["tus"])
    ratio = tus_s / plain_s
    print(f"load average: {load_average()}")
    print(
        f"input: {path.name}, {len(data)} bytes ({len(data) / MiB:.1f} MiB), {size[0]}x{size[1]}; "
        f"limit {limit} bytes; tus chunks of {CHUNK_BYTES // MiB} MiB "
        f"({-(-len(data) // CHUNK_BYTES)} PATCHes)"
    )
    print(f"{'way':<44} {'median s':>9} {'peak MiB':>9} {'above idle':>11}")
    for way, label in (
        ("plain", "POST /images (multipart, one request)"),
        ("tus", "tus: create + 5 MiB PATCHes"),
    ):
        rise = peak[way] - idle[way]
        print(
            f"{label:<44} {statistics.median(times[way]):>9.2f} {peak[way] / 1024:>9.0f} {rise / 1024:>10.0f}"
        )
    print(f"pipeline's memory bound for this input: {bound_kib / 1024:.0f} MiB above idle")
    verdict = "PASS" if ratio <= MAX_RATIO else "MISS"
    print(f"{verdict}: tus costs {ratio:.2f}x the plain POST (target <= {MAX_RATIO}x)")
    tus_rise = peak["tus"] - idle["tus"]
    verdict = "PASS" if tus_rise <= bound_kib else "MISS"
    print(
        f"{verdict}: the worker's peak rose {tus_rise / 1024:.0f} MiB during tus uploads "
        f"(bound {bound_kib / 1024:.0f} MiB; plain POST: {(peak['plain'] - idle['plain']) / 1024:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
