"""How the task queue is doing, for `/readyz` and `/metrics`: the tasks ready to run now (the depth), those
deferred to later (retries waiting out their backoff), and how long the oldest ready task has waited. And
`reclaim_tasks_of`: the tasks a killed database worker left claimed, made ready again when it restarts.

Read from the backend `TASKS["default"]` names: the database backend's table (django-tasks-db; two indexed
queries), or for RQ the Redis lists of its queues and their scheduled-job registries. The immediate backend
has no queue (zeros). A queue that cannot be read is reported as such (`readable: false`), never raised.
Knows no domain: any app's tasks count.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueStats:
    readable: bool
    depth: int = 0  # ready to run now
    deferred: int = 0  # waiting for their time (run_after): retries backing off
    oldest_age_seconds: float = 0.0  # how long the oldest ready task has been ready (0: none)

    def as_json(self) -> dict[str, object]:
        if not self.readable:
            return {"status": "unavailable"}
        return {"status": "ok", **{k: v for k, v in asdict(self).items() if k != "readable"}}


def queue_report() -> dict[str, object]:
    """What /readyz says of the queue (READINESS_REPORTS): its depth, deferred tasks and oldest age."""
    return queue_stats().as_json()


def queue_stats() -> QueueStats:
    backend = settings.TASKS["default"]["BACKEND"]
    try:
        if backend.startswith("django_tasks_db."):
            return _database_stats()
        if backend.startswith("django_tasks_rq."):
            return _rq_stats()
    except Exception:
        logger.exception("the task queue cannot be read")
        return QueueStats(readable=False)
    return QueueStats(readable=True)


def _database_stats() -> QueueStats:
    from django.db.models import Count, Min, Q
    from django_tasks_db.models import DBTaskResult, get_date_max

    now = timezone.now()
    never = get_date_max()  # what the backend stores for "no run_after"
    ready = Q(status="READY")
    rows = DBTaskResult.objects.filter(ready, backend_name="default").aggregate(
        undeferred=Count("id", filter=Q(run_after=never)),
        due=Count("id", filter=Q(run_after__lte=now)),
        deferred=Count("id", filter=Q(run_after__gt=now) & ~Q(run_after=never)),
        oldest_enqueued=Min("enqueued_at", filter=Q(run_after=never)),
        oldest_due=Min("run_after", filter=Q(run_after__lte=now)),
    )
    # A deferred task has been waiting since its time came, not since it was enqueued.
    since = [t for t in (rows["oldest_enqueued"], rows["oldest_due"]) if t is not None]
    return QueueStats(
        readable=True,
        depth=rows["undeferred"] + rows["due"],
        deferred=rows["deferred"],
        oldest_age_seconds=_age(min(since), now) if since else 0.0,
    )


def _rq_stats() -> QueueStats:
    import django_rq
    from rq.registry import ScheduledJobRegistry

    now = timezone.now()
    depth = deferred = 0
    oldest: datetime | None = None
    for name in settings.RQ_QUEUES:
        queue = django_rq.get_queue(name)
        depth += queue.count
        deferred += ScheduledJobRegistry(queue=queue).count
        first = queue.get_job_ids(0, 1)
        job = queue.fetch_job(first[0]) if first else None
        if job is not None and job.enqueued_at is not None:
            enqueued = job.enqueued_at
            if timezone.is_naive(enqueued):  # RQ keeps UTC without a zone
                enqueued = enqueued.replace(tzinfo=UTC)
            oldest = enqueued if oldest is None else min(oldest, enqueued)
    return QueueStats(
        readable=True,
        depth=depth,
        deferred=deferred,
        oldest_age_seconds=_age(oldest, now) if oldest else 0.0,
    )


def _age(since: datetime, now: datetime) -> float:
    return round(max(0.0, (now - since).total_seconds()), 3)


class QueueCollector:
    """The queue's numbers as Prometheus gauges, read when /metrics is scraped (api/health.py)."""

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        stats = queue_stats()
        yield GaugeMetricFamily(
            "imagery_queue_readable",
            "1 when the task queue could be read, 0 when not",
            value=int(stats.readable),
        )
        if not stats.readable:
            return
        yield GaugeMetricFamily("imagery_queue_depth", "tasks ready to run now", value=stats.depth)
        yield GaugeMetricFamily(
            "imagery_queue_deferred",
            "tasks waiting for a later time (retries backing off)",
            value=stats.deferred,
        )
        yield GaugeMetricFamily(
            "imagery_queue_oldest_age_seconds",
            "seconds the oldest ready task has waited (0: none waits)",
            value=stats.oldest_age_seconds,
        )


def reclaim_tasks_of(worker_id: str) -> int:
    """Make ready again the database queue's tasks left RUNNING by a worker of this id (one that was killed
    mid-task: django-tasks-db has no lease that would free them); the number reclaimed. Called by a worker
    as it starts, before it claims anything, so no task of that id can really be running. The tasks are
    idempotent: running one again from the start is safe."""
    from django_tasks_db.models import DBTaskResult

    reclaimed = 0
    for row in DBTaskResult.objects.filter(status="RUNNING", backend_name="default"):
        if row.worker_ids and row.worker_ids[-1] == worker_id:
            # Only if still RUNNING (another process may have finished or reclaimed it meanwhile).
            reclaimed += DBTaskResult.objects.filter(pk=row.pk, status="RUNNING").update(
                status="READY", started_at=None
            )
    if reclaimed:
        logger.warning("worker %s restarted: %s task(s) it had claimed are ready again", worker_id, reclaimed)
    return reclaimed
