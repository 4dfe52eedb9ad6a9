"""A gunicorn worker that gives slow clients no thread: a request reaches a thread only once its head and its
body are all here, and a connection that closes is drained without one.

gunicorn's gthread worker hands a connection to a thread as soon as its first byte arrives; the thread then
blocks while the head and the body trickle in, and gunicorn's `timeout` does not fire for threaded
workers. Eight clients that sent a head slowly, or declared a large body and stopped, took every thread of
`make run`. Here the worker's event loop (the thread that accepts) reads each request, head and body, without
blocking, as nginx does in front of an app; the body goes to memory, then to a temporary file. Only then does
a thread run the app, which reads the body from that buffer. Bounds, as nginx's:

- the head must arrive within HEAD_TIMEOUT_SECONDS, and a body may pause at most BODY_TIMEOUT_SECONDS;
  otherwise the connection is closed, unanswered;
- a body declared longer than `body_max_bytes` (the upload limit, IMAGE_MAX_UPLOAD_BYTES, with room for the
  form) is not read: the request goes to a thread at once, where the app refuses it by its declared length
  (413) without reading it;
- a connection the server closes (after such an answer, or after any answer the app gave before reading the
  body: 401, 429, 503) is drained in the event loop, not a thread: its write side is shut, then what the
  client still sends is read and dropped (at most twice `body_max_bytes`, LINGER_SECONDS in all,
  LINGER_IDLE_SECONDS between reads) before it is closed. Closing a socket with unread bytes makes the
  kernel reset it, and a client or proxy still sending its body (nginx sends it whole before reading)
  would get a broken pipe instead of the answer, which nginx turns into a 502.

Connections waiting in the event loop count against gunicorn's `worker_connections` (1000 per worker), so
their number is bounded too; and one address may hold at most `connections_per_address` of a worker's
connections (GUNICORN_CONNECTIONS_PER_ADDRESS), so one client cannot take all of them: a connection over
it is closed at once. Behind a proxy every connection comes from the proxy's address, and the proxy
bounds its own clients: deploy/gunicorn.conf.py turns the bound off when NUM_PROXIES says one is in front.

Plain HTTP/1.x only, as deploy/gunicorn.conf.py serves it (no TLS, no HTTP/2: TLS ends at the proxy). A
thread's reads past the buffer and its writes wait at most THREAD_IO_TIMEOUT_SECONDS each.

This module builds on gunicorn's gthread internals (its connection object, parser and event loop, the
`_keepalive_after` hook; the private attribute it sets is in api/compat.py); gunicorn is pinned, and
tests/test_slow_clients.py and tests/test_early_answers.py, which run the real server, and
tests/test_compat.py fail when an upgrade changes them.
"""

from __future__ import annotations

import contextlib
import errno
import io
import ipaddress
import selectors
import socket
import tempfile
import time
from collections import Counter
from typing import IO, Any

from gunicorn.http.parser import RequestParser
from gunicorn.workers.gthread import TConn, ThreadWorker

from api.compat import continue_already_sent

# nginx's defaults are 60 s each; a waiting connection holds no thread here, only a socket.
HEAD_TIMEOUT_SECONDS = 20.0
BODY_TIMEOUT_SECONDS = 30.0
# A head longer than this goes to gunicorn's parser as it is, which refuses it (its limits are lower).
HEAD_MAX_BYTES = 1024 * 1024
# Bodies are kept in memory up to this size, then in a temporary file (small: a worker may hold a
# thousand waiting connections, and an upload goes to a file in any case).
BODY_MEMORY_BYTES = 64 * 1024
# nginx's lingering_time, lingering_timeout; and what one closing connection may make us read.
LINGER_SECONDS = 30.0
LINGER_IDLE_SECONDS = 5.0
# Read per readable event: enough for a fast client, small enough to take turns with the others.
READ_BYTES = 256 * 1024
READS_PER_EVENT = 8
# A thread reading past the buffer (a body the worker did not read), or writing an answer to a client that
# does not read it, waits at most this long per read or write: nothing holds a thread for ever.
THREAD_IO_TIMEOUT_SECONDS = BODY_TIMEOUT_SECONDS

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _Incoming:
    """The request being read for one connection: its head, then its body (memory, then a file)."""

    def __init__(self, seed: bytes, first_wait: float) -> None:
        self.head = bytearray(seed)
        self.head_done = False
        self.body: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=BODY_MEMORY_BYTES)  # noqa: SIM115
        self.body_expected = 0
        self.body_received = 0
        # Until its first byte, a kept-alive connection waits as long as gunicorn's keepalive says.
        self.started = bool(seed)
        self.deadline = time.monotonic() + (HEAD_TIMEOUT_SECONDS if seed else first_wait)
        self.expects_continue = False
        # True: hand over at the end of the head, without reading a body.
        self.head_only = False

    def complete(self) -> bool:
        return self.head_done and (self.head_only or self.body_received >= self.body_expected)


class _BufferedSocket:
    """What gunicorn's parser reads: the bytes the worker buffered (the head, then the body), then the
    socket (with a timeout)."""

    def __init__(self, sock: socket.socket, buffered: list[IO[bytes]]) -> None:
        self.sock = sock
        self.buffered = buffered

    def recv(self, size: int) -> bytes:
        while self.buffered:
            data = self.buffered[0].read(size)
            if data:
                return data
            self.buffered.pop(0).close()
        # gthread made the socket blocking, without a timeout, before the parser reads the head.
        self.sock.settimeout(THREAD_IO_TIMEOUT_SECONDS)
        return self.sock.recv(size)

    def rest(self) -> bytes:
        """The buffered bytes nobody read (a request sent behind this one)."""
        data = b"".join(part.read() for part in self.buffered)
        self.close()
        return data

    def close(self) -> None:
        while self.buffered:
            self.buffered.pop(0).close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


class BufferingWorker(ThreadWorker):
    """gthread, with each request read whole by the event loop before a thread runs it (module docstring)."""

    # Set from deploy/gunicorn.conf.py: the upload limit plus the form's room; 0: no bound per address.
    body_max_bytes = 50 * 1024 * 1024 + 64 * 1024
    connections_per_address = 0

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        super().check_config(cfg, log)
        if cfg.is_ssl:
            raise RuntimeError("BufferingWorker serves plain HTTP/1.x: end TLS at the proxy in front")

    def init_process(self) -> None:
        # Connections in the event loop: reading a request (_Incoming) or lingering before their close.
        self.waiting: dict[TConn, float] = {}
        # Open connections per client address, from accept to close.
        self.per_address: Counter[str] = Counter()
        super().init_process()

    # --- connections in -------------------------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        address = _address(client_addr)
        if self.connections_per_address and self.per_address[address] >= self.connections_per_address:
            self.log.debug(
                "Closing a connection from %s: it holds %s already", address, self.per_address[address]
            )
            client_sock.close()
            return
        self.per_address[address] += 1
        self.nr_conns += 1
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())  # non-blocking
        self._read_request(conn, b"", first_wait=HEAD_TIMEOUT_SECONDS)

    def _read_request(self, conn: TConn, seed: bytes, first_wait: float) -> None:
        conn.incoming = _Incoming(seed, first_wait)
        conn.sock.setblocking(False)
        if seed and self._take_in(conn):
            return
        self.waiting[conn] = conn.incoming.deadline
        self.poller.register(conn.sock, selectors.EVENT_READ, lambda _sock: self._on_readable(conn))

    def _on_readable(self, conn: TConn) -> None:
        for _ in range(READS_PER_EVENT):
            try:
                data = conn.sock.recv(READ_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._drop(conn)
                return
            if not data:  # the client left before its request was whole: nobody to answer
                self._drop(conn)
                return
            incoming: _Incoming = conn.incoming
            if incoming.head_done:
                # A body may pause BODY_TIMEOUT_SECONDS between two reads.
                incoming.deadline = self.waiting[conn] = time.monotonic() + BODY_TIMEOUT_SECONDS
                self._add_body(incoming, data)
            else:
                if not incoming.started:
                    incoming.started = True
                    incoming.deadline = self.waiting[conn] = time.monotonic() + HEAD_TIMEOUT_SECONDS
                incoming.head += data
            if self._take_in(conn, registered=True):
                return

    def _take_in(self, conn: TConn, registered: bool = False) -> bool:
        """Parse what came; hand the request to a thread when it is whole. True once handed over."""
        incoming: _Incoming = conn.incoming
        if not incoming.head_done:
            # Empty lines before a request line are allowed (RFC 9112, 2.2): skip them.
            while incoming.head.startswith(b"\r\n"):
                del incoming.head[:2]
            end = incoming.head.find(b"\r\n\r\n")
            if end < 0:
                if len(incoming.head) <= HEAD_MAX_BYTES:
                    return False
                incoming.head_done = incoming.head_only = True  # gunicorn's parser refuses it
            else:
                extra = bytes(incoming.head[end + 4 :])
                del incoming.head[end + 4 :]
                incoming.head_done = True
                self._read_head(incoming)
                incoming.deadline = time.monotonic() + BODY_TIMEOUT_SECONDS
                if registered:
                    self.waiting[conn] = incoming.deadline
                if incoming.expects_continue and not incoming.head_only and incoming.body_expected:
                    try:
                        sent = conn.sock.send(_CONTINUE)
                    except OSError:
                        sent = 0
                    if sent != len(_CONTINUE):
                        self._drop(conn, registered=registered)
                        return True
                self._add_body(incoming, extra)
        if not incoming.complete():
            return False
        self._hand_over(conn, registered=registered)
        return True

    @staticmethod
    def _read_head(incoming: _Incoming) -> None:
        """What the buffering needs from the head: the body's length, chunked or not, 100-continue."""
        lines = bytes(incoming.head).decode("latin-1").split("\r\n")
        version = lines[0].rsplit(" ", 1)[-1]
        lengths, chunked, expect = [], False, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                lengths.append(value)
            elif name == "transfer-encoding":
                chunked = True
            elif name == "expect" and value.lower() == "100-continue":
                expect = True
        # Anything this reading cannot be sure of goes to gunicorn's parser at once, which refuses what is
        # malformed. A chunked body has no length: Django reads none of it, so the app answers at once.
        if chunked or len(lengths) > 1 or not all(value.isascii() and value.isdigit() for value in lengths):
            incoming.head_only = True
            return
        incoming.body_expected = int(lengths[0]) if lengths else 0
        if incoming.body_expected > BufferingWorker.body_max_bytes:
            incoming.head_only = True  # refused by its declared length, unread
        incoming.expects_continue = expect and version == "HTTP/1.1"

    @staticmethod
    def _add_body(incoming: _Incoming, data: bytes) -> None:
        if data:
            incoming.body.write(data)
            incoming.body_received += len(data)

    def _hand_over(self, conn: TConn, *, registered: bool) -> None:
        incoming: _Incoming = conn.incoming
        if registered:
            self.poller.unregister(conn.sock)
            self.waiting.pop(conn, None)
        incoming.body.seek(0)
        conn.source = _BufferedSocket(conn.sock, [io.BytesIO(incoming.head), incoming.body])
        conn.parser = RequestParser(self.cfg, conn.source, conn.client)
        conn.head_only = incoming.head_only
        conn.continued = incoming.expects_continue
        conn.incoming = None
        conn.initialized = conn.data_ready = True  # no TLS to set up; the request is here
        conn.sock.setblocking(True)
        self.enqueue_req(conn)

    # --- in the thread --------------------------------------------------------------------------

    def handle_request(self, req: Any, conn: TConn) -> Any:
        conn.sock.settimeout(THREAD_IO_TIMEOUT_SECONDS)
        if conn.continued:
            # The event loop already asked for the body; gunicorn would ask again.
            continue_already_sent(req)
        return super().handle_request(req, conn)

    def _keepalive_after(self, conn: TConn, keepalive: bool) -> bool:
        # A request handed over at its head has its body on the socket still: close, drained by the loop.
        if conn.head_only:
            return False
        return bool(super()._keepalive_after(conn, keepalive))

    # --- connections out ------------------------------------------------------------------------

    def finish_request(self, conn: TConn, fs: Any) -> None:
        try:
            keepalive = bool(fs.result()) if not fs.cancelled() else False
        except Exception:
            keepalive = False
        if keepalive and self.alive:
            # The next request, if the client sent one behind this: what the parser and the buffer hold.
            seed = conn.parser.unreader.take_buffered() + conn.source.rest()
            conn.parser = None
            self._read_request(conn, seed, first_wait=self.cfg.keepalive)
            return
        conn.source.close()
        self._linger(conn)

    def _linger(self, conn: TConn) -> None:
        """Shut the write side, read and drop what the client still sends, then close (no thread)."""
        try:
            conn.sock.setblocking(False)
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.linger_until = time.monotonic() + LINGER_SECONDS
        conn.lingered = 0
        self.waiting[conn] = min(conn.linger_until, time.monotonic() + LINGER_IDLE_SECONDS)
        self.poller.register(conn.sock, selectors.EVENT_READ, lambda _sock: self._on_linger_readable(conn))

    def _on_linger_readable(self, conn: TConn) -> None:
        for _ in range(READS_PER_EVENT):
            try:
                data = conn.sock.recv(READ_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            conn.lingered += len(data)
            if not data or conn.lingered > 2 * self.body_max_bytes:
                self._drop(conn)
                return
            self.waiting[conn] = min(conn.linger_until, time.monotonic() + LINGER_IDLE_SECONDS)

    def _drop(self, conn: TConn, registered: bool = True) -> None:
        if registered:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.poller.unregister(conn.sock)
        self.waiting.pop(conn, None)
        incoming = getattr(conn, "incoming", None)
        if incoming is not None:
            incoming.body.close()
            conn.incoming = None
        self._close(conn)

    def _close(self, conn: TConn) -> None:
        self.nr_conns -= 1
        address = _address(conn.client)
        self.per_address[address] -= 1
        if self.per_address[address] <= 0:
            del self.per_address[address]
        conn.close()

    # --- time -----------------------------------------------------------------------------------

    def murder_pending(self) -> None:
        """Called by the event loop about once a second: drop connections past their deadline."""
        super().murder_pending()
        now = time.monotonic()
        for conn in [conn for conn, deadline in self.waiting.items() if deadline <= now]:
            self._drop(conn)

    def murder_keepalived(self, force: bool = False) -> None:
        super().murder_keepalived(force)
        if force:
            for conn in list(self.waiting):
                self._drop(conn)


def _address(client: Any) -> str:
    """Who a connection counts for: the client's IPv4 address, or its IPv6 /64 (one host is given a whole
    /64 and may use any address in it); a Unix socket's peer has none: all count as one."""
    if not (isinstance(client, tuple) and client):
        return ""
    try:
        address = ipaddress.ip_address(str(client[0]).split("%", 1)[0])
    except ValueError:
        return str(client[0])
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
