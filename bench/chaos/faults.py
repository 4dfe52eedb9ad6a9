"""Faults on a timeline, and a health watcher that records what `/readyz` says meanwhile.

Each fault has a start (seconds into the load) and a duration; `Timeline.run` begins and ends them at those
times and records when each really began and ended (wall clock, the load's clock). The faults:

- `replica`: SIGKILL to one replica's whole process group (master and workers, as a container's kill), and
  the same replica started again 10 s later, on the same port, by the rig. Just before, a few large uploads
  are sent straight to that replica (`UploadsInFlight`), so that the kill cuts some off mid-way: their files
  may be stored without their rows, which is what the orphan check is about; and a resumable (tus) upload
  is under way to it (`resumable.ResumableInFlight`), which the kill cuts off and another replica finishes;
- `s3`: the S3 server stopped with SIGSTOP for 5 s (moto keeps its objects in memory, so it is paused, not
  ended: connections are accepted and nothing answers, as with a store that hangs), then SIGCONT;
- `postgres`: `pg_ctl stop -m fast` for 5 s, then `pg_ctl start`;
- `redis`: redis-server ended (SIGTERM) for 5 s, then started again on the same port (its counts are gone);
  meanwhile `during` runs the rate-limit probe that must go through;
- `redis-hang`: redis-server stopped with SIGSTOP for 5 s: it accepts connections and answers nothing, as
  a hung server or a network partition does. Not in the issue's list; it found that the cache had no
  timeouts (every request waited for Redis as long as it hung).

Two faults act on the webhooks' path, not on the HTTP service, so they run on a timeline of their own
beside the others (`plan_side`; the HTTP checks do not count them as faults):

- `receiver`: the rig's webhook receiver closed for 10 s (tries are refused, kept connections cut), then
  listening again on the same port; deliveries retry with backoff and must all arrive after it;
- `worker`: a task worker killed with SIGKILL while it is delivering a batch (the receiver answers slowly
  until then, and the kill waits until the queue shows a delivery task running and deliveries claimed:
  the one whose id the running task names is killed), started again 10 s later. Its claims lapse, then
  the relay enqueues them and another worker delivers them.
"""

from __future__ import annotations

import io
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.chaos.receiver import Receiver
from bench.chaos.resumable import ResumableInFlight
from bench.chaos.services import Stack, http_status


@dataclass
class Fault:
    name: str
    label: str
    start: float  # seconds after the load's start
    duration: float
    begin: Callable[[], None]
    end: Callable[[], None]
    during: Callable[[], None] | None = None
    began_at: float | None = None  # wall clock
    ended_at: float | None = None
    notes: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "label": self.label,
            "began_at": self.began_at,
            "ended_at": self.ended_at,
            "notes": self.notes,
        }


DURATIONS = {
    "replica": 10.0,
    "s3": 5.0,
    "postgres": 5.0,
    "redis": 5.0,
    "redis-hang": 5.0,
    "receiver": 10.0,
    "worker": 10.0,
}
# Faults of the webhooks' path, on their own timeline (`plan_side`).
SIDE_FAULTS = ("receiver", "worker")
KILLED_REPLICA = 1  # the second of three


class UploadsInFlight:
    """Large uploads sent straight to one replica, each in its own thread, their outcomes kept as records
    like the load's (status None: cut off, no answer)."""

    COUNT = 6

    def __init__(self, url: str, key: str) -> None:
        from PIL import Image, ImageDraw

        self.url = url
        self.key = key
        self.records: list[dict[str, object]] = []
        self.bodies = []
        for n in range(self.COUNT):
            picture = Image.linear_gradient("L").resize((2400, 1600)).convert("RGB")
            ImageDraw.Draw(picture).rectangle((n * 100, 100, n * 100 + 80, 180), fill=(n * 40, 200, 90))
            buffer = io.BytesIO()
            picture.save(buffer, "JPEG", quality=92)
            self.bodies.append(buffer.getvalue())
        self.threads: list[threading.Thread] = []

    def _one(self, n: int) -> None:
        from bench.chaos.load import post_upload

        title = f"in flight {n}"
        self.records.append(
            post_upload(self.url, self.key, "in-flight", title, "big.jpg", self.bodies[n], width="1600")
        )

    def send(self) -> None:
        """Start them all, and return while they are in flight (some decoding, some storing)."""
        self.threads = [threading.Thread(target=self._one, args=(n,), daemon=True) for n in range(self.COUNT)]
        for thread in self.threads:
            thread.start()
            time.sleep(random.uniform(0.02, 0.08))  # spread over the stages of an upload

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=60)


def plan(
    stack: Stack,
    names: list[str],
    *,
    seconds: float,
    during_redis: Callable[[], None],
    in_flight: UploadsInFlight | None = None,
    resumable: ResumableInFlight | None = None,
) -> list[Fault]:
    """The faults in order, spread over the load: 60 s with all five faults starts the first at 6 s and
    ends the last 6 s before the load ends; 20 s with two has 1 s before, 3 s between and 1 s after (so
    CI's short run stops S3 first: the replica's restart at the end is then watched without another fault
    in the way)."""
    replica = stack.replicas[KILLED_REPLICA]
    names = [name for name in names if name not in SIDE_FAULTS]

    def kill_replica() -> None:
        # The tus upload first: its first half is sent before start() returns (seconds), and the large
        # uploads after it, so that they are still under way when the kill comes.
        if resumable is not None:
            resumable.start()
        if in_flight is not None:
            in_flight.send()
        replica.kill()
        if resumable is not None:
            resumable.resume()

    def restart_replica() -> None:
        replica.start()

    s3 = stack.s3
    assert s3 is not None
    actions: dict[str, tuple[str, Callable[[], None], Callable[[], None]]] = {
        "replica": (f"kill -9 replica {replica.index}", kill_replica, restart_replica),
        "s3": ("S3 stopped", s3.pause, s3.resume),
        "postgres": ("PostgreSQL stopped", stack.postgres.stop, stack.postgres.resume),
        "redis": ("Redis stopped", stack.redis.stop, stack.redis.start),
        "redis-hang": ("Redis hung", stack.redis.pause, stack.redis.resume),
    }
    busy = sum(DURATIONS[name] for name in names)
    spare = seconds - busy
    # 6 s between faults, at least 3 (a restarted replica takes 1-2 s to answer), and as much before the
    # first (a baseline) as after the last (its healing, seen under load), 6 s each at most, 1 s at least.
    gap = 6.0 if len(names) < 2 else min(6.0, max(3.0, (spare - 12) / (len(names) - 1)))
    first = min(6.0, max(1.0, (spare - gap * (len(names) - 1)) / 2))
    faults, at = [], first
    for name in names:
        label, begin, end = actions[name]
        fault = Fault(name, label, at, DURATIONS[name], begin, end)
        if name == "redis":
            fault.during = during_redis
        faults.append(fault)
        at += DURATIONS[name] + gap
    return faults


# How long the worker fault waits for a delivery batch under way before it kills a worker anyway.
BATCH_WAIT_S = 10.0
# The receiver's answer is held this long until the kill, so that a batch of deliveries takes seconds.
SLOW_RECEIVER_S = 0.25


def running_delivery(stack: Stack) -> tuple[str | None, int]:
    """The worker id of a running delivery task (None: none runs) and how many deliveries are claimed."""
    import psycopg

    try:
        with psycopg.connect(
            stack.postgres.url.replace("postgres://", "postgresql://"), connect_timeout=2
        ) as conn:
            row = conn.execute(
                "SELECT worker_ids FROM django_tasks_database_dbtaskresult WHERE status = 'RUNNING'"
                " AND (task_path LIKE '%%drain_webhooks' OR task_path LIKE '%%deliver_webhooks')"
                " ORDER BY started_at DESC LIMIT 1"
            ).fetchone()
            (claimed,) = conn.execute(
                "SELECT count(*) FROM events_delivery WHERE status = 'pending' AND claimed_until > now()"
            ).fetchone()
    except psycopg.OperationalError:
        return None, 0  # PostgreSQL stopped by another fault: nothing is seen running
    worker = row[0][-1] if row and row[0] else None
    return worker, claimed


def plan_side(stack: Stack, receiver: Receiver, names: list[str], *, seconds: float) -> list[Fault]:
    """The webhooks' faults, one after the other from a tenth into the load (1 s between): in CI's 20 s,
    a worker is killed at 2 s (started again at 12 s) and the receiver is down from 13 s to 23 s."""
    # The worker first: its claims take a minute to lapse, which the rest of the run then covers.
    chosen = [name for name in ("worker", "receiver") if name in names]
    by_id = {worker.worker_id: worker for worker in stack.workers}

    def kill_worker(fault: Fault) -> None:
        receiver.delay = SLOW_RECEIVER_S
        deadline = time.monotonic() + BATCH_WAIT_S
        worker_id, claimed = None, 0
        while time.monotonic() < deadline:
            worker_id, claimed = running_delivery(stack)
            if worker_id in by_id and claimed:
                break
            time.sleep(0.05)
        victim = by_id.get(worker_id or "", stack.workers[0])
        victim.kill()
        receiver.delay = 0.0
        fault.notes.update(worker=victim.worker_id, claimed_at_kill=claimed, mid_batch=worker_id in by_id)
        fault.label = f"kill -9 {victim.worker_id}"

    def restart_worker(fault: Fault) -> None:
        by_id[str(fault.notes.get("worker", stack.workers[0].worker_id))].start()

    faults, at = [], max(1.0, seconds / 10)
    for name in chosen:
        if name == "receiver":
            fault = Fault(name, "receiver down", at, DURATIONS[name], receiver.stop, receiver.start)
        else:
            fault = Fault(name, "kill -9 a worker", at, DURATIONS[name], lambda: None, lambda: None)
            fault.begin = lambda fault=fault: kill_worker(fault)
            fault.end = lambda fault=fault: restart_worker(fault)
        faults.append(fault)
        at += DURATIONS[name] + 1
    return faults


class Timeline:
    def __init__(self, faults: list[Fault], start: float) -> None:
        self.faults = faults
        self.start = start
        self.thread = threading.Thread(target=self._run, name="faults", daemon=True)
        self.error: BaseException | None = None

    def _sleep_until(self, offset: float) -> None:
        delay = self.start + offset - time.time()
        if delay > 0:
            time.sleep(delay)

    def _run(self) -> None:
        try:
            for fault in self.faults:
                self._sleep_until(fault.start)
                fault.began_at = time.time()
                fault.begin()
                if fault.during is not None:
                    fault.during()
                self._sleep_until(fault.start + fault.duration)
                fault.ended_at = time.time()
                fault.end()
                fault.notes["end_took_s"] = round(time.time() - fault.ended_at, 2)
        except BaseException as error:
            self.error = error
            raise

    def begin(self) -> None:
        self.thread.start()

    def join(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise RuntimeError(f"the fault timeline failed: {self.error!r}") from self.error


class HealthWatch:
    """`/readyz` on each replica and `/healthz` through nginx (which answers `/readyz` with 404, as it must
    for the internet), four times a second, into a JSON-lines file."""

    def __init__(self, stack: Stack, out: Path) -> None:
        self.targets = {"nginx": f"{stack.nginx.url}/healthz"} | {
            f"replica-{r.index}": f"{r.url}/readyz" for r in stack.replicas
        }
        self.out = out
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._watch, args=(name, url), daemon=True)
            for name, url in self.targets.items()
        ]
        self.lock = threading.Lock()
        self.file = out.open("w")

    def _watch(self, name: str, url: str) -> None:
        while not self.stopping.is_set():
            started = time.time()
            status = http_status(url, timeout=2.5)
            with self.lock:
                record = {"t": started, "done": time.time(), "target": name, "status": status}
                self.file.write(json.dumps(record) + "\n")
            self.stopping.wait(max(0.0, 0.25 - (time.time() - started)))

    def begin(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            if thread.is_alive():
                thread.join()
        self.file.close()
