"""Child process for tests/test_work_bounds.py: one render, and the memory it took.

    python -m tests.peak_memory INPUT LIMITS_JSON RENDER_JSON

Prints JSON: `peak_bytes`, how far the process's peak resident memory (VmHWM) rose during the render
above what the interpreter and the imports had already reached, and `error`, the domain error's class
name if the render was refused. VmHWM, not `ru_maxrss`: Linux carries a parent's peak into a child's
`ru_maxrss` across exec.
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

from images.pixels.errors import PixelError
from images.pixels.processing import Fit, Limits, OutputFormat, render


def vm_hwm_bytes() -> int:
    match = re.search(r"^VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    assert match is not None
    return int(match.group(1)) * 1024


def main(path: str, limits: str, params: str) -> None:
    data = Path(path).read_bytes()
    kwargs = json.loads(params)
    if "fit" in kwargs:
        kwargs["fit"] = Fit(kwargs["fit"])
    if "output_format" in kwargs:
        kwargs["output_format"] = OutputFormat(kwargs["output_format"])
    idle = vm_hwm_bytes()
    error = None
    try:
        render(io.BytesIO(data), limits=Limits(**json.loads(limits)), **kwargs)
    except PixelError as exc:
        error = type(exc).__name__
    print(json.dumps({"peak_bytes": vm_hwm_bytes() - idle, "error": error}))


if __name__ == "__main__":
    main(*sys.argv[1:])
