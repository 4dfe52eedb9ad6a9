"""api/breakers.py: the guard that keeps a stalled dependency to one thread and fails fast after a failure.

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


def test_a_call_waits_a_bounded_time_for_a_turn() -> None:
    clock = Clock()
    tested = guard(limit=1, wait=0.5, clock=clock)
    inside, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold, args=(tested, inside, release))
    holder.start()
    assert inside.wait(10)
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
    assert [str(e) for e in outcome] == ["test: 1 calls under way, none ended in time"]
    assert not tested.is_open()  # being busy is no failure
    release.set()
    holder.join(10)
    with tested.call():
        assert tested.in_use == 1
    assert tested.in_use == 0


def test_a_call_does_not_wait_behind_a_stalled_one() -> None:
    clock = Clock()
    tested = guard(limit=1, wait=0.5, clock=clock)
    inside, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold, args=(tested, inside, release))
    holder.start()
    assert inside.wait(10)
    clock.now += 0.6  # the call ahead has been under way longer than anyone should wait for it
    with pytest.raises(Unavailable, match="none ended in time"), tested.call():
        pass
    assert tested.waiting == 0
    release.set()
    holder.join(10)


def test_a_call_gets_the_turn_a_finished_call_leaves() -> None:
    tested = guard(limit=1, wait=60)
    inside, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold, args=(tested, inside, release))
    holder.start()
    assert inside.wait(10)
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
    inside, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold, args=(tested, inside, release, True))
    holder.start()
    assert inside.wait(10)
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


def test_a_caller_beyond_the_waiting_cap_is_refused_at_once() -> None:
    # A caller waiting for a slot holds its thread as a call does: past `waiting` of them, none waits.
    tested = Guard("test", limit=lambda: 1, wait=lambda: 60.0, open_seconds=lambda: 1.0, waiting=lambda: 1)
    inside, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold, args=(tested, inside, release))
    holder.start()
    assert inside.wait(10)
    turns: list[str] = []

    def waiter() -> None:
        with tested.call():
            turns.append("waited")

    waiting = threading.Thread(target=waiter)
    waiting.start()
    assert until(lambda: tested.waiting == 1)
    with pytest.raises(Unavailable) as refused, tested.call():
        pass
    assert refused.value.busy
    assert tested.waiting == 1 and waiting.is_alive()  # the refused caller did not wait
    release.set()  # the call ahead ends: the waiting caller gets its turn
    holder.join(10)
    waiting.join(10)
    assert turns == ["waited"]
    with tested.call():  # nobody waits now: the next caller is let in
        assert tested.in_use == 1


def test_no_waiting_allowed_means_a_taken_slot_refuses_at_once() -> None:
    tested = Guard("test", limit=lambda: 1, wait=lambda: 60.0, open_seconds=lambda: 1.0, waiting=lambda: 0)
    with tested.call(), pytest.raises(Unavailable) as refused, tested.call():
        pass
    assert refused.value.busy and tested.waiting == 0
    with tested.call():
        assert tested.in_use == 1
