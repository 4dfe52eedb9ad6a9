"""What must hold of the webhooks and the resumable upload after the run (issues #24 and #25).

The inputs are what the API answered (the load's log, the rig's probes, the in-flight and resumable
uploads), what the receiver got, the queue (`/readyz`'s report) and the deliveries' table.

- Every committed change has exactly one event id, delivered at least once: an upload answered 201 one
  `image.created` for its id; a PATCH answered 200 one `image.updated` carrying its id and the title it
  set; a DELETE answered 204 one `image.deleted` for its id. A change sent without an answer (cut off) may
  have been committed or not: at most one event.
- No event for a change that failed: an upload answered 4xx/5xx has no `image.created` with its title (every
  upload's title is its own); every event received is one of the changes above.
- Every delivery's signature verified (`standardwebhooks`), none refused.
- The queue's depth (ready and deferred tasks) and the pending deliveries back to zero within
  DRAINED_WITHIN_S of the last fault's end.
- (The resumable upload the replica kill cuts off is checked by `checks.resumable_completed_once`; here its
  image is one more upload that must have exactly one `image.created`.)
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from typing import Any

from bench.chaos.checks import Check, _get
from bench.chaos.faults import Fault
from bench.chaos.receiver import Received, Receiver
from bench.chaos.services import Stack

# After the last fault ends (any: the HTTP ones and the webhooks' own), the queue is empty and every
# delivery delivered within this long. A killed worker's claims hold for their lease
# (WEBHOOK_CLAIM_LEASE_SECONDS, 15 s in the rig: services.py) plus one try's timeouts (3 s here), before the
# relay (every 1 s, for deliveries overdue by 2 s) hands them on; the rest is room for a busy machine.
DRAINED_WITHIN_S = 45.0


def queue_figures(stack: Stack) -> dict[str, Any]:
    """The queue's depth and deferred tasks as `/readyz` reports them (a replica that answers), and the
    pending deliveries in the database."""
    import psycopg

    figures: dict[str, Any] = {"depth": None, "deferred": None}
    for replica in stack.replicas:
        status, body = _get(f"{replica.url}/readyz", timeout=5)
        if status is not None and body:
            queue = json.loads(body).get("reports", {}).get("queue", {})
            if queue.get("status") == "ok":
                figures.update(depth=queue["depth"], deferred=queue["deferred"])
                break
    with psycopg.connect(stack.postgres.url.replace("postgres://", "postgresql://")) as conn:
        (figures["pending"],) = conn.execute(
            "SELECT count(*) FROM events_delivery WHERE status = 'pending'"
        ).fetchone()
        (figures["failed"],) = conn.execute(
            "SELECT count(*) FROM events_delivery WHERE status = 'failed'"
        ).fetchone()
    return figures


def drained(figures: dict[str, Any]) -> bool:
    return (
        "error" not in figures
        and figures["depth"] == 0
        and figures["deferred"] == 0
        and figures["pending"] == 0
    )


class DrainWatch:
    """Polls the queue from the end of the faults while the other checks run (a killed worker's claims
    take a minute to lapse): `result()` is the seconds after the last fault's end when the queue and the
    deliveries were first empty (None: not within DRAINED_WITHIN_S), and the last figures."""

    def __init__(self, stack: Stack, *, last_fault_end: float) -> None:
        self.stack = stack
        self.last_fault_end = last_fault_end
        self.after_s: float | None = None
        self.figures: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, name="drain-watch", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import psycopg

        while True:
            try:
                self.figures = queue_figures(self.stack)
            except psycopg.OperationalError as error:
                self.figures = {"error": str(error)}
            now = time.time()
            if drained(self.figures):
                self.after_s = round(max(0.0, now - self.last_fault_end), 1)
                return
            if now > self.last_fault_end + DRAINED_WITHIN_S:
                return
            time.sleep(0.5)

    def result(self) -> tuple[float | None, dict[str, Any]]:
        self.thread.join()
        return self.after_s, self.figures


def queue_drained(after_s: float | None, figures: dict[str, Any]) -> Check:
    ok = after_s is not None and not figures.get("failed")
    detail = (
        f"queue depth 0, deferred 0, pending deliveries 0 at {after_s:.1f} s after the last fault ended"
        if after_s is not None
        else f"not drained {DRAINED_WITHIN_S:g} s after the last fault: {figures}"
    )
    if figures.get("failed"):
        detail += f"; {figures['failed']} deliveries failed"
    return Check(f"the queue back to zero within {DRAINED_WITHIN_S:g} s of the last fault", ok, detail)


def _distinct(received: list[Received]) -> dict[str, Received]:
    """One record per event id (receivers deduplicate by `webhook-id`)."""
    return {r.webhook_id: r for r in received}


def events_match_changes(
    received: list[Received],
    *,
    uploads: list[dict[str, Any]],
    patches: list[dict[str, Any]],
    deletes: list[dict[str, Any]],
) -> list[Check]:
    """The two event checks: exactly one event id per committed change; none for a failed one."""
    events = _distinct(received)
    by_kind: dict[str, list[Received]] = defaultdict(list)
    for event in events.values():
        by_kind[event.type].append(event)
    created_by_id: dict[Any, list[str]] = defaultdict(list)
    created_by_title: dict[Any, list[str]] = defaultdict(list)
    for event in by_kind["image.created"]:
        created_by_id[event.object_id].append(event.webhook_id)
        created_by_title[event.title].append(event.webhook_id)
    updated: dict[tuple[Any, Any], list[str]] = defaultdict(list)
    for event in by_kind["image.updated"]:
        updated[(event.object_id, event.title)].append(event.webhook_id)
    deleted: dict[Any, list[str]] = defaultdict(list)
    for event in by_kind["image.deleted"]:
        deleted[event.object_id].append(event.webhook_id)

    wrong: list[str] = []  # committed changes without exactly one event
    stray: list[str] = []  # events of failed changes
    explained: set[str] = set()
    counts = defaultdict(int)
    for record in uploads:
        status = record.get("status")
        if status == 201:
            counts["uploads committed"] += 1
            ids = created_by_id.get(record["id"], [])
            if len(ids) != 1:
                wrong.append(f"upload {record['id']} ({record['title']!r}): {len(ids)} image.created")
            explained.update(ids)
        elif status is None:
            counts["uploads cut off"] += 1
            ids = created_by_title.get(record["title"], [])
            if len(ids) > 1:
                wrong.append(f"upload cut off ({record['title']!r}): {len(ids)} image.created")
            explained.update(ids)
        else:
            counts["uploads failed"] += 1
            stray.extend(
                f"image.created {i} for an upload answered {status} ({record['title']!r})"
                for i in created_by_title.get(record["title"], [])
            )
    for record in patches:
        status, ids = record.get("status"), updated.get((record["id"], record["title"]), [])
        if status == 200:
            counts["edits committed"] += 1
            if len(ids) != 1:
                wrong.append(f"PATCH {record['id']} -> {record['title']!r}: {len(ids)} image.updated")
            explained.update(ids)
        elif status is None:
            counts["edits cut off"] += 1
            if len(ids) > 1:
                wrong.append(f"PATCH cut off {record['id']}: {len(ids)} image.updated")
            explained.update(ids)
        else:
            stray.extend(f"image.updated {i} for a PATCH answered {status}" for i in ids)
    # A delete's event may come from one DELETE only: an id deleted twice (a retry) has one event at most.
    committed_deletes = {r["id"] for r in deletes if r.get("status") == 204}
    cut_deletes = {r["id"] for r in deletes if r.get("status") is None} - committed_deletes
    for image_id in committed_deletes:
        counts["deletes committed"] += 1
        ids = deleted.get(image_id, [])
        if len(ids) != 1:
            wrong.append(f"DELETE {image_id}: {len(ids)} image.deleted")
        explained.update(ids)
    for image_id in cut_deletes:
        counts["deletes cut off"] += 1
        ids = deleted.get(image_id, [])
        if len(ids) > 1:
            wrong.append(f"DELETE cut off {image_id}: {len(ids)} image.deleted")
        explained.update(ids)
    unexplained = [
        f"{e.type} {e.webhook_id} (object {e.object_id}, {e.title!r})"
        for e in events.values()
        if e.type.startswith("image.") and e.webhook_id not in explained
    ]
    tries = len(received)
    summary = ", ".join(f"{k}: {v}" for k, v in counts.items())
    one = Check(
        "every committed upload, edit and delete: exactly one event id, delivered at least once",
        not wrong,
        (
            f"{summary}; {len(events)} event ids received ({tries} deliveries, "
            f"{tries - len(events)} of them repeats)"
        )
        if not wrong
        else f"{len(wrong)} wrong, e.g. " + " | ".join(wrong[:5]),
    )
    none = Check(
        "no event for a failed change, none that no change explains",
        not stray and not unexplained,
        f"{counts['uploads failed']} uploads answered 4xx/5xx: no event for them; every event is a change's"
        if not stray and not unexplained
        else " | ".join((stray + unexplained)[:5]),
    )
    return [one, none]


def signatures_verified(receiver: Receiver) -> Check:
    received = receiver.snapshot()
    ok = receiver.bad_signatures == 0 and receiver.other_requests == 0 and bool(received)
    return Check(
        "every delivery's signature verified (standardwebhooks)",
        ok,
        f"{len(received)} deliveries verified, {receiver.bad_signatures} refused "
        f"{receiver.refusals[:3]}, {receiver.other_requests} to another path, {receiver.cut_bodies} cut "
        "off under their body by the receiver's own fault",
    )


def receiver_fault_retried(faults: list[Fault], receiver: Receiver) -> Check | None:
    """Events made while the receiver was down arrived after it came back (by their retries)."""
    fault = next((f for f in faults if f.name == "receiver"), None)
    if fault is None or fault.began_at is None or fault.ended_at is None:
        return None
    after = [r for r in receiver.snapshot() if r.at >= fault.ended_at]
    inside = [r for r in receiver.snapshot() if fault.began_at + 0.5 < r.at < fault.ended_at]
    ok = bool(after) and not inside
    return Check(
        "with the receiver down for 10 s, its deliveries come after it is back",
        ok,
        f"{len(inside)} received while down, {len(after)} after; the first "
        + (f"{min(r.at for r in after) - fault.ended_at:.1f} s after it came back" if after else "never"),
    )


def worker_killed_mid_batch(faults: list[Fault]) -> Check | None:
    fault = next((f for f in faults if f.name == "worker"), None)
    if fault is None:
        return None
    notes = fault.notes
    return Check(
        "a worker killed with SIGKILL while delivering a batch",
        bool(notes.get("mid_batch")) and bool(notes.get("claimed_at_kill")),
        f"{notes.get('worker')} killed with {notes.get('claimed_at_kill')} deliveries claimed "
        f"(a delivery task running on it: {bool(notes.get('mid_batch'))}); started again 10 s later",
    )
