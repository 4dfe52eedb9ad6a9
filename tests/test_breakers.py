"""api/breakers.py: the guard that keeps a stalled dependency to a few threads and fails fast after a failure.

Threads wait on events, never on sleeps; the clock is set by the test.
"""

from __future__ import annotations

import threading

import pytest

from api.breakers import Guard, Unavailable
from tests.races import until


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def guard(
    *, limit: int = 1, wait: float = 30.0, open_seconds: float = 2.0, clock: Clock | None = None
) -> Guard:
    return Guard(
        "test",
        limit=lambda: limit,
        wait=lambda: wait,
        open_seconds=lambda: open_seconds,
        clock=clock or Clock(),
    )


def test_after_a_failure_calls_fail_fast_until_the_time_is_over() -> None:
    clock = Clock()
    tested = guard(clock=clock)
    with pytest.raises(ConnectionError), tested.call():
        raise ConnectionError("store down")
    ran = []
    with pytest.raises(Unavailable), tested.call():
        ran.append(1)
    assert ran == []
    clock.now += 2.5
    with tested.call():
        ran.append(1)
    assert ran == [1]


def test_an_answer_of_the_dependency_is_no_failure() -> None:
    tested = guard()
    with pytest.raises(FileNotFoundError), tested.call(answers=(FileNotFoundError,)):
        raise FileNotFoundError("not there")
    assert not tested.is_open()
    assert tested.in_use == 0


def _hold(tested: Guard, inside: threading.Event, release: threading.Event, fail: bool = False) -> None:
    try:
        with tested.call():
            inside.set()
            release.wait(30)
            if fail:
                raise TimeoutError("read timed out")
    except TimeoutError:
        pass


def _held(tested: Guard, fail: bool = False) -> tuple[threading.Thread, threading.Event]:
    """A call under way in a thread of its own, until the event returned is set (then it fails, with
    `fail`); returns once the call has its turn."""
    inside, release = threading.Event(), threading.Event()
    thread = threading.Thread(target=_hold, args=(tested, inside, release, fail))
    thread.start()
    assert inside.wait(10)
    return thread, release


def test_a_call_waits_a_bounded_time_for_a_turn() -> None:
    clock = Clock()
    tested = guard(limit=1, wait=0.5, clock=clock)
    holder, release = _held(tested)
    outcome: list[BaseException] = []

    def waiter() -> None:
        try:
            with tested.call():
                pass
        except Unavailable as error:
            outcome.append(error)

    waiting = threading.Thread(target=waiter)
    waiting.start()
    assert until(lambda: tested.waiting == 1)
    clock.now += 0.6  # the wait is over, and the call ahead has not ended
    waiting.join(10)
    assert [str(e) for e in outcome] == ["test: 1 calls under way and 0 waiting, none ended in time"]
    assert not tested.is_open()  # being busy is no failure
    release.set()
    holder.join(10)
    with tested.call():
        assert tested.in_use == 1
    assert tested.in_use == 0


def test_a_call_does_not_wait_behind_a_stalled_one() -> None:
    clock = Clock()
    tested = guard(limit=1, wait=0.5, clock=clock)
    holder, release = _held(tested)
    clock.now += 0.6  # the call ahead has been under way longer than anyone should wait for it
    with pytest.raises(Unavailable, match="none ended in time"), tested.call():
        pass
    assert tested.waiting == 0
    release.set()
    holder.join(10)


def test_a_call_gets_the_turn_a_finished_call_leaves() -> None:
    tested = guard(limit=1, wait=60)
    holder, release = _held(tested)
    ran = threading.Event()

    def waiter() -> None:
        with tested.call():
            ran.set()

    waiting = threading.Thread(target=waiter)
    waiting.start()
    assert until(lambda: tested.waiting == 1)
    release.set()
    assert ran.wait(10)
    waiting.join(10)
    holder.join(10)


def test_callers_waiting_for_a_turn_give_up_as_soon_as_the_call_ahead_fails() -> None:
    tested = guard(limit=1, wait=60)
    holder, release = _held(tested, fail=True)
    outcome: list[BaseException] = []

    def waiter() -> None:
        try:
            with tested.call():
                pass
        except Unavailable as error:
            outcome.append(error)

    waiting = threading.Thread(target=waiter)
    waiting.start()
    release.set()  # the call ahead fails: the waiter is told at once, not after its 60 s
    holder.join(10)
    waiting.join(10)
    assert not waiting.is_alive()
    assert [str(e) for e in outcome] == ["test: failed while this call waited"]


def test_the_limit_is_read_at_each_call() -> None:
    limit = [2]
    tested = Guard("test", limit=lambda: limit[0], wait=lambda: 0.0, open_seconds=lambda: 1.0, clock=Clock())
    with tested.call(), tested.call():
        with pytest.raises(Unavailable), tested.call():
            pass
        limit[0] = 3
        with tested.call():
            assert tested.in_use == 3


def test_a_caller_may_choose_not_to_wait_and_learns_the_guard_was_busy() -> None:
    tested = guard(limit=1, wait=60)
    with tested.call(), pytest.raises(Unavailable) as refused, tested.call(wait=0.0):
        pass
    assert refused.value.busy
    tested.trip()
    with pytest.raises(Unavailable) as refused, tested.call(wait=0.0):
        pass
    assert not refused.value.busy


def capped(*, limit: int, waiting: int, clock: Clock, wait: float = 60.0, grace: float = 0.1) -> Guard:
    return Guard(
        "test",
        limit=lambda: limit,
        wait=lambda: wait,
        open_seconds=lambda: 1.0,
        waiting=lambda: waiting,
        grace=lambda: grace,
        clock=clock,
    )


def _wait_in(tested: Guard, outcome: list[object]) -> threading.Thread:
    """A caller in a thread of its own: appends "turn" once it has its turn, or the Unavailable it got."""

    def caller() -> None:
        try:
            with tested.call():
                outcome.append("turn")
        except Unavailable as error:
            outcome.append(error)

    thread = threading.Thread(target=caller)
    thread.start()
    return thread


def test_past_the_room_to_wait_a_caller_waits_only_while_calls_turn_over() -> None:
    # A caller waiting holds its thread as a call does. One may wait whatever the call's age; one more
    # only while the call under way is younger than the grace: then the store is not answering, and it
    # gives up, leaving that thread to requests that do not need the store.
    clock = Clock()
    tested = capped(limit=1, waiting=1, clock=clock)
    holder, release = _held(tested)
    first: list[object] = []
    waiting = _wait_in(tested, first)
    assert until(lambda: tested.waiting == 1)
    second: list[object] = []
    extra = _wait_in(tested, second)
    assert until(lambda: tested.waiting == 2)  # the call is 0 s old: it may yet end, so the extra waits
    clock.now += 0.2  # no call has begun for longer than the grace
    extra.join(10)
    [refused] = second
    assert isinstance(refused, Unavailable) and refused.busy
    assert tested.waiting == 1 and first == []  # the first caller still waits (its wait is 60 s)
    # A caller arriving now finds no room to wait and no call turning over: refused at once.
    with pytest.raises(Unavailable) as at_once, tested.call():
        pass
    assert at_once.value.busy and tested.waiting == 1
    release.set()  # the call ends: the caller that waited gets its turn
    holder.join(10)
    waiting.join(10)
    assert first == ["turn"]


def test_a_burst_against_a_dependency_that_answers_waits_its_turn() -> None:
    # No room to wait at all (waiting=0), but the call under way is young: the next caller waits for it
    # rather than being refused.
    clock = Clock()
    tested = capped(limit=1, waiting=0, clock=clock)
    holder, release = _held(tested)
    outcome: list[object] = []
    waiting = _wait_in(tested, outcome)
    assert until(lambda: tested.waiting == 1)
    release.set()
    holder.join(10)
    waiting.join(10)
    assert outcome == ["turn"]


def test_a_caller_waits_behind_a_young_call_even_when_another_is_stalled() -> None:
    # Two slots: one call stalled (under way longer than the wait), one just begun. The dependency is not
    # stalled as a whole: a caller waits for the young call's slot.
    clock = Clock()
    tested = capped(limit=2, waiting=1, wait=0.5, clock=clock)
    stalled, stalled_out = _held(tested)
    clock.now += 0.6
    young, young_out = _held(tested)
    assert not tested.refuses_now()
    outcome: list[object] = []
    waiting = _wait_in(tested, outcome)
    assert until(lambda: tested.waiting == 1)
    young_out.set()
    young.join(10)
    waiting.join(10)
    assert outcome == ["turn"]
    stalled_out.set()
    stalled.join(10)


def test_a_caller_past_the_room_takes_a_place_in_it_once_one_is_free() -> None:
    # The room holds one. A waits in it and B past it; when A gets its turn, B is the one waiting, in the
    # room now: it waits for A's call however long that takes (up to the wait), not only the grace.
    clock = Clock()
    tested = capped(limit=1, waiting=1, clock=clock)
    first, first_out = _held(tested)
    second_in, second_out = threading.Event(), threading.Event()
    second = threading.Thread(target=_hold, args=(tested, second_in, second_out))  # A, in the room
    second.start()
    assert until(lambda: tested.waiting == 1)
    outcome: list[object] = []
    third = _wait_in(tested, outcome)  # B, past the room
    assert until(lambda: tested.waiting == 2)
    first_out.set()  # A gets the turn
    assert second_in.wait(10)
    clock.now += 0.2  # A's call is older than the grace: B, in the room now, still waits
    assert not until(lambda: outcome != [], timeout=0.3)
    second_out.set()
    third.join(10)
    assert outcome == ["turn"]
    first.join(10)
    second.join(10)


def test_past_the_room_a_caller_never_waits_longer_than_the_wait() -> None:
    # A grace longer than the wait is cut to it: behind calls all under way for longer than the wait (the
    # dependency stalled, refuses_now() says so), nobody waits, in the room or out of it.
    clock = Clock()
    tested = capped(limit=1, waiting=0, clock=clock, wait=0.5, grace=5.0)
    holder, release = _held(tested)
    clock.now += 0.6
    assert tested.refuses_now()
    with pytest.raises(Unavailable) as refused, tested.call():
        pass
    assert refused.value.busy
    release.set()
    holder.join(10)
