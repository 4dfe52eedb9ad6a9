"""Workers outlive a database outage: the task worker, the relay loop and the worker's sweeps wait with
backoff (1 s, doubling, at most 30 s), reconnect and go on. Errors are injected; waits are recorded, not
slept."""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest
from django.core.management import call_command
from django.db.utils import OperationalError

from api import outages, worker_sweeps
from api.outages import survive_database_outages


class Stop(Exception):
    """Ends a loop that would run forever."""


def down(times: int, then: Any = None) -> Any:
    """A function that raises a database error `times` times, then returns `then`; `calls` counts."""
    calls: list[int] = []

    def run() -> Any:
        calls.append(1)
        if len(calls) <= times:
            raise OperationalError("could not connect to server: Connection refused")
        return then

    run.calls = calls  # type: ignore[attr-defined]
    return run


def test_waits_grow_from_one_second_to_thirty_then_the_run_goes_on() -> None:
    waits: list[float] = []
    run = down(7, then="done")
    assert survive_database_outages(run, name="test", sleep=waits.append) == "done"
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_run_that_worked_for_a_while_starts_its_next_outage_from_one_second() -> None:
    waits: list[float] = []
    # (start, end) of each run: two quick failures, then a run that worked for a minute before failing.
    ticks = iter([0.0, 0.0, 1.0, 1.0, 3.0, 63.0, 64.0, 64.0])
    survive_database_outages(down(3, then="done"), name="test", sleep=waits.append, clock=lambda: next(ticks))
    assert waits == [1.0, 2.0, 1.0]


def test_other_errors_are_not_waited_out() -> None:
    def broken() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        survive_database_outages(broken, name="test", sleep=lambda s: None)


def test_the_relay_loop_outlives_a_database_outage(
    db: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from events.management.commands import deliver_webhooks

    relay = down(2, then=3)
    monkeypatch.setattr(deliver_webhooks, "relay", relay)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            raise Stop

    monkeypatch.setattr(deliver_webhooks.time, "sleep", sleep)
    out = io.StringIO()
    with pytest.raises(Stop):
        call_command("deliver_webhooks", "--every", "5", stdout=out)
    # Two failures (1 s, then 2 s), then a turn that enqueued and the usual wait.
    assert waits == [1.0, 2.0, 5.0]
    assert "3 overdue deliveries enqueued" in out.getvalue()
    assert "the database failed" in caplog.text


def test_the_relay_run_once_still_fails_loudly(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from events.management.commands import deliver_webhooks

    monkeypatch.setattr(deliver_webhooks, "relay", down(1))
    with pytest.raises(OperationalError):
        call_command("deliver_webhooks", stdout=io.StringIO())


def test_the_workers_sweeps_outlive_a_database_outage_and_a_failing_sweep(db: None) -> None:
    stop = threading.Event()
    done: list[str] = []
    relay = down(1)

    def counted_relay() -> None:
        relay()
        done.append("relay")
        if len(done) >= 4:
            stop.set()

    def buggy() -> None:
        raise ValueError("a bug in another sweep")

    waits: list[float] = []
    real_wait = stop.wait

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return real_wait(0)

    stop.wait = wait  # type: ignore[method-assign]
    worker_sweeps.run_sweeps({"relay": counted_relay, "buggy": buggy}, every=0.5, stop=stop)
    assert done == ["relay"] * 4
    assert len(relay.calls) == 5  # once down, then four turns
    assert waits[0] == 1.0  # the outage's wait, then the usual interval
    assert set(waits[1:]) == {0.5}


def test_the_task_worker_starts_the_relay_beside_the_tasks(
    db: None, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.management.commands import task_worker

    started: list[tuple[dict[str, str], float]] = []
    monkeypatch.setattr(task_worker, "start_sweeps", lambda paths, every: started.append((paths, every)))
    monkeypatch.setattr(task_worker, "call_command", lambda *args: None)
    settings.TASK_BACKEND = "database"
    settings.TASK_WORKER_SWEEP_SECONDS = 10
    call_command("task_worker", stdout=io.StringIO())
    assert started == [({"webhook relay": "events.deliveries.relay"}, 10)]
    # The paths name real functions.
    thread = worker_sweeps.start_sweeps({"noop": "django.db.close_old_connections"}, every=3600)
    assert thread is not None and thread.daemon and thread.is_alive()
    assert worker_sweeps.start_sweeps(settings.TASK_WORKER_SWEEPS, every=0) is None


@pytest.mark.django_db(transaction=True)
def test_after_close_connections_the_next_query_reconnects() -> None:
    from django.db import connection

    outages.close_connections()
    outages.close_connections()  # closing what is closed already is fine too
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
