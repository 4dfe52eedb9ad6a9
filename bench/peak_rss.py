"""Child process of the benchmark: render one input once and report this process's peak RSS.

    python bench/peak_rss.py {ours|naive} INPUT WIDTH HEIGHT FORMAT

FORMAT is the output format ours picks for INPUT; the naive baseline is told to use the same.
Prints JSON: `idle_kib` (peak after the interpreter and the imports, before any image work) and `peak_kib`
(peak after one render). Both are VmHWM from /proc/self/status, not `getrusage().ru_maxrss`: Linux carries
a parent's high-water mark into `ru_maxrss` across exec, so a child started by a large benchmark process
would report the parent's peak (400 MB parent -> 420 MB "peak" for a bare `python -c`).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from baseline import naive_render

from images.pixels.processing import EncodeOptions, OutputFormat, render


def vm_hwm_kib() -> int:
    status = Path("/proc/self/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    if match is None:
        raise RuntimeError("no VmHWM in /proc/self/status")
    return int(match.group(1))


def main(argv: list[str]) -> None:
    impl, path, width, height, fmt = argv
    source, size, output = Path(path), (int(width), int(height)), OutputFormat(fmt)
    idle = vm_hwm_kib()
    if impl == "ours":
        with source.open("rb") as f:
            render(f, width=size[0], height=size[1])  # exactly as timed: the format follows the input
    elif impl == "naive":
        naive_render(source, size, output, EncodeOptions())
    else:
        raise SystemExit(f"unknown implementation {impl!r}")
    print(json.dumps({"idle_kib": idle, "peak_kib": vm_hwm_kib()}))


if __name__ == "__main__":
    main(sys.argv[1:])
