"""A TCP proxy that can stall: a dependency that hangs, on demand, with an event for each request it holds.

`StallingProxy(port)` forwards 127.0.0.1:`proxy.port` to 127.0.0.1:`port`. After `stall()`, whatever a client
sends is held (nothing reaches the server, nothing is answered: a store that accepts connections and never
answers, as a stopped process or a partition does) and counted: `wait_held(n)` returns once n requests are
held, so a test knows a request is waiting on the dependency without sleeping. `resume()` closes the
connections that were held (their clients see the connection end) and forwards again.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading


class StallingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stalled = False
        self.held = 0  # requests that arrived while stalled
        self.forwarded = 0  # reads from clients passed on to the server
        self._changed = threading.Condition()
        self._held_connections: list[socket.socket] = []
        self._closing = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def stall(self) -> None:
        with self._changed:
            self.stalled = True

    def resume(self) -> None:
        with self._changed:
            self.stalled = False
            held, self._held_connections = self._held_connections, []
        for conn in held:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def wait_held(self, count: int, timeout: float = 30) -> bool:
        """Whether `count` requests are held (since the start) within `timeout` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: self.held >= count, timeout=timeout)

    def close(self) -> None:
        self._closing.set()
        self.resume()
        self.listener.close()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pump, args=(client,), daemon=True).start()

    def _pump(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, server)
        selector.register(server, selectors.EVENT_READ, client)
        holding = False
        try:
            while not self._closing.is_set():
                for key, _ in selector.select(timeout=0.2):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = source.recv(65536)
                    if not data:
                        return
                    if source is client:
                        with self._changed:
                            if self.stalled or holding:
                                # Held for good: this connection never answers again, as a hung store.
                                if not holding:
                                    holding = True
                                    self.held += 1
                                    self._held_connections.append(client)
                                    self._changed.notify_all()
                                continue
                            self.forwarded += 1
                    elif holding:
                        continue
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            client.close()
            server.close()
