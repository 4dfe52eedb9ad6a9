"""Signed URLs benchmark (issue 23): what verifying a signature adds to a stored rendition's answer.

Run with `make bench` (or `.venv/bin/python bench/signing.py --help`). Two measurements:

1. In this process, `images.signing.verify` of a signed rendition request (parse, key lookup, HMAC-SHA256,
   constant-time comparison): its median over many calls, against the 0.1 ms target.
2. Through the app under gunicorn (bench/server.py, with IMAGERY_AUTH=write so images can be private): the
   stored 320-wide rendition of a private image through its signed `srcset` URL, against the same
   rendition of a public image of the same bytes, unsigned; interleaved, p50 of each, one new connection
   per request and no API key. The difference is the signature's cost plus noise; the ratio should be
   about 1.

It prints a table, then the target with PASS or MISS. It always exits 0: it reports, it does not test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

import inputs  # noqa: E402
from renditions import get, median_interleaved, upload  # noqa: E402
from server import AppServer, load_average  # noqa: E402

MAX_VERIFY_MS = 0.1


def verify_ms(calls: int) -> float:
    """Median ms of one `verify` of a signed `?width=320&format=webp` request, in this process."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("IMAGERY_ENV", "development")
    import django

    django.setup()
    from images import signing

    query = dict(parse_qsl(signing.signed_query(12, {"width": 320, "format": "webp"})))
    params = {"width": 320, "format": "webp"}
    batch = 1000
    times = []
    for _ in range(calls // batch):
        start = time.perf_counter()
        for _ in range(batch):
            signing.verify(12, params, query)
        times.append((time.perf_counter() - start) * 1000 / batch)
    return statistics.median(times)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def srcset_url(image: dict[str, object], width: int) -> str:
    for candidate in str(image["srcset"]).split(", "):
        url, w = candidate.rsplit(" ", 1)
        if w == f"{width}w":
            return url
    raise RuntimeError(f"no {width}w in the srcset")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200, help="requests of each kind (default 200)")
    parser.add_argument("--calls", type=int, default=100_000, help="verify calls in process")
    args = parser.parse_args()

    in_process = verify_ms(args.calls)
    photo = inputs.ensure_inputs(BENCH / "out" / "inputs")[inputs.PHOTO_JPEG]
    with (
        tempfile.TemporaryDirectory(prefix="imagery-bench-signing-") as tmp,
        AppServer(Path(tmp), env={"IMAGERY_AUTH": "write"}) as server,
    ):
        data = photo.read_bytes()
        public = upload(server, data, width="640")
        private = upload(server, data, width="640", visibility="private")
        signed = path_of(srcset_url(private, 320))
        unsigned = f"/images/{public['id']}/file?width=320"
        for path in (signed, unsigned):  # rendered once, outside the timing
            answer = get(server, path)
            if answer.status != 200:
                raise RuntimeError(f"GET {path} answered {answer.status}: {answer.body[:200]!r}")
        signed_ms, unsigned_ms = median_interleaved(
            lambda: get(server, signed), lambda: get(server, unsigned), args.runs
        )

    print(f"load average: {load_average()}")
    print(f"{'measurement':<58} {'p50 ms':>9}")
    print(f"{'verify() in process (parse, HMAC-SHA256, compare)':<58} {in_process:>9.4f}")
    print(f"{'stored rendition, public image, unsigned (baseline)':<58} {unsigned_ms:>9.3f}")
    print(f"{'stored rendition, private image, signed URL':<58} {signed_ms:>9.3f}")
    print(
        f"ratio signed / unsigned: {signed_ms / unsigned_ms:.3f}x "
        f"(difference {signed_ms - unsigned_ms:+.3f} ms, within the noise of a request)"
    )
    verdict = "PASS" if in_process <= MAX_VERIFY_MS else "MISS"
    print(f"{verdict}: verifying costs {in_process * 1000:.1f} us per request (target <= {MAX_VERIFY_MS} ms)")


if __name__ == "__main__":
    main()
