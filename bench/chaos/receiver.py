"""The rig's webhook receiver: a small threaded HTTP server on loopback, as an app would run one.

It is registered as an endpoint through the admin API (`POST /webhooks`, every event kind) once the stack is
up, and verifies every delivery's signature with the receiving library (`standardwebhooks.Webhook(secret)
.verify`, which also refuses an old timestamp). A verified delivery is answered 204 and recorded: its
`webhook-id`, type, the object's id and title (a delete carries the id only) and when it came; one that
does not verify is answered 400 and counted. Receivers deduplicate by `webhook-id`, so a delivery seen
twice is recorded twice and counted once by the checks.

Faults act on it: `stop()` closes its socket (a try is refused), `start()` listens again on the same port;
`delay` holds every answer that long (a slow receiver keeps a worker's batch under way).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.server import free_port

HOST = "127.0.0.1"
PATH = "/hooks/imagery"


@dataclass(frozen=True)
class Received:
    webhook_id: str
    type: str
    object_id: int | None
    title: str | None
    at: float  # wall clock

    def as_dict(self) -> dict[str, Any]:
        return {
            "webhook_id": self.webhook_id,
            "type": self.type,
            "object_id": self.object_id,
            "title": self.title,
            "at": self.at,
        }


def _object_of(payload: dict[str, Any]) -> tuple[int | None, str | None]:
    """The changed object's id and title: `data.object` for created and updated, `data.id` for deletes."""
    data = payload.get("data") or {}
    if isinstance(data.get("object"), dict):
        return data["object"].get("id"), data["object"].get("title")
    return data.get("id"), None


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}{PATH}"
        self.secret: str | None = None
        self.delay = 0.0
        self.received: list[Received] = []
        self.bad_signatures = 0
        self.other_requests = 0
        self.cut_bodies = 0
        self.refusals: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.down_since: float | None = None
        self.connections: set[socket.socket] = set()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the app reuses its connection per endpoint

            def setup(self) -> None:
                super().setup()
                with receiver.lock:
                    receiver.connections.add(self.connection)

            def finish(self) -> None:
                with receiver.lock:
                    receiver.connections.discard(self.connection)
                super().finish()

            def log_message(self, format: str, *args: object) -> None:  # the base's name
                pass

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:  # http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    # The connection was cut under the body (the receiver's own fault closes them): the
                    # sender gets no answer and tries again; nothing was refused.
                    with receiver.lock:
                        receiver.cut_bodies += 1
                    return
                if self.path != PATH or receiver.secret is None:
                    with receiver.lock:
                        receiver.other_requests += 1
                    self._answer(404)
                    return
                if receiver.delay:
                    time.sleep(receiver.delay)
                from standardwebhooks import Webhook
                from standardwebhooks.webhooks import WebhookVerificationError

                headers = {name.lower(): value for name, value in self.headers.items()}
                try:
                    payload = Webhook(receiver.secret).verify(body, headers)
                except WebhookVerificationError as error:
                    with receiver.lock:
                        receiver.bad_signatures += 1
                        receiver.refusals.append(
                            {"t": time.time(), "reason": str(error), "id": headers.get("webhook-id")}
                        )
                    self._answer(400)
                    return
                object_id, title = _object_of(payload)
                record = Received(
                    headers["webhook-id"], payload.get("type", ""), object_id, title, time.time()
                )
                with receiver.lock:
                    receiver.received.append(record)
                self._answer(204)

        return Handler

    def start(self) -> None:
        """Listen (again) on the receiver's port."""
        server = ThreadingHTTPServer((HOST, self.port), self._handler())
        server.daemon_threads = True
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, name="receiver", daemon=True)
        self.thread.start()
        self.down_since = None

    def stop(self) -> None:
        """Close the listening socket and every open connection (the app keeps its connections alive):
        every try is refused or cut off until `start()`."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
            self.down_since = time.time()
        with self.lock:
            connections, self.connections = self.connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def dump(self, path: Any) -> None:
        with self.lock:
            lines = [json.dumps(r.as_dict()) for r in self.received]
        path.write_text("\n".join(lines) + ("\n" if lines else ""))
