"""The load generator, in its own process: a fixed rate of mixed requests, each logged with its outcome.

    python -m bench.chaos.load --base http://127.0.0.1:PORT --keys keys.json --seconds 60 --rate 25 \
        --out load.jsonl

It makes its upload bodies first (a few real images of various sizes and formats, each with a random mark
so that no two store the same file), prints `ready`, and waits for the start time (seconds since the epoch)
on its standard input, so that the rig's faults and this load share one clock. From then on it sends one
request every 1/rate seconds whatever the answers (an open loop: a slow service gets a queue, not less
load), from a pool of threads, for `--seconds`: uploads, list pages, title filters, details, file reads
(through nginx's /s3/), renditions (`/images/{id}/file?width=…&format=…`, the render limit on: past it,
429), title changes (PATCH) and deletes of the load's own uploads (with the key that uploaded each; an
image picked for deleting is never read by the other kinds, so no read races its delete into a 404).
Every request is one JSON line: when it started (wall clock), its kind, method, path, status (None when
no answer came), duration, Retry-After, for a 201 the new image's id, title, url and size, for a PATCH the
id and the new title, for a DELETE the id and the file's url.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import random
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from PIL import Image, ImageDraw

from bench import server

# Words the titles are made of, so that title filters match some images and not others.
WORDS = ("harbour", "forest", "Straße", "über", "night", "garden", "cliff", "river")
# Each kind's share of the requests.
MIX = {
    "upload": 0.16,
    "list": 0.15,
    "filter": 0.12,
    "detail": 0.18,
    "file": 0.14,
    "rendition": 0.13,
    "patch": 0.06,
    "delete": 0.06,
}
# Kinds that need the database only (the app answers them from PostgreSQL), and kinds whose app request
# needs the file store: what bench/chaos/checks.py holds each to while the other is stalled.
DATABASE_ONLY = ("list", "filter", "detail", "patch")
NEEDS_STORAGE = ("upload", "rendition", "delete")
# Widths and formats the renditions are asked for: a few of each, so some are stored already (a read)
# and some are first renders (charged to the render budgets, THROTTLE_RENDER_*_PER_ADDRESS).
RENDITION_WIDTHS = (64, 160, 320, 480)
RENDITION_FORMATS = ("jpeg", "webp", "png")
TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Body:
    data: bytes
    content_type: str


def base_images() -> list[tuple[Image.Image, str, dict[str, object]]]:
    """A few real pictures: a photo-like JPEG, a transparent PNG, a palette GIF, a WebP, a TIFF."""
    photo = Image.linear_gradient("L").resize((1200, 800)).convert("RGB")
    ImageDraw.Draw(photo).ellipse((300, 150, 900, 650), fill=(200, 120, 40))
    alpha = Image.new("RGBA", (640, 480), (0, 0, 0, 0))
    ImageDraw.Draw(alpha).rectangle((100, 100, 500, 380), fill=(30, 140, 220, 200))
    gif = Image.radial_gradient("L").resize((320, 240)).convert("P")
    webp = Image.linear_gradient("L").rotate(90).resize((900, 600)).convert("RGB")
    tiff = Image.new("RGB", (500, 500), (240, 240, 200))
    return [
        (photo, "JPEG", {"quality": 90}),
        (alpha, "PNG", {}),
        (gif, "GIF", {}),
        (webp, "WEBP", {"quality": 85}),
        (tiff, "TIFF", {}),
    ]


def multipart(fields: dict[str, str], filename: str, data: bytes) -> Body:
    """An upload's body (the file as `image`), built once and posted as often as needed."""
    body, content_type = server.multipart(fields, "image", filename, data)
    return Body(body, content_type)


def post_upload(
    base: str, key: str, kind: str, title: str, filename: str, data: bytes, **fields: str
) -> dict:
    """POST /images on `base` with `key`, outside the steady load (probes, in-flight uploads): the record
    of it, as the load logs its own (status None when no answer came)."""
    body = multipart({"title": title, **fields}, filename, data)
    request = urllib.request.Request(  # noqa: S310  # the rig's own loopback addresses
        f"{base}/images",
        data=body.data,
        headers={"Content-Type": body.content_type, "Authorization": f"Bearer {key}"},
        method="POST",
    )
    started = time.time()
    record: dict[str, Any] = {"t": started, "kind": kind, "method": "POST", "path": "/images", "title": title}
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # loopback
            created = json.loads(response.read())
            record.update(status=response.status, id=created["id"], url=created["url"], size=created["size"])
    except urllib.error.HTTPError as error:
        record.update(status=error.code, retry_after=error.headers.get("Retry-After"))
    except OSError as error:
        record.update(status=None, error=repr(error))
    record["ms"] = round((time.time() - started) * 1000, 1)
    return record


def upload_bodies(count: int, rng: random.Random) -> list[tuple[Body, str]]:
    """`count` upload bodies and their titles; a random mark makes each one's pixels unique."""
    bases = base_images()
    bodies = []
    for n in range(count):
        image, fmt, params = bases[n % len(bases)]
        marked = image.copy()
        x, y = rng.randrange(image.width - 40), rng.randrange(image.height - 40)
        colour = rng.randrange(256) if marked.mode in ("P", "L") else tuple(rng.randrange(256) for _ in "rgb")
        ImageDraw.Draw(marked).rectangle((x, y, x + 30, y + 30), fill=colour)
        buffer = io.BytesIO()
        marked.save(buffer, fmt, **params)
        title = f"chaos {n} {rng.choice(WORDS)} {secrets.token_hex(3)}"
        fields = {"title": title, "width": str(rng.randrange(80, 800))}
        if rng.random() < 0.2:
            fields["format"] = rng.choice(("webp", "png", "jpeg"))
        bodies.append((multipart(fields, f"upload.{fmt.lower()}", buffer.getvalue()), title))
    return bodies


class Load:
    def __init__(self, base: str, keys: list[str], out: Path, seed: int) -> None:
        self.base = urlsplit(base)
        self.keys = keys
        self.rng = random.Random(seed)
        self.out = out.open("w")
        self.lock = threading.Lock()
        self.known: list[tuple[int, str]] = []  # (id, url) of images seen
        # The load's own uploads: (id, url, key) it may change (PATCH); and those set aside for DELETE,
        # which no other kind reads (a refresh of `known` leaves them out).
        self.mine: list[tuple[int, str, str]] = []
        self.to_delete: list[tuple[int, str, str]] = []
        self.set_aside: set[int] = set()
        self.uploads: list[tuple[Body, str]] = []
        self.uploaded = 0

    def log(self, record: dict[str, object]) -> None:
        with self.lock:
            self.out.write(json.dumps(record) + "\n")
            self.out.flush()

    def request(
        self,
        method: str,
        url: str,
        *,
        body: Body | None = None,
        key: str | None = None,
        json_body: dict[str, str] | None = None,
    ) -> tuple[int | None, dict[str, str], bytes, str | None]:
        """One request on its own connection: status (None: no answer), headers, body, error."""
        parts = urlsplit(url) if url.startswith("http") else None
        host = parts.hostname if parts else self.base.hostname
        port = parts.port if parts else self.base.port
        path = (parts.path + (f"?{parts.query}" if parts.query else "")) if parts else url
        headers = {"Connection": "close"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = body.data if body else None
        if body:
            headers["Content-Type"] = body.content_type
        if json_body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(json_body).encode()
        conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_SECONDS)
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read(), None
        except (OSError, http.client.HTTPException) as error:
            return None, {}, b"", f"{type(error).__name__}: {error}"
        finally:
            conn.close()

    def refresh_known(self) -> None:
        status, _, body, _ = self.request("GET", "/images?page_size=100")
        if status == 200:
            with self.lock:
                self.known = [
                    (item["id"], item["url"])
                    for item in json.loads(body)["results"]
                    if item["id"] not in self.set_aside
                ]

    def one(self, kind: str, scheduled: float) -> None:
        started = time.time()
        record: dict[str, object] = {"t": started, "late": round(started - scheduled, 4), "kind": kind}
        key = None
        body = None
        json_body = None
        with self.lock:
            known = self.known[-200:]
            mine = self.mine[-100:]
            doomed = self.to_delete.pop(0) if kind == "delete" and self.to_delete else None
        if kind == "upload":
            with self.lock:
                body, title = self.uploads[self.uploaded % len(self.uploads)]
                key = self.keys[self.uploaded % len(self.keys)]
                self.uploaded += 1
            method, url = "POST", "/images"
            record.update(title=title, key=self.keys.index(key))
        elif kind == "list":
            method, url = (
                "GET",
                # Page 2 of ten: the rig's probe uploads alone fill it, whatever the load deletes.
                self.rng.choice(("/images", "/images?page_size=10&page=2", "/images?cursor=&page_size=50")),
            )
        elif kind == "filter":
            method, url = "GET", f"/images?title={quote(self.rng.choice(WORDS))}"
        elif kind == "detail" and known:
            method, url = "GET", f"/images/{self.rng.choice(known)[0]}"
        elif kind == "file" and known:
            method, url = "GET", self.rng.choice(known)[1]
        elif kind == "rendition" and known:
            width, fmt = self.rng.choice(RENDITION_WIDTHS), self.rng.choice(RENDITION_FORMATS)
            method, url = "GET", f"/images/{self.rng.choice(known)[0]}/file?width={width}&format={fmt}"
        elif kind == "patch" and mine:
            image_id, _, key = self.rng.choice(mine)
            title = f"retitled {image_id} {self.rng.choice(WORDS)} {secrets.token_hex(3)}"
            method, url, json_body = "PATCH", f"/images/{image_id}", {"title": title}
            record.update(id=image_id, title=title)
        elif kind == "delete" and doomed is not None:
            image_id, image_url, key = doomed
            method, url = "DELETE", f"/images/{image_id}"
            record.update(id=image_id, url=image_url)
        else:
            method, url = "GET", "/images"
            record["kind"] = kind = "list"
        status, headers, payload, error = self.request(method, url, body=body, key=key, json_body=json_body)
        record.update(
            method=method,
            path=url if url.startswith("/") else urlsplit(url).path,
            status=status,
            ms=round((time.time() - started) * 1000, 1),
            error=error,
            retry_after=headers.get("retry-after"),
            request_id=headers.get("x-request-id"),
        )
        if kind == "upload" and status == 201:
            created = json.loads(payload)
            record.update(id=created["id"], url=created["url"], size=created["size"])
            with self.lock:
                # One upload in three is set aside for a DELETE later; the rest are read and retitled.
                if created["id"] % 3 == 0:
                    self.set_aside.add(created["id"])
                    self.to_delete.append((created["id"], created["url"], key))
                else:
                    self.known.append((created["id"], created["url"]))
                    self.mine.append((created["id"], created["url"], key))
        elif status is not None and status >= 500:
            record["body"] = payload[:300].decode(errors="replace")
        self.log(record)

    def run(self, *, start: float, seconds: float, rate: float) -> None:
        kinds, weights = zip(*MIX.items(), strict=True)
        interval = 1 / rate
        with ThreadPoolExecutor(max_workers=64) as pool:
            n = 0
            while True:
                scheduled = start + n * interval
                if scheduled >= start + seconds:
                    break
                delay = scheduled - time.time()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self.one, self.rng.choices(kinds, weights)[0], scheduled)
                n += 1
                if n % int(rate * 5) == 0:
                    pool.submit(self.refresh_known)
        self.out.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="nginx's address, http://127.0.0.1:PORT")
    parser.add_argument("--keys", type=Path, required=True, help="a JSON list of API keys for the uploads")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=25, help="requests per second")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    if urlsplit(args.base).hostname != "127.0.0.1":
        parser.error("the load goes to loopback only")
    load = Load(args.base, json.loads(args.keys.read_text()), args.out, args.seed)
    load.uploads = upload_bodies(int(args.seconds * args.rate * MIX["upload"] * 1.5) + 10, load.rng)
    load.refresh_known()
    print("ready", flush=True)
    start = float(sys.stdin.readline())
    load.run(start=start, seconds=args.seconds, rate=args.rate)
    print(f"done: {int(args.seconds * args.rate)} requests", flush=True)


if __name__ == "__main__":
    main()
