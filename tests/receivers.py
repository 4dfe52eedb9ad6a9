"""A webhook receiver on loopback for tests and benchmarks: a threaded http.server that keeps what it is
sent and answers what the test says (a status, a redirect), verifying nothing itself."""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Serves on 127.0.0.1 at a free port until `stop()`; `status` (and `location`) are what it answers."""

    status: int = 204
    location: str = ""
    answer: bytes = b""
    requests: list[Received] = field(default_factory=list)
    # (certificate, key): serve https with them.
    tls: tuple[Path, Path] | None = None
    # Seconds between the answer's bytes (a receiver that drips its answer).
    drip: float = 0.0
    # The server name each TLS client asked for (SNI).
    server_names: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                self.send_response(receiver.status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", str(len(receiver.answer)))
                self.end_headers()
                if not receiver.drip:
                    self.wfile.write(receiver.answer)
                    return
                for byte in receiver.answer:
                    time.sleep(receiver.drip)
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:
                        return  # the client gave up

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if self.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.tls)

            def note_server_name(sock: ssl.SSLSocket, name: str | None, ctx: ssl.SSLContext) -> None:
                receiver.server_names.append(name)

            context.sni_callback = note_server_name
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
