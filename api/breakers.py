"""What keeps one stalled dependency from holding every thread of a process: a `Guard` around its calls.

A guard combines a bulkhead and a circuit breaker. At most `limit()` calls run at once in this process; a
caller waits at most `wait()` seconds for a slot, so the other threads stay free for requests that do not
need the dependency. After a call fails, the guard is open for `open_seconds()`: calls fail at once, without
trying, so a dependency that hangs costs one caller its timeout, not every caller. Once that time is over,
the next call tries again (there is no half-open state: a call that fails opens it again).

The limits are functions, read at each call, so settings can change them (tests do). Knows no dependency in
particular: `images.storage` guards the file store with one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Unavailable(Exception):
    """The guard refused a call: open after a recent failure, or no slot free within the wait."""


class Guard:
    """A bulkhead (`limit` calls at once, `wait` seconds at most for a slot) and a breaker (open for
    `open_seconds` after a failure) for the calls to one dependency."""

    def __init__(
        self,
        name: str,
        *,
        limit: Callable[[], int],
        wait: Callable[[], float],
        open_seconds: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.limit = limit
        self.wait = wait
        self.open_seconds = open_seconds
        self.clock = clock
        self._changed = threading.Condition()
        self._in_use = 0
        self._open_until = 0.0

    @property
    def in_use(self) -> int:
        """Calls under way now."""
        return self._in_use

    def is_open(self) -> bool:
        return self.clock() < self._open_until

    def trip(self) -> None:
        """Open the guard for `open_seconds()`; callers waiting for a slot give up at once."""
        with self._changed:
            self._open_until = self.clock() + self.open_seconds()
            self._changed.notify_all()

    def reset(self) -> None:
        with self._changed:
            self._open_until = 0.0
            self._changed.notify_all()

    @contextmanager
    def call(self, *, answers: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
        """One call to the dependency, inside the `with` block. Raises Unavailable when the guard is
        open or no slot came free within `wait()` seconds. An exception from the block opens the guard,
        unless it is one of `answers` (the dependency answered: a file that is not there is no failure).
        """
        if self.is_open():
            raise Unavailable(f"{self.name}: failing fast after a recent failure")
        with self._changed:
            got_slot = self._changed.wait_for(
                lambda: self.is_open() or self._in_use < self.limit(), timeout=self.wait()
            )
            if self.is_open():
                raise Unavailable(f"{self.name}: failed while this call waited")
            if not got_slot:
                raise Unavailable(f"{self.name}: {self._in_use} calls under way, none ended in time")
            self._in_use += 1
        try:
            yield
        except answers:
            raise
        except Exception:  # not BaseException: a generator closed early (GeneratorExit) is no failure
            self.trip()
            raise
        finally:
            with self._changed:
                self._in_use -= 1
                self._changed.notify()
