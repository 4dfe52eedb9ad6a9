"""What keeps one stalled dependency from holding every thread of a process: a `Guard` around its calls.

A guard combines a bulkhead and a circuit breaker. At most `limit()` calls run at once in this process. A
caller finding every slot taken waits for one at most `wait()` seconds, and not at all while every call
under way has been under way for longer than that (they are stalled). A caller waiting for a slot holds its
thread as surely as a call does, so waiting is capped too: `waiting()` callers may wait whatever the
calls' age, and a caller beyond those only while the calls turn over (the latest began less than
`grace()` seconds ago); once none has for that long, it is refused at once. So a dependency that hangs
holds at most `limit() + waiting()` threads of the process (plus, for `grace()` seconds after it stopped,
the callers that were waiting), leaving the others to requests that do not need it, while a burst of calls
to a dependency that answers waits its turn instead of being refused.

After a call fails, the guard is open for `open_seconds()`: calls fail at once, without trying, so a
dependency that hangs costs the callers under way their timeouts, not every caller. Once that time is
over, the next call tries again (there is no half-open state: a call that fails opens it again).

The limits are functions, read at each call, so settings can change them (tests do). Knows no dependency in
particular: `images.storage` guards the file store with one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Unavailable(Exception):
    """The guard refused a call: open after a recent failure, or (`busy`) no slot free within the wait,
    or no room to wait for one."""

    def __init__(self, message: str, *, busy: bool = False) -> None:
        super().__init__(message)
        self.busy = busy


class Guard:
    """A bulkhead (`limit` calls at once; `waiting` callers waiting for a slot, and more only while calls
    turn over within `grace` seconds; each for `wait` seconds at most) and a breaker (open for
    `open_seconds` after a failure) for the calls to one dependency. Without `waiting`, any number of
    callers may wait."""

    def __init__(
        self,
        name: str,
        *,
        limit: Callable[[], int],
        wait: Callable[[], float],
        open_seconds: Callable[[], float],
        waiting: Callable[[], int | None] = lambda: None,
        grace: Callable[[], float] = lambda: 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.limit = limit
        self.wait = wait
        self.max_waiting = waiting
        self.grace = grace
        self.open_seconds = open_seconds
        self.clock = clock
        self._changed = threading.Condition()
        self._started: dict[object, float] = {}  # each call under way: when it began
        self._waiting = 0
        self._in_room = 0  # of those, the ones within `waiting()`: they may wait whatever the calls' age
        self._open_until = 0.0

    @property
    def in_use(self) -> int:
        """Calls under way now."""
        return len(self._started)

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot now."""
        return self._waiting

    def is_open(self) -> bool:
        return self.clock() < self._open_until

    def refuses_now(self) -> bool:
        """Whether the dependency looks stalled: the guard open, or every slot taken by a call under way
        for longer than the wait (a caller could not even wait)."""
        if self.is_open():
            return True
        with self._changed:
            if len(self._started) < self.limit():
                return False
            return self._latest_start() + self.wait() <= self.clock()

    def _latest_start(self) -> float:
        """When the call that began last began (now, when none is under way); under `_changed`."""
        return max(self._started.values(), default=self.clock())

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
    def call(
        self, *, answers: tuple[type[BaseException], ...] = (), wait: float | None = None
    ) -> Iterator[None]:
        """One call to the dependency, inside the `with` block. Raises Unavailable when the guard is
        open, when every slot is taken and there is no room to wait (see the module), or when no slot came
        free within `wait` seconds (default `wait()`). An exception from the block opens the guard, unless
        it is one of `answers` (the dependency answered: a file that is not there is no failure).
        """
        patience = self.wait() if wait is None else wait
        if self.is_open():
            raise Unavailable(f"{self.name}: failing fast after a recent failure")
        token = object()
        with self._changed:
            deadline = self.clock() + patience
            self._waiting += 1
            in_room = False
            try:
                while len(self._started) >= self.limit():
                    if self.is_open():
                        raise Unavailable(f"{self.name}: failed while this call waited")
                    room = self.max_waiting()
                    if not in_room and (room is None or self._in_room < room):
                        in_room = True  # a place in the room (perhaps one a caller ahead left)
                        self._in_room += 1
                    # Never behind calls all under way for longer than the wait: the dependency is stalled;
                    # and outside the room, not once none has begun for `grace()` seconds (nor longer
                    # than the wait).
                    patience_left = self.wait() if in_room else min(self.grace(), self.wait())
                    until = min(deadline, self._latest_start() + patience_left)
                    if until <= self.clock():
                        raise Unavailable(
                            f"{self.name}: {len(self._started)} calls under way and {self._waiting - 1} "
                            "waiting, none ended in time",
                            busy=True,
                        )
                    # Woken when a call ends or the guard trips; the step bounds a clock set by a test.
                    self._changed.wait(min(until - self.clock(), 0.05))
                if self.is_open():
                    raise Unavailable(f"{self.name}: failed while this call waited")
            finally:
                self._waiting -= 1
                if in_room:
                    self._in_room -= 1
                    self._changed.notify()  # a place in the room is free: a caller outside may take it
            self._started[token] = self.clock()
        try:
            yield
        except answers:
            raise
        except Exception:  # not BaseException: a generator closed early (GeneratorExit) is no failure
            self.trip()
            raise
        finally:
            with self._changed:
                del self._started[token]
                self._changed.notify()
