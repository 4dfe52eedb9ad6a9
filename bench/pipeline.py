"""Pipeline benchmark (issue 3): our `images.pixels.processing.render` against the naive Pillow way, then
over HTTP.

Run with `make bench` (or `.venv/bin/python bench/pipeline.py --help`). It generates its inputs into
bench/out/inputs/ (git-ignored) on first use: a photo-like 4000x3000 JPEG, a 4000x3000 RGBA PNG, a
12000x9000 JPEG, a 24-frame animated GIF and a 4000x3000 HEIC.

How to read the table (one row per input; both sides measured in this run, on this machine):
- ours ms / naive ms: median wall time of one render in this process after a warm-up, ours and naive
  interleaved so both see the same background noise. speed-up = naive / ours; "(cpu)" is the same ratio
  on median CPU time, which a busy machine descheduling us does not inflate.
- RSS: peak (VmHWM, MiB) of a fresh child process that imports everything and renders once
  (bench/peak_rss.py); absolute, so it includes the interpreter and imports ("idle", under the table).
- B: bytes of the encoded output; both sides use the same encoder settings (EncodeOptions defaults).
- PSNR dB: ours' stored output, decoded, against a reference (full decode, one Lanczos resize, never
  encoded), in RGB; the first frame of the animation. "naive PSNR" is the same for the naive output, which
  shares our encoder: what it loses too is the encoder's share. "pixels PSNR" is ours rendered to lossless
  PNG instead: what our shortcuts alone (DCT-domain draft, reducing_gap) cost.
Then HTTP: `POST /images` against gunicorn (deploy/gunicorn.conf.py, one sync worker, SQLite in a temporary
DATA_DIR; bench/server.py), one new connection per upload, next to the bare pipeline on the same file run
interleaved with it, encoding as an upload's stored file is (a baseline JPEG: images/pipeline.py); and
the peak RSS of a fresh, warmed worker answering the 12000x9000 upload.
Placeholders (issue 17): what an upload adds to compute its `placeholder` and `color`: the small version
(at most 64x64) made from the output pixels the pipeline holds, its ThumbHash and its dominant colour,
timed together on each case's output (p50 and p90 of many runs), and on a 4000x3000 output (an upload
that keeps its size) for information. Last, each target with PASS or MISS. The script always exits 0: it
reports, it does not test.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

import inputs  # noqa: E402
from baseline import first_frame_rgb, naive_render, psnr, reference  # noqa: E402
from PIL import Image, features  # noqa: E402
from server import AppServer, cpu_model, load_average, memory_kib, multipart  # noqa: E402

from images.pixels.placeholders import describe, small_version  # noqa: E402
from images.pixels.processing import EncodeOptions, OutputFormat, Rendered, render  # noqa: E402

# The targets.
MIN_SPEEDUP = 3.5
MAX_HTTP_RATIO = 1.15  # issue 22 (1.3 before)
MAX_WORKER_PEAK_MIB = 120
MIN_PSNR_DB = 38.0
MAX_PLACEHOLDER_MS = 2.0  # issue 17: placeholder + colour, added per upload, p50


@dataclass(frozen=True)
class Case:
    label: str
    input: str
    box: tuple[int, int]
    heavy: bool = False  # slow enough that a third of the runs gives a stable median


CASES = (
    Case("JPEG 4000x3000", inputs.PHOTO_JPEG, (800, 600)),
    Case("PNG RGBA 4000x3000", inputs.RGBA_PNG, (800, 600)),
    Case("JPEG 12000x9000", inputs.HUGE_JPEG, (800, 600), heavy=True),
    Case("GIF 24 x 1000x750", inputs.ANIMATED_GIF, (400, 300)),
    Case("HEIC 4000x3000", inputs.PHOTO_HEIC, (800, 600)),
)


@dataclass(frozen=True)
class Timing:
    """Medians of one operation's wall time and of this process's CPU time for it."""

    wall_ms: float
    cpu_ms: float


@dataclass(frozen=True)
class CaseResult:
    case: Case
    output: Rendered
    runs: int
    ours: Timing
    naive: Timing
    ours_peak_kib: int
    naive_peak_kib: int
    idle_kib: int
    naive_bytes: int
    psnr_ours: float
    psnr_naive: float
    psnr_pixels: float

    @property
    def speedup(self) -> float:
        return self.naive.wall_ms / self.ours.wall_ms

    @property
    def cpu_speedup(self) -> float:
        return self.naive.cpu_ms / self.ours.cpu_ms


@dataclass(frozen=True)
class HttpResult:
    runs: int
    http_ms: float  # median, client side: connect, send, wait, read
    bare_ms: float  # median
    worker_cpu_ms: float  # mean per upload (clock ticks summed over all runs)
    bare_cpu_ms: float  # mean per render
    stored_bytes: int
    bare_bytes: int

    @property
    def ratio(self) -> float:
        return self.http_ms / self.bare_ms

    @property
    def cpu_ratio(self) -> float:
        return self.worker_cpu_ms / self.bare_cpu_ms


@dataclass(frozen=True)
class MemoryResult:
    idle_kib: int
    peak_kib: int
    after_kib: int
    upload_bytes: int
    ms: float


@dataclass(frozen=True)
class PlaceholderResult:
    label: str
    size: tuple[int, int]
    runs: int
    p50_ms: float
    p90_ms: float
    small_ms: float  # p50 of the small version alone


# --- measuring --------------------------------------------------------------------------------------


def ours(
    path: Path,
    box: tuple[int, int],
    output: OutputFormat | None = None,
    options: EncodeOptions | None = None,
) -> Rendered:
    with path.open("rb") as f:
        return render(
            f, width=box[0], height=box[1], output_format=output, options=options or EncodeOptions()
        )


# What an upload's stored file is encoded with (images/pipeline.py: a master is a baseline JPEG).
MASTER = EncodeOptions(jpeg_progressive=False)


def elapsed_ms(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU milliseconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def interleaved(a: Callable[[], object], b: Callable[[], object], runs: int) -> tuple[Timing, Timing]:
    """Timings of `a` and `b`, run alternately after one warm-up each, so both see the same noise."""
    a(), b()
    samples_a, samples_b = [], []
    for _ in range(runs):
        samples_a.append(elapsed_ms(a))
        samples_b.append(elapsed_ms(b))
    return _timing(samples_a), _timing(samples_b)


def _timing(samples: list[tuple[float, float]]) -> Timing:
    return Timing(
        wall_ms=statistics.median(s[0] for s in samples), cpu_ms=statistics.median(s[1] for s in samples)
    )


def cpu_ticks_ms(pid: int) -> float:
    """User + system CPU time of `pid` so far, in ms (clock-tick resolution, usually 10 ms)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def child_peak(impl: str, path: Path, size: tuple[int, int], output: OutputFormat) -> dict[str, int]:
    """Peak RSS of a fresh process doing one render (see bench/peak_rss.py)."""
    args = [sys.executable, str(BENCH / "peak_rss.py"), impl, str(path), *map(str, size), output.value]
    done = subprocess.run(args, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout)


def measure_case(case: Case, path: Path, runs: int) -> CaseResult:
    output = ours(path, case.box)
    size, fmt = (output.width, output.height), output.format
    options = EncodeOptions()
    naive_bytes = naive_render(path, size, fmt, options)
    runs = max(5, runs // 3) if case.heavy else runs
    ours_timing, naive_timing = interleaved(
        lambda: ours(path, case.box), lambda: naive_render(path, size, fmt, options), runs
    )
    ours_rss, naive_rss = child_peak("ours", path, size, fmt), child_peak("naive", path, size, fmt)
    expected = reference(path, size)
    lossless = ours(path, case.box, OutputFormat.PNG).data
    return CaseResult(
        case=case,
        output=output,
        runs=runs,
        ours=ours_timing,
        naive=naive_timing,
        ours_peak_kib=ours_rss["peak_kib"],
        naive_peak_kib=naive_rss["peak_kib"],
        idle_kib=min(ours_rss["idle_kib"], naive_rss["idle_kib"]),
        naive_bytes=len(naive_bytes),
        psnr_ours=psnr(first_frame_rgb(output.data), expected),
        psnr_naive=psnr(first_frame_rgb(naive_bytes), expected),
        psnr_pixels=psnr(first_frame_rgb(lossless), expected),
    )


def measure_placeholder(label: str, pixels: Image.Image, *, on_white: bool, runs: int) -> PlaceholderResult:
    """What `image_create` adds to an upload whose pipeline holds `pixels`: the small version (as
    `render(preview=True)` makes it) and `placeholders.describe` on it, timed together and apart."""
    describe(small_version(pixels, on_white=on_white))  # warm-up
    total, small = [], []
    for _ in range(runs):
        start = time.perf_counter()
        preview = small_version(pixels, on_white=on_white)
        made = time.perf_counter()
        describe(preview)
        total.append((time.perf_counter() - start) * 1000)
        small.append((made - start) * 1000)
    total.sort()
    return PlaceholderResult(
        label=label,
        size=pixels.size,
        runs=runs,
        p50_ms=statistics.median(total),
        p90_ms=total[int(0.9 * (runs - 1))],
        small_ms=statistics.median(small),
    )


def output_pixels(rendered: Rendered) -> Image.Image:
    """The first frame of an output as the pipeline held it before encoding (RGB, or RGBA with alpha)."""
    with Image.open(io.BytesIO(rendered.data)) as im:
        im.load()
        has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
        return im.convert("RGBA" if has_alpha else "RGB")


def measure_http(path: Path, box: tuple[int, int], runs: int) -> HttpResult:
    """`POST /images` of `path` against the bare pipeline on the same file, interleaved."""
    body, content_type = multipart(
        {"width": str(box[0]), "height": str(box[1])}, "image", path.name, path.read_bytes()
    )
    with tempfile.TemporaryDirectory(prefix="imagery-bench-") as tmp, AppServer(Path(tmp)) as server:

        def upload() -> dict[str, object]:
            status, payload = server.request("POST", "/images", body, content_type)
            if status != 201:
                raise RuntimeError(f"POST /images answered {status}: {payload[:500]!r}")
            return json.loads(payload)

        for _ in range(2):  # warm-up: the worker's first upload imports the views and connects
            server.forget_stored_files()
            upload()
        worker = server.worker_pid()
        http_samples, bare_samples = [], []
        worker_cpu = 0.0
        stored: dict[str, object] = {}
        for _ in range(runs):
            server.forget_stored_files()  # outside the timing: every upload writes its file again
            cpu_before = cpu_ticks_ms(worker)
            start = time.perf_counter()
            stored = upload()
            http_samples.append((time.perf_counter() - start) * 1000)
            worker_cpu += cpu_ticks_ms(worker) - cpu_before
            bare_samples.append(elapsed_ms(lambda: ours(path, box, options=MASTER)))
    return HttpResult(
        runs=runs,
        http_ms=statistics.median(http_samples),
        bare_ms=statistics.median(s[0] for s in bare_samples),
        worker_cpu_ms=worker_cpu / runs,
        bare_cpu_ms=statistics.fmean(s[1] for s in bare_samples),
        stored_bytes=int(str(stored["size"])),
        bare_bytes=len(ours(path, box, options=MASTER).data),
    )


def measure_worker_memory(path: Path, box: tuple[int, int]) -> MemoryResult:
    """Peak RSS of a fresh gunicorn worker that answers one upload of `path`."""
    data = path.read_bytes()
    body, content_type = multipart({"width": str(box[0]), "height": str(box[1])}, "image", path.name, data)
    with tempfile.TemporaryDirectory(prefix="imagery-bench-") as tmp, AppServer(Path(tmp)) as server:
        # A first read loads the URLconf, DRF and the views (the probes may not): "idle" is a warm worker.
        status, payload = server.request("GET", "/images")
        if status != 200:
            raise RuntimeError(f"GET /images answered {status}: {payload[:500]!r}")
        worker = server.worker_pid()
        idle = memory_kib(worker)
        start = time.perf_counter()
        status, payload = server.request("POST", "/images", body, content_type)
        ms = (time.perf_counter() - start) * 1000
        if status != 201:
            raise RuntimeError(f"POST /images answered {status}: {payload[:500]!r}")
        after = memory_kib(worker)
    return MemoryResult(
        idle_kib=idle["VmHWM"],
        peak_kib=after["VmHWM"],
        after_kib=after["VmRSS"],
        upload_bytes=len(data),
        ms=ms,
    )


# --- reporting --------------------------------------------------------------------------------------


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def machine() -> str:
    return (
        f"{os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}, Pillow "
        f"{Image.__version__}, libjpeg-turbo {features.version('jpg')}, load average {load_average()}, "
        f"code {code_version()}"
    )


def code_version() -> str:
    """The commit measured, and whether the working tree differed from it."""
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown"


def print_table(results: list[CaseResult]) -> None:
    header = (
        f"{'case':<19} {'-> output':<13} {'runs':>4} {'ours ms':>8} {'naive ms':>9} {'speed-up':>8} "
        f"{'(cpu)':>6} {'ours RSS':>9} {'naive RSS':>9} {'ours B':>8} {'naive B':>8} "
        f"{'PSNR dB':>7} {'naive PSNR':>10} {'pixels PSNR':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        out = f"{r.output.width}x{r.output.height} {r.output.format.value}"
        print(
            f"{r.case.label:<19} {out:<13} {r.runs:>4} {r.ours.wall_ms:>8.1f} {r.naive.wall_ms:>9.1f} "
            f"{r.speedup:>7.2f}x {r.cpu_speedup:>5.2f}x {mib(r.ours_peak_kib):>9} {mib(r.naive_peak_kib):>9} "
            f"{len(r.output.data):>8} {r.naive_bytes:>8} "
            f"{r.psnr_ours:>7.2f} {r.psnr_naive:>10.2f} {r.psnr_pixels:>11.2f}"
        )
    idle = min(r.idle_kib for r in results)
    print(
        "ms: median wall time; (cpu): the speed-up on median CPU time, which descheduling does not inflate.\n"
        "RSS: peak of a fresh process doing one render; idle (interpreter + Pillow + pillow-heif + "
        f"images.pixels.processing imported): {mib(idle)}."
    )


def print_http(http: HttpResult, memory: MemoryResult) -> None:
    print(
        f"HTTP  POST /images JPEG 4000x3000 -> 800x600, median of {http.runs}: {http.http_ms:.1f} ms; "
        f"bare pipeline on the same file, interleaved: {http.bare_ms:.1f} ms; ratio {http.ratio:.2f}x"
    )
    print(
        f"      CPU per upload: worker {http.worker_cpu_ms:.1f} ms (mean, clock ticks) vs bare "
        f"{http.bare_cpu_ms:.1f} ms; ratio {http.cpu_ratio:.2f}x"
    )
    same = "identical size" if http.stored_bytes == http.bare_bytes else "DIFFERENT size"
    print(f"      stored {http.stored_bytes} bytes, bare pipeline {http.bare_bytes} bytes ({same})")
    print(
        f"HTTP  POST /images JPEG 12000x9000 ({memory.upload_bytes} bytes) -> 800x600 on a fresh worker: "
        f"{memory.ms:.0f} ms; worker peak RSS (VmHWM) {mib(memory.peak_kib)} "
        f"(warm idle {mib(memory.idle_kib)}, after {mib(memory.after_kib)})"
    )


def print_placeholders(results: list[PlaceholderResult]) -> None:
    header = (
        f"{'placeholder + colour on':<34} {'pixels':>10} {'runs':>5} {'p50 ms':>7} {'p90 ms':>7} "
        f"{'small ms':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        size = f"{r.size[0]}x{r.size[1]}"
        print(f"{r.label:<34} {size:>10} {r.runs:>5} {r.p50_ms:>7.2f} {r.p90_ms:>7.2f} {r.small_ms:>8.2f}")
    print(
        "What an upload adds: the small version (<= 64x64) of the output pixels, its ThumbHash and its "
        "dominant colour.\n'small ms': the small version alone, which grows with the output's pixels."
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_targets(
    results: list[CaseResult],
    http: HttpResult | None,
    memory: MemoryResult | None,
    placeholders: list[PlaceholderResult],
    *,
    http_skipped: bool,
) -> None:
    jpeg = next(r for r in results if r.case.input == inputs.PHOTO_JPEG)
    print(
        f"{verdict(jpeg.speedup >= MIN_SPEEDUP)}  pipeline >= {MIN_SPEEDUP}x faster than naive on the "
        f"4000x3000 JPEG: {jpeg.speedup:.3f}x ({jpeg.ours.wall_ms:.1f} vs {jpeg.naive.wall_ms:.1f} ms; "
        f"on CPU time {jpeg.cpu_speedup:.3f}x)"
    )
    if http_skipped:
        print("SKIP  HTTP upload and worker memory targets (--no-http)")
    elif http is None or memory is None:
        print("MISS  HTTP upload and worker memory targets: not measured (see above)")
    if http is not None:
        print(
            f"{verdict(http.ratio <= MAX_HTTP_RATIO)}  HTTP upload <= {MAX_HTTP_RATIO}x the bare pipeline: "
            f"{http.ratio:.3f}x ({http.http_ms:.1f} vs {http.bare_ms:.1f} ms; "
            f"on CPU time {http.cpu_ratio:.3f}x)"
        )
    if memory is not None:
        print(
            f"{verdict(memory.peak_kib <= MAX_WORKER_PEAK_MIB * 1024)}  12000x9000 JPEG upload keeps the "
            f"worker's peak RSS <= {MAX_WORKER_PEAK_MIB} MiB: {mib(memory.peak_kib)}"
        )
    # The PSNR target measures what our shortcuts (draft decode, bicubic) cost: our pixels before
    # encoding against the full-size Lanczos reference. The stored JPEG's PSNR is shown for information:
    # it is dominated by the encoder's own loss at this quality, the same for the naive path.
    worst = min(results, key=lambda r: r.psnr_pixels)
    print(
        f"{verdict(worst.psnr_pixels >= MIN_PSNR_DB)}  PSNR >= {MIN_PSNR_DB:.0f} dB, ours' pixels before "
        f"encoding vs the reference: worst {worst.psnr_pixels:.2f} dB ({worst.case.label})"
    )
    for r in results:
        if r.output.format is OutputFormat.JPEG:
            print(
                f"INFO  stored JPEG (q{EncodeOptions().jpeg_quality}) vs the reference, {r.case.label}: "
                f"ours {r.psnr_ours:.2f} dB, naive with the same encoder {r.psnr_naive:.2f} dB"
            )
    upload = placeholders[0]  # the HTTP upload's case: JPEG 4000x3000 -> 800x600
    print(
        f"{verdict(upload.p50_ms <= MAX_PLACEHOLDER_MS)}  placeholder + colour add <= {MAX_PLACEHOLDER_MS} "
        f"ms per upload (p50), {upload.label}: {upload.p50_ms:.2f} ms (p90 {upload.p90_ms:.2f} ms)"
    )
    worst = max(placeholders[1:], key=lambda r: r.p50_ms, default=None)
    if worst is not None:
        print(
            f"INFO  placeholder + colour, slowest other output: {worst.label} "
            f"{worst.size[0]}x{worst.size[1]}: {worst.p50_ms:.2f} ms p50"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15, help="timed runs per side and case (default 15)")
    parser.add_argument("--http-runs", type=int, default=31, help="timed uploads (default 31)")
    parser.add_argument("--no-http", action="store_true", help="skip the gunicorn part")
    parser.add_argument("--regenerate", action="store_true", help="rebuild the inputs")
    args = parser.parse_args()

    paths = inputs.ensure_inputs(BENCH / "out" / "inputs", regenerate=args.regenerate)
    print(f"machine: {machine()}")
    print(f"inputs: {paths[inputs.PHOTO_JPEG].parent}")
    for name, path in paths.items():
        with Image.open(path) as im:
            print(f"  {name:<28} {path.stat().st_size:>10} bytes  {im.format} {im.mode} {im.size}")
    print()

    results = []
    for case in CASES:
        print(f"measuring {case.label} ...", file=sys.stderr, flush=True)
        results.append(measure_case(case, paths[case.input], args.runs))
    print_table(results)
    print()

    print("measuring placeholders ...", file=sys.stderr, flush=True)
    placeholder_runs = max(50, args.runs * 10)
    placeholders = [
        measure_placeholder(
            f"{r.case.label} -> {r.output.width}x{r.output.height}",
            output_pixels(r.output),
            on_white=r.output.format is OutputFormat.JPEG,
            runs=placeholder_runs,
        )
        for r in results
    ]
    kept = ours(paths[inputs.PHOTO_JPEG], (4000, 3000))
    placeholders.append(
        measure_placeholder(
            "JPEG 4000x3000 kept at its size", output_pixels(kept), on_white=True, runs=placeholder_runs // 5
        )
    )
    print_placeholders(placeholders)
    print()

    http = memory = None
    if not args.no_http:
        print("measuring POST /images under gunicorn ...", file=sys.stderr, flush=True)
        try:
            http = measure_http(paths[inputs.PHOTO_JPEG], (800, 600), args.http_runs)
            memory = measure_worker_memory(paths[inputs.HUGE_JPEG], (800, 600))
        except Exception as exc:  # a report, not a test: say what broke and report the rest
            print(f"HTTP  could not be measured: {exc}")
        else:
            print_http(http, memory)
        print()

    print_targets(results, http, memory, placeholders, http_skipped=args.no_http)
    print(f"\nload average at the end: {load_average()}")


if __name__ == "__main__":
    main()
