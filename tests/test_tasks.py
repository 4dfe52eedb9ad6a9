"""The task queue: a delete's renditions removed by the worker, retries with backoff, backfill --queue, and
the queue's depth and age in /readyz and /metrics. Eager presets: tests/test_eager_presets.py; RQ:
tests/test_tasks_rq.py; several workers on PostgreSQL: tests/test_tasks_postgres.py."""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from api import task_retry
from api.task_retry import RetryPolicy
from images import renditions, tasks
from images.exceptions import RenditionTooLarge
from images.models import Image
from tests.conftest import ORPHAN, name_of, stored_names
from tests.images import quadrants
from tests.queue import results, run_worker, waiting

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("database_queue")]


def renditions_of(body: dict[str, Any]) -> list[str]:
    digest = name_of(body).rsplit("/", 1)[-1].split(".")[0]
    return [name for name in stored_names() if f"renditions/{digest}/" in name]


@pytest.fixture
def with_renditions(api: Client, posted: Callable[..., Any]) -> dict[str, Any]:
    """An image with two renditions stored (first views)."""
    body = posted(quadrants((400, 200)))
    for query in ("width=100", "preset=thumb"):
        assert api.get(f"/images/{body['id']}/file?{query}").status_code == 200
    assert len(renditions_of(body)) == 2
    return body


@pytest.fixture
def clock() -> Iterator[datetime]:
    """The retries' clock, stopped at the test's start."""
    now = timezone.now()
    with mock.patch.object(task_retry, "clock", lambda: now):
        yield now


@contextmanager
def time_is(moment: datetime) -> Iterator[None]:
    """What asks django.utils.timezone (the worker's "ready now", the queue's ages) sees `moment`."""
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield


# --- A delete's renditions ------------------------------------------------------------------------


def test_a_delete_answers_before_its_renditions_go_and_the_worker_removes_them(
    api: Client, with_renditions: dict[str, Any]
) -> None:
    body = with_renditions
    assert api.delete(f"/images/{body['id']}").status_code == 204
    # The row and the file are gone at once; the renditions wait for the worker.
    assert api.get(f"/images/{body['id']}").status_code == 404
    assert len(renditions_of(body)) == 2
    assert [r.args_kwargs["kwargs"] for r in waiting()] == [{"name": name_of(body)}]
    run_worker()
    assert renditions_of(body) == []
    assert stored_names() == []
    assert [r.return_value for r in results("delete_renditions_of")] == [True]


def test_a_removal_run_twice_changes_nothing(api: Client, with_renditions: dict[str, Any]) -> None:
    assert api.delete(f"/images/{with_renditions['id']}").status_code == 204
    run_worker()
    assert tasks.delete_renditions_of.call(name=name_of(with_renditions)) is True
    assert stored_names() == []


def test_renditions_stay_when_the_same_bytes_are_uploaded_again_before_the_worker_runs(
    api: Client, posted: Callable[..., Any], with_renditions: dict[str, Any]
) -> None:
    assert api.delete(f"/images/{with_renditions['id']}").status_code == 204
    again = posted(quadrants((400, 200)))
    assert name_of(again) == name_of(with_renditions)
    run_worker()
    assert [r.return_value for r in results("delete_renditions_of")] == [False]
    assert len(renditions_of(again)) == 2


# --- Retries ----------------------------------------------------------------------------------------


def test_a_failed_removal_is_retried_after_its_backoff(
    api: Client, with_renditions: dict[str, Any], clock: datetime
) -> None:
    body = with_renditions
    assert api.delete(f"/images/{body['id']}").status_code == 204
    with mock.patch.object(renditions, "delete_renditions", return_value=False):  # the store fails
        run_worker()
    first, second = results("delete_renditions_of")
    assert first.status == "FAILED" and "StorageUnavailable" in first.exception_class_path
    assert second.status == "READY"
    assert second.args_kwargs["kwargs"] == {"name": name_of(body), "attempt": 2}
    # 10 s after the first attempt, halved at most by the jitter.
    assert clock + timedelta(seconds=5) <= second.run_after <= clock + timedelta(seconds=10)
    # Not before its time: the worker finds nothing ready.
    with time_is(clock + timedelta(seconds=4)):
        run_worker()
    assert len(renditions_of(body)) == 2
    with time_is(clock + timedelta(seconds=11)):
        run_worker()
    assert [r.status for r in results("delete_renditions_of")] == ["FAILED", "SUCCESSFUL"]
    assert renditions_of(body) == []


def test_retries_stop_after_the_last_attempt(
    api: Client, with_renditions: dict[str, Any], clock: datetime
) -> None:
    assert api.delete(f"/images/{with_renditions['id']}").status_code == 204
    later = clock
    with mock.patch.object(renditions, "delete_renditions", return_value=False):
        for _ in range(tasks.RETRY.max_attempts):
            with time_is(later):
                run_worker()
            later += timedelta(seconds=tasks.RETRY.max_delay)
    attempts = results("delete_renditions_of")
    assert sorted(r.args_kwargs["kwargs"].get("attempt", 1) for r in attempts) == [1, 2, 3, 4, 5]
    assert {r.status for r in attempts} == {"FAILED"}
    assert waiting() == []
    # Left for reconcile_storage --fix (the `api` fixture's check allows no orphan): remove them here.
    assert tasks.delete_renditions_of.call(name=name_of(with_renditions)) is True


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(first_delay=10, max_delay=60)
    rng = random.Random(7)
    for attempt, base in [(1, 10), (2, 20), (3, 40), (4, 60), (9, 60)]:
        delays = [policy.delay(attempt, rng=rng) for _ in range(200)]
        assert all(base / 2 <= d <= base for d in delays)
        assert max(delays) - min(delays) > base / 4  # spread, so tasks failed together retry apart


def test_a_permanent_failure_is_not_retried(clock: datetime) -> None:
    with (
        pytest.raises(RenditionTooLarge),
        task_retry.retrying(tasks.delete_renditions_of, attempt=1, kwargs={"name": "x"}, policy=tasks.RETRY),
    ):
        raise RenditionTooLarge("over a limit")
    assert waiting() == []


# --- backfill_placeholders --queue ----------------------------------------------------------------


def test_backfill_queue_enqueues_batches_that_the_worker_fills(posted: Callable[..., Any]) -> None:
    bodies = [posted(quadrants((40 + i, 20))) for i in range(5)]
    Image.objects.update(placeholder=None, color=None)
    out = io.StringIO()
    call_command("backfill_placeholders", "--queue", "--batch", "2", stdout=out)
    assert out.getvalue().strip() == "3 batches enqueued (5 rows) for the task workers."
    assert Image.objects.filter(placeholder=None).count() == 5  # nothing done by the command
    run_worker()
    assert [r.return_value for r in results("backfill_placeholders_batch")] == [2, 2, 1]
    rows = Image.objects.in_bulk([b["id"] for b in bodies])
    assert all(row.placeholder and row.color for row in rows.values())
    # Idempotent: the first batch again fills nothing.
    first = results("backfill_placeholders_batch")[0].args_kwargs["kwargs"]["files"]
    assert tasks.backfill_placeholders_batch.call(files=first) == 0


# --- Depth and age in /readyz and /metrics ---------------------------------------------------------


def test_readyz_and_metrics_report_the_queue_depth_and_oldest_age(
    api: Client, with_renditions: dict[str, Any], clock: datetime
) -> None:
    assert api.delete(f"/images/{with_renditions['id']}").status_code == 204
    enqueued = waiting()[0].enqueued_at
    with time_is(enqueued + timedelta(seconds=30)):
        ready = api.get("/readyz")
        metrics = api.get("/metrics").content.decode()
    assert ready.status_code == 200
    assert ready.json()["reports"]["queue"] == {
        "status": "ok",
        "depth": 1,
        "deferred": 0,
        "oldest_age_seconds": 30.0,
    }
    assert "imagery_queue_depth 1.0" in metrics
    assert "imagery_queue_oldest_age_seconds 30.0" in metrics
    assert "imagery_queue_readable 1.0" in metrics
    run_worker()
    assert api.get("/readyz").json()["reports"]["queue"]["depth"] == 0


def test_a_retry_waiting_for_its_time_counts_as_deferred_then_ages_from_its_time(
    api: Client, with_renditions: dict[str, Any], clock: datetime
) -> None:
    assert api.delete(f"/images/{with_renditions['id']}").status_code == 204
    with mock.patch.object(renditions, "delete_renditions", return_value=False):
        run_worker()
    retry = waiting()[0]
    queue = api.get("/readyz").json()["reports"]["queue"]
    assert (queue["depth"], queue["deferred"], queue["oldest_age_seconds"]) == (0, 1, 0.0)
    with time_is(retry.run_after + timedelta(seconds=3)):
        queue = api.get("/readyz").json()["reports"]["queue"]
    assert (queue["depth"], queue["deferred"], queue["oldest_age_seconds"]) == (1, 0, 3.0)
    with time_is(retry.run_after + timedelta(seconds=3)):
        run_worker()


def test_a_queue_that_cannot_be_read_is_reported_without_a_500(api: Client, settings: Any) -> None:
    with mock.patch("django_tasks_db.models.DBTaskResult.objects.filter", side_effect=RuntimeError("gone")):
        ready = api.get("/readyz")
        metrics = api.get("/metrics")
    assert ready.status_code == 200
    assert ready.json()["reports"] == {"queue": {"status": "unavailable"}}
    assert metrics.status_code == 200
    assert "imagery_queue_readable 0.0" in metrics.content.decode()
    assert "imagery_queue_depth" not in metrics.content.decode()


# --- The worker command -----------------------------------------------------------------------------


def test_task_worker_runs_the_database_queue(api: Client, with_renditions: dict[str, Any]) -> None:
    assert api.delete(f"/images/{with_renditions['id']}").status_code == 204
    run_worker("task_worker", "--batch")
    assert renditions_of(with_renditions) == []
    assert waiting() == []


def test_task_worker_has_nothing_to_run_with_the_immediate_backend(settings: Any) -> None:
    settings.TASK_BACKEND = "immediate"
    out = io.StringIO()
    call_command("task_worker", stdout=out)
    assert "no worker to run" in out.getvalue()


def test_a_restarted_worker_runs_again_what_it_was_running_when_killed(settings: Any) -> None:
    from django_tasks_db.models import DBTaskResult

    # Two tasks claimed by workers that were killed mid-task: one by this host's worker id, one by another's.
    for claimed_by in ("worker-a", "worker-b"):
        result = tasks.delete_renditions_of.enqueue(name=ORPHAN)
        DBTaskResult.objects.filter(pk=result.id).update(
            status="RUNNING", started_at=timezone.now(), worker_ids=[claimed_by]
        )
    settings.TASK_WORKER_ID = "worker-a"
    run_worker("task_worker", "--batch")
    statuses = {r.worker_ids[0]: r.status for r in results("delete_renditions_of")}
    assert statuses == {"worker-a": "SUCCESSFUL", "worker-b": "RUNNING"}
    # It was run by worker-a again, from the start.
    assert [r.worker_ids for r in results("delete_renditions_of") if r.status == "SUCCESSFUL"] == [
        ["worker-a", "worker-a"]
    ]


def test_the_worker_outlives_a_database_outage(
    api: Client, with_renditions: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from django.db.utils import OperationalError
    from django_tasks_db.models import DBTaskResult

    assert api.delete(f"/images/{with_renditions['id']}").status_code == 204
    manager = type(DBTaskResult.objects)
    real_ready = manager.ready
    outage = [OperationalError("server closed the connection unexpectedly")]

    def ready_unless_down(self: Any) -> Any:
        if outage:
            raise outage.pop()
        return real_ready(self)

    waits: list[float] = []
    monkeypatch.setattr(manager, "ready", ready_unless_down)
    monkeypatch.setattr(time, "sleep", waits.append)
    run_worker("task_worker", "--batch")
    # It waited (1 s: the first of the backoff), started again, and ran the task the delete left.
    assert 1.0 in waits
    assert renditions_of(with_renditions) == []
    assert waiting() == []
