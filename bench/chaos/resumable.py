"""A resumable (tus) upload cut off by the replica kill and resumed on another replica (issue 24).

Just before the `replica` fault, `ResumableInFlight.start` mints an upload URL on the replica about to be
killed, sends the first half of a ~3.5 MB PNG there by tus (tuspy, in 256 KiB chunks), and keeps sending
chunks, slowly, from a thread: the kill cuts it off mid-way. `resume` then carries on from a surviving
replica (the same URL path on another host), from the offset that replica reads from the shared database
and store. The check (`checks.resumable_completed_once`): the last chunk made the image, exactly one image
has the URL's title, `GET /uploads/{id}` says completed with it, and no chunk of it is left in the bucket.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from PIL import Image

TITLE = "resumable in flight"
CHUNK_BYTES = 256 * 1024
# Between two chunks sent to the replica that is killed: its half takes longer than the kill takes to come.
CHUNK_PAUSE_SECONDS = 0.2


class ResumableInFlight:
    def __init__(self, killed_url: str, survivor_url: str, key: str) -> None:
        from tusclient.client import TusClient

        self._client_class = TusClient
        self.killed_url = killed_url
        self.survivor_url = survivor_url
        self.key = key
        buffer = io.BytesIO()
        # Noise, so that the PNG is as large as its pixels (1100x1100 RGB: about 3.6 MB).
        Image.frombytes("RGB", (1100, 1100), os.urandom(1100 * 1100 * 3)).save(
            buffer, "PNG", compress_level=1
        )
        self.data = buffer.getvalue()
        self.record: dict[str, Any] = {"kind": "resumable", "title": TITLE, "size": len(self.data)}
        self.path = ""
        self._sending: threading.Thread | None = None
        self._resuming: threading.Thread | None = None

    def _uploader(self, base: str, *, resume: bool) -> Any:
        url = base + self.path
        client = self._client_class(url)
        stream = io.BytesIO(self.data)
        if resume:
            return client.uploader(file_stream=stream, url=url, chunk_size=CHUNK_BYTES)
        return client.uploader(
            file_stream=stream, chunk_size=CHUNK_BYTES, metadata={"filename": "resumable.png"}
        )

    def start(self) -> None:
        """Mint the URL and send half to the replica about to be killed; go on sending from a thread."""
        request = urllib.request.Request(  # noqa: S310  # the rig's own loopback addresses
            f"{self.killed_url}/uploads",
            data=json.dumps({"title": TITLE}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            minted = json.loads(answer.read())
        self.path = urlsplit(minted["upload_url"]).path
        self.record["upload_id"] = minted["id"]
        uploader = self._uploader(self.killed_url, resume=False)
        uploader.upload(stop_at=len(self.data) // 2)
        self.record["sent_before_kill"] = uploader.offset

        def keep_sending() -> None:
            try:
                while uploader.offset < len(self.data):
                    uploader.upload_chunk()
                    time.sleep(CHUNK_PAUSE_SECONDS)
                self.record["finished_before_kill"] = True
            except Exception as exc:  # the kill: a reset connection, or no answer
                self.record["cut_off"] = type(exc).__name__
            self.record["confirmed_by_killed"] = uploader.offset

        self._sending = threading.Thread(target=keep_sending, daemon=True)
        self._sending.start()

    def resume(self) -> None:
        """Once the sending thread is cut off: carry on from the survivor, in a thread of its own."""

        def carry_on() -> None:
            if self._sending is not None:
                self._sending.join(timeout=60)
            try:
                uploader = self._uploader(self.survivor_url, resume=True)
                self.record["resumed_at"] = uploader.offset
                uploader.upload()
                self.record["image"] = uploader.request.response_headers.get("imagery-image")
            except Exception as exc:
                self.record["resume_failed"] = repr(exc)[:300]

        self._resuming = threading.Thread(target=carry_on, daemon=True)
        self._resuming.start()

    def join(self) -> None:
        for thread in (self._sending, self._resuming):
            if thread is not None:
                thread.join(timeout=120)
