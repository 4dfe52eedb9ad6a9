"""A resumable (tus 1.0) upload that the replica kill cuts off, resumed on another replica.

`ResumableUpload` mints a one-time upload URL through nginx (`POST /uploads`, with a key), creates the tus
upload on the replica the rig is about to kill, and sends the file in chunks there, each chunk's body
trickled out in pieces, so that a PATCH is under way when the replica dies. `ready` is set once the first
chunk is confirmed: the kill waits for it. A chunk without an answer (or with a 5xx) sends the client to
another replica, straight to it: `HEAD` says the offset the server stored (only what it confirmed), and the
upload goes on from there to the last byte, whose answer names the image (`Imagery-Image`).

Written with raw `http.client` rather than tuspy so the rig decides where each request goes and how the
body is paced. Every request is recorded (`records`) with the replica it went to.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import threading
import time
from typing import Any
from urllib.parse import urlsplit

CHUNK_BYTES = 128 * 1024
PIECE_BYTES = 16 * 1024  # a chunk's body is sent this much at a time
PIECE_PAUSE_S = 0.05  # ...with this pause between pieces: a chunk takes about 0.4 s to send
GIVE_UP_AFTER_S = 90.0
TIMEOUT_S = 30.0


def noisy_jpeg() -> bytes:
    """A real JPEG of about 1.5 MB (noise does not compress): several chunks, pixels no one else has."""
    from PIL import Image

    picture = Image.frombytes("RGB", (1100, 800), os.urandom(1100 * 800 * 3))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


class ResumableUpload:
    def __init__(self, *, nginx: str, first: str, then: str, key: str, title: str) -> None:
        self.nginx, self.first, self.then = nginx, first, then
        self.key = key
        self.title = title
        self.data = noisy_jpeg()
        self.ready = threading.Event()
        self.done = threading.Event()
        self.records: list[dict[str, Any]] = []
        self.upload_id: str | None = None
        self.path: str | None = None
        self.image_path: str | None = None
        self.cut_off = 0  # chunks sent that got no answer (the kill)
        self.resumed_at: int | None = None  # the offset the other replica said it had
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, name="resumable", daemon=True)

    # --- requests ---------------------------------------------------------------------------------

    def _request(
        self, base: str, method: str, path: str, *, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int | None, dict[str, str], bytes]:
        parts = urlsplit(base)
        started = time.time()
        record: dict[str, Any] = {"t": started, "method": method, "to": base, "path": path.split("/")[1]}
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT_S)
        try:
            conn.putrequest(method, path)
            for name, value in {**headers, "Content-Length": str(len(body or b""))}.items():
                conn.putheader(name, value)
            conn.endheaders()
            if body:
                for at in range(0, len(body), PIECE_BYTES):
                    conn.send(body[at : at + PIECE_BYTES])
                    if method == "PATCH":
                        time.sleep(PIECE_PAUSE_S)
            response = conn.getresponse()
            answer = {k.lower(): v for k, v in response.getheaders()}
            payload = response.read()
            record.update(status=response.status, offset=answer.get("upload-offset"))
            return response.status, answer, payload
        except (OSError, http.client.HTTPException) as error:
            record.update(status=None, error=f"{type(error).__name__}: {error}")
            return None, {}, b""
        finally:
            conn.close()
            record["ms"] = round((time.time() - started) * 1000, 1)
            self.records.append(record)

    def _tus(self, **extra: str) -> dict[str, str]:
        return {"Tus-Resumable": "1.0.0", **extra}

    # --- the upload -------------------------------------------------------------------------------

    def _mint(self) -> None:
        status, _, payload = self._request(
            self.nginx,
            "POST",
            "/uploads",
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
            body=json.dumps({"title": self.title}).encode(),
        )
        if status != 201:
            raise RuntimeError(f"POST /uploads answered {status}: {payload[:200]!r}")
        created = json.loads(payload)
        self.upload_id = created["id"]
        self.path = urlsplit(created["upload_url"]).path

    def _create(self) -> None:
        assert self.path is not None
        metadata = "filename " + base64.b64encode(b"resumable.jpg").decode()
        status, _, payload = self._request(
            self.first,
            "POST",
            self.path,
            headers=self._tus(**{"Upload-Length": str(len(self.data)), "Upload-Metadata": metadata}),
        )
        if status != 201:
            raise RuntimeError(f"the tus creation answered {status}: {payload[:200]!r}")

    def _offset(self, base: str) -> int | None:
        assert self.path is not None
        status, headers, _ = self._request(base, "HEAD", self.path, headers=self._tus())
        if status != 200:
            return None
        self.image_path = headers.get("imagery-image") or self.image_path
        return int(headers["upload-offset"])

    def _run(self) -> None:
        try:
            self._mint()
            self._create()
            base, offset = self.first, 0
            deadline = time.monotonic() + GIVE_UP_AFTER_S
            while offset < len(self.data):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gave up at offset {offset} of {len(self.data)}")
                assert self.path is not None
                chunk = self.data[offset : offset + CHUNK_BYTES]
                status, headers, payload = self._request(
                    base,
                    "PATCH",
                    self.path,
                    headers=self._tus(
                        **{"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
                    ),
                    body=chunk,
                )
                if status == 204:
                    offset = int(headers["upload-offset"])
                    self.image_path = headers.get("imagery-image") or self.image_path
                    self.ready.set()
                    continue
                if status is not None and status < 500 and status != 409:
                    raise RuntimeError(f"a chunk at {offset} answered {status}: {payload[:200]!r}")
                # No answer (the replica died under it), a 5xx, or 409 (the offset moved): go on at the
                # other replica, from what the server says it has.
                if status is None:
                    self.cut_off += 1
                base = self.then
                time.sleep(0.3)
                stored = self._offset(base)
                if stored is not None:
                    offset = stored
                    if self.resumed_at is None:
                        self.resumed_at = stored
            if self.image_path is None:
                self._offset(base)  # the last answer was lost: HEAD names the image
        except Exception as error:  # reported by the check, with the records
            self.error = repr(error)
        finally:
            self.ready.set()
            self.done.set()

    def begin(self) -> None:
        self.thread.start()

    def join(self, timeout: float = GIVE_UP_AFTER_S + 30) -> None:
        self.thread.join(timeout=timeout)

    def as_upload_record(self) -> dict[str, Any]:
        """As the load logs an upload: 201 with its image's id once the last byte was answered, None (no
        answer: may or may not have made an image) otherwise."""
        done = self.image_path is not None and self.error is None
        image_id = int(self.image_path.rsplit("/", 1)[-1]) if done and self.image_path else None
        return {"method": "POST", "status": 201 if done else None, "id": image_id, "title": self.title}

    def state(self) -> dict[str, Any] | None:
        """`GET /uploads/{id}` through nginx, with the key that minted it."""
        if self.upload_id is None:
            return None
        status, _, payload = self._request(
            self.nginx, "GET", f"/uploads/{self.upload_id}", headers={"Authorization": f"Bearer {self.key}"}
        )
        return json.loads(payload) if status == 200 else {"status": status}
