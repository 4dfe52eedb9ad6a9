"""One-time upload URLs benchmark (issue 24): what uploading through an upload URL costs against POST /images.

Run with `make bench` (or `.venv/bin/python bench/direct_uploads.py --help`). Through the app under gunicorn
(bench/server.py, IMAGERY_AUTH=write), the same photo-like JPEG (1600x1200, resized to 640 wide) is uploaded
alternately (interleaved, so both see the same noise; stored files forgotten before each, so every upload
writes its file):

- baseline: `POST /images` with the API key;
- the upload URL alone: `POST /uploads/{id}/{secret}` with no key (a URL minted before, outside the timing);
- mint + upload: `POST /uploads` with the key, then the upload, as a backend and its user would.

The URL's own work is a row read, a constant-time hash comparison, a claim (one UPDATE) and the completion
(one UPDATE): the ratio of the upload alone should be about 1. It prints a table and the ratios; it always
exits 0: it reports, it does not test.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

import inputs  # noqa: E402
from renditions import median_interleaved  # noqa: E402
from server import HOST, AppServer, load_average, multipart  # noqa: E402


def photo() -> bytes:
    out = io.BytesIO()
    inputs.photo_like((1600, 1200)).save(out, "JPEG", quality=90)
    return out.getvalue()


def mint(server: AppServer) -> str:
    """A new upload URL's path (the backend's request, with the key)."""
    status, body = server.request("POST", "/uploads", b'{"width": 640}', "application/json")
    if status != 201:
        raise RuntimeError(f"POST /uploads answered {status}: {body[:300]!r}")
    url = json.loads(body)["upload_url"]
    return url[url.index("/uploads/") :]


def post_without_key(server: AppServer, path: str, data: bytes) -> None:
    body, content_type = multipart({}, "image", "photo.jpg", data)
    conn = http.client.HTTPConnection(HOST, server.port, timeout=120)
    try:
        conn.request("POST", path, body=body, headers={"Connection": "close", "Content-Type": content_type})
        response = conn.getresponse()
        payload = response.read()
    finally:
        conn.close()
    if response.status != 201:
        raise RuntimeError(f"POST {path} answered {response.status}: {payload[:300]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=30, help="uploads of each kind (default 30)")
    args = parser.parse_args()

    data = photo()
    with (
        tempfile.TemporaryDirectory(prefix="imagery-bench-direct-uploads-") as tmp,
        AppServer(Path(tmp), env={"IMAGERY_AUTH": "write"}) as server,
    ):
        form, content_type = multipart({"width": "640"}, "image", "photo.jpg", data)

        def plain() -> None:
            server.forget_stored_files()
            status, body = server.request("POST", "/images", form, content_type)
            if status != 201:
                raise RuntimeError(f"POST /images answered {status}: {body[:300]!r}")

        minted: list[str] = []

        def through_url() -> None:
            server.forget_stored_files()
            post_without_key(server, minted.pop(), data)

        def mint_and_upload() -> None:
            server.forget_stored_files()
            post_without_key(server, mint(server), data)

        minted.extend(mint(server) for _ in range(args.runs + 1))  # outside the timing
        plain_ms, url_ms = median_interleaved(plain, through_url, args.runs)
        plain_again_ms, both_ms = median_interleaved(plain, mint_and_upload, args.runs)

    print(f"load average: {load_average()}")
    print(f"input: JPEG 1600x1200, {len(data)} bytes, stored 640 wide; {args.runs} runs of each, interleaved")
    print(f"{'measurement':<52} {'p50 ms':>9}")
    print(f"{'POST /images with the key (baseline)':<52} {plain_ms:>9.2f}")
    print(f"{'POST to an upload URL, no key':<52} {url_ms:>9.2f}")
    print(f"{'POST /images with the key (baseline, again)':<52} {plain_again_ms:>9.2f}")
    print(f"{'POST /uploads + POST to its URL':<52} {both_ms:>9.2f}")
    print(f"ratio upload URL / POST /images: {url_ms / plain_ms:.3f}x")
    print(f"ratio mint + upload URL / POST /images: {both_ms / plain_again_ms:.3f}x")


if __name__ == "__main__":
    main()
