"""The task queue benchmark: what eager presets cost an upload's answer on the queue, against rendering them
in the request, and how fast one worker renders them.

Run with `make bench` (or `.venv/bin/python bench/task_queue.py --help`). Three servers in turn
(bench/server.py: gunicorn, one worker, SQLite and local files in a temporary DATA_DIR), each receiving the
same `--uploads` photos (distinct bytes, `--size`, JPEG) one after another:

1. baseline: no eager presets;
2. queue: `IMAGE_EAGER_PRESETS=thumb,small,large` on the database queue (TASK_BACKEND=database): the upload
   only enqueues, on commit;
3. inline: the same presets with TASK_BACKEND=immediate: rendered in the request, after the commit (what an
   upload would cost without a queue).

Reported: the median answer of each, the ratios to the baseline, and, after the queue run, one
`manage.py task_worker --batch` on that server's database: tasks per second and renditions stored. It always
exits 0: it reports, it does not test.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

import inputs  # noqa: E402
from server import AppServer, multipart  # noqa: E402

EAGER = "thumb,small,large"


def photos(count: int, size: tuple[int, int]) -> list[bytes]:
    base = inputs.photo_like(size)
    out = []
    for i in range(count):
        im = base.copy()
        im.putpixel((i % size[0], 0), (i % 256, 0, 0))  # distinct bytes: no content-addressed reuse
        buffer = io.BytesIO()
        im.save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def upload_times(server: AppServer, files: list[bytes]) -> list[float]:
    times = []
    for data in files:
        body, content_type = multipart({"title": "bench"}, "image", "photo.jpg", data)
        started = time.perf_counter()
        status, answer = server.request("POST", "/images", body, content_type)
        times.append(time.perf_counter() - started)
        if status != 201:
            raise RuntimeError(f"upload answered {status}: {answer[:200]!r}")
    return times


def run(name: str, env: dict[str, str | None], files: list[bytes], folder: Path) -> tuple[float, AppServer]:
    server = AppServer(folder / name, env=env)
    with server:
        upload_times(server, files[:2])  # warm up (imports, first connection)
        times = upload_times(server, files[2:])
    return statistics.median(times), server


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--uploads", type=int, default=22, help="uploads per server, 2 of them warm-up")
    parser.add_argument("--size", type=int, nargs=2, default=(2000, 1500), metavar=("W", "H"))
    args = parser.parse_args()
    files = photos(args.uploads, tuple(args.size))
    with tempfile.TemporaryDirectory(prefix="imagery-bench-queue-") as tmp:
        folder = Path(tmp)
        baseline, _ = run("baseline", {"TASK_BACKEND": "database", "IMAGE_EAGER_PRESETS": ""}, files, folder)
        queued, server = run(
            "queue", {"TASK_BACKEND": "database", "IMAGE_EAGER_PRESETS": EAGER}, files, folder
        )
        inline, _ = run("inline", {"TASK_BACKEND": "immediate", "IMAGE_EAGER_PRESETS": EAGER}, files, folder)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "manage.py", "task_worker", "--batch"],
            cwd=ROOT,
            env=server.env,
            check=True,
            capture_output=True,
        )
        worker_seconds = time.perf_counter() - started
        stored = sum(1 for _ in (folder / "queue" / "media" / "renditions").rglob("*.*"))
    tasks = args.uploads
    print(f"{args.uploads - 2} uploads of a {args.size[0]}x{args.size[1]} JPEG, eager presets {EAGER}")
    print(f"{'mode':<10} {'median answer':>14} {'vs baseline':>12}")
    for mode, value in (("baseline", baseline), ("queue", queued), ("inline", inline)):
        print(f"{mode:<10} {value * 1000:>11.1f} ms {value / baseline:>11.2f}x")
    print(f"queue: the answer is {inline / queued:.1f}x faster than rendering the presets in the request")
    print(
        f"worker: {tasks} tasks ({stored} renditions stored) in {worker_seconds:.1f} s: "
        f"{tasks / worker_seconds:.1f} tasks/s, {stored / worker_seconds:.1f} renditions/s "
        "(the worker's start included)"
    )


if __name__ == "__main__":
    main()
