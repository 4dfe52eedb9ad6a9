"""What must hold after the run; each check returns a `Check` that the rig prints and reports.

The inputs are the load's log (every request and its outcome), the rig's own probes, the faults as they
really happened, the health watcher's log, and the stack itself, still running, for the listing, the files,
the bucket and `reconcile_storage`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from bench.chaos.faults import Fault
from bench.chaos.services import BUCKET, ROOT, Stack

# After a fault ends, the service is healthy again within this many seconds.
HEAL_SECONDS = 5.0
# The rate the replicas are given (services.replica_environment) and the rig's probes send past it.
UPLOAD_LIMIT = 20
PROBE_UPLOADS = UPLOAD_LIMIT + 5
# While Redis (the rate limiter's store) is down or hangs, answers are not slower than this at p99: the
# limiter gives up on it within REDIS_TIMEOUT per call.
LIMITER_FAULT_P99_MS = 1000
# While one dependency stalls, requests that do not need it keep this share of 2xx answers and this p99
# (issue #20, item 7); requests that need it answer within ANSWER_WITHIN_MS, a 503 with Retry-After at worst.
# On a machine so busy that the same requests take longer than that with no fault at all, the bounds are
# taken from the run itself: BUSY_MACHINE_FACTOR x their p99 outside faults, ANSWER_WITHIN_MS more than it.
UNAFFECTED_OK_SHARE = 0.95
UNAFFECTED_P99_MS = 300
ANSWER_WITHIN_MS = 5000
BUSY_MACHINE_FACTOR = 1.5


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def failed(record: dict[str, Any]) -> bool:
    """A request that did not get what it asked for (429 is the limiter doing its job)."""
    status = record["status"]
    return status is None or (status >= 400 and status != 429)


def fault_at(faults: list[Fault], t: float, *, slack: float = 0.0) -> Fault | None:
    """The fault in force at wall-clock time `t` (its end stretched by `slack` seconds)."""
    for fault in faults:
        if fault.began_at is not None and fault.began_at <= t <= (fault.ended_at or t) + slack:
            return fault
    return None


def _get(url: str, timeout: float = 10, headers: dict[str, str] | None = None) -> tuple[int | None, bytes]:
    try:
        request = urllib.request.Request(url, headers=headers or {})  # noqa: S310  # loopback only
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  # loopback only
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return None, b""


def listed_images(base: str) -> dict[int, dict[str, Any]]:
    """Every image, through the API's keyset pages."""
    images: dict[int, dict[str, Any]] = {}
    url = f"{base}/images?cursor=&page_size=100"
    while url:
        status, body = _get(url)
        if status != 200:
            raise RuntimeError(f"GET {url}: {status}")
        page = json.loads(body)
        images.update({item["id"]: item for item in page["results"]})
        url = page.get("next")
    return images


def uploads_listed(
    stack: Stack, created: list[dict[str, Any]], retitled: dict[int, set[str]] | None = None
) -> Check:
    """Each 201 is listed, with its title or one a PATCH of the load may have given it (`retitled`)."""
    listed = listed_images(stack.nginx.url)
    retitled = retitled or {}
    missing = [r["id"] for r in created if r["id"] not in listed]
    wrong = [
        r["id"]
        for r in created
        if r["id"] in listed and listed[r["id"]]["title"] not in {r["title"], *retitled.get(r["id"], ())}
    ]
    ok = not missing and not wrong
    detail = f"{len(created)} uploads answered 201; all in the list with their titles ({len(listed)} listed)"
    if not ok:
        detail = f"missing from the list: {missing[:10]}; wrong title: {wrong[:10]}"
    return Check("every 201 upload is listed", ok, detail)


def files_serve(created: list[dict[str, Any]]) -> Check:
    """Each 201's url serves its bytes."""
    bad = []
    for record in created:
        status, body = _get(record["url"])
        if status != 200 or len(body) != record["size"]:
            bad.append((record["id"], status, len(body)))
    detail = f"{len(created)} files serve with their size"
    if bad:
        detail = f"{len(bad)} files do not serve: {bad[:10]}"
    return Check("every 201 upload's file serves", not bad, detail)


# The render budgets stay on (THROTTLE_RENDER_*_PER_ADDRESS, at their defaults), and the load meets them
# from the rig's one address. The rendition check gets its own allowance: it asks the replicas directly,
# as clients of their own (a forwarded address per this many renders; NUM_PROXIES=1 believes it).
RENDERS_PER_CHECK_ADDRESS = 100


def renditions_serve(stack: Stack, created: list[dict[str, Any]]) -> Check:
    """Each 201's rendition (`GET /images/{id}/file?width=64`, rendered on this request) serves."""
    bad = []
    for n, record in enumerate(created):
        group = n // RENDERS_PER_CHECK_ADDRESS
        client = {"X-Forwarded-For": f"10.20.{group // 250}.{group % 250 + 1}"}
        replica = stack.replicas[n % len(stack.replicas)]
        path = f"/images/{record['id']}/file?width=64"
        status, body = _get(f"{replica.url}{path}", headers=client)
        if status == 200 and not body:
            # Stored already (by the load): the replica answers X-Accel-Redirect for nginx to send the
            # bytes (FILE_ACCEL_REDIRECT), so they are asked of nginx, a read now, not a render.
            status, body = _get(f"{stack.nginx.url}{path}")
        if status != 200 or not body:
            bad.append((record["id"], status))
    detail = f"{len(created)} renditions serve"
    if bad:
        detail = f"{len(bad)} renditions do not serve: {bad[:10]}"
    return Check("every 201 upload's rendition serves", not bad, detail)


def _rows_and_objects(stack: Stack) -> tuple[set[str], dict[str, float]]:
    import psycopg

    with psycopg.connect(stack.postgres.url.replace("postgres://", "postgresql://")) as conn:
        rows = {name for (name,) in conn.execute("SELECT file FROM images_image")}
    assert stack.s3 is not None
    objects: dict[str, float] = {}
    for page in stack.s3.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for entry in page.get("Contents", ()):
            objects[entry["Key"]] = entry["LastModified"].timestamp()
    return rows, objects


def _in_use(name: str, rows: set[str]) -> bool:
    """Whether a row uses this stored object: its own file, or a rendition of a file a row uses
    (`renditions/<sha256 of the file>/<key>.<recipe>.<ext>`)."""
    if name.startswith("renditions/"):
        return name.split("/")[1] in {row.rsplit("/", 1)[-1].split(".")[0] for row in rows}
    return name in rows


def reconcile(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "reconcile_storage", *args],
        cwd=ROOT,
        env=stack.environment,
        capture_output=True,
        text=True,
        check=False,
    )


def rows_have_files(stack: Stack) -> Check:
    rows, objects = _rows_and_objects(stack)
    lost = sorted(rows - set(objects))
    done = reconcile(stack)
    ok = not lost and done.returncode == 0
    detail = f"{len(rows)} distinct files named by rows, all in the bucket; reconcile_storage exit "
    detail += str(done.returncode)
    if not ok:
        detail = f"rows without their file: {lost[:5]}; reconcile_storage exit {done.returncode}: "
        detail += done.stdout[-500:]
    return Check("no row without its file", ok, detail)


def _digest(name: str) -> str:
    """The content hash an object belongs to: its own (`images/…/<sha256>.<ext>`), or its source's
    (`renditions/<sha256>/…`)."""
    if name.startswith("renditions/"):
        return name.split("/")[1]
    return name.rsplit("/", 1)[-1].split(".")[0]


def orphans_explained(stack: Stack, faults: list[Fault], records: list[dict[str, Any]]) -> Check:
    """Files no row uses come only from uploads a fault cut off, or from images deleted while the store
    failed (the row goes, the file stays for reconcile_storage); `reconcile_storage --fix` removes them."""
    rows, objects = _rows_and_objects(stack)
    orphans = {name: modified for name, modified in objects.items() if not _in_use(name, rows)}
    cut_off = [r for r in records if r["method"] == "POST" and (r["status"] is None or r["status"] >= 500)]
    # A delete answered (or cut off) while a fault was on may leave its file and its renditions.
    deleted_in_faults = {
        _digest(r["url"])
        for r in records
        if r["method"] == "DELETE"
        and r["status"] in (204, None)
        and fault_at(faults, r["t"] + r["ms"] / 1000, slack=HEAL_SECONDS)
    }
    # An upload the store's guard shed (503) outside a fault may have stored its file before a later call
    # of it was refused: its file stays for reconcile_storage, as a cut-off upload's does.
    shed = [(r["t"], r["t"] + r["ms"] / 1000) for r in cut_off if r["status"] == 503]

    def written_by_a_shed_upload(modified: float) -> bool:
        return any(start - 2 <= modified <= end + 2 for start, end in shed)

    # An orphan's object was written while a fault was on (or just after, for a request that was slow).
    unexplained = [
        name
        for name, modified in orphans.items()
        # LastModified has whole seconds, and a write sent just before the fault may be done as it begins,
        # its answer held: the request fails, the object stays.
        if fault_at(faults, modified, slack=15) is None
        and fault_at(faults, modified + 2, slack=15) is None
        and _digest(name) not in deleted_in_faults
        and not written_by_a_shed_upload(modified)
    ]
    problems = []
    if unexplained:
        problems.append(f"{len(unexplained)} orphans written outside any fault: {unexplained[:3]}")
    sources = {_digest(name) for name in orphans}
    if len(sources) > len(cut_off) + len(deleted_in_faults):
        problems.append(
            f"orphans of {len(sources)} files but only {len(cut_off)} uploads cut off and "
            f"{len(deleted_in_faults)} deletes during faults"
        )
    fixed = reconcile(stack, "--fix")
    rows_after, objects_after = _rows_and_objects(stack)
    left = sorted(name for name in objects_after if not _in_use(name, rows_after))
    after = reconcile(stack)
    if fixed.returncode != 0 or left or after.returncode != 0:
        problems.append(
            f"reconcile_storage --fix left {left[:3]} (exit {fixed.returncode}, then {after.returncode})"
        )
    detail = (
        f"{len(orphans)} orphans of {len(sources)} files, from {len(cut_off)} uploads cut off by faults "
        f"({sum(1 for r in cut_off if r['status'] is None)} without an answer) and {len(deleted_in_faults)} "
        f"deletes during faults; reconcile_storage --fix removed them, nothing left"
    )
    return Check(
        "orphans only from cut-off uploads, and --fix removes them",
        not problems,
        "; ".join(problems) or detail,
    )


def errors_during_faults(faults: list[Fault], records: list[dict[str, Any]]) -> Check:
    """Errors are 503 with Retry-After, or 502 for changes (POST, PATCH, DELETE) under way on the killed
    replica; never a 500, never a GET lost to a replica's death, never a request without an answer."""
    problems: list[str] = []
    counts: dict[str, int] = {}
    for record in records:
        if not failed(record):
            continue
        status, fault = (
            record["status"],
            fault_at(faults, record["t"] + record["ms"] / 1000, slack=HEAL_SECONDS),
        )
        answered = record["t"] + record["ms"] / 1000
        # The replica kill, even while another fault's healing time is still counted.
        killed = any(f.name == "replica" and fault_at([f], answered, slack=HEAL_SECONDS) for f in faults)
        counts[str(status)] = counts.get(str(status), 0) + 1
        where = (
            f"{record['method']} {record['path']} at {time.strftime('%H:%M:%S', time.gmtime(record['t']))}"
        )
        if status == 503:
            if not record.get("retry_after"):
                problems.append(f"503 without Retry-After: {where}")
            if fault is None:
                problems.append(f"503 outside any fault: {where}")
        elif status == 502 and record["method"] != "GET" and killed:
            pass  # a change under way on the killed replica: nginx does not send it again elsewhere
        else:
            problems.append(f"{status or record.get('error')}: {where} {record.get('body', '')[:120]}")
    detail = "errors by status: " + (", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none")
    if problems:
        detail += f"; {len(problems)} not allowed, e.g. " + " | ".join(problems[:5])
    return Check(
        "during faults only 503 + Retry-After (or 502 for changes on the killed replica)",
        not problems,
        detail,
    )


def heal_times(
    faults: list[Fault], records: list[dict[str, Any]], health: list[dict[str, Any]]
) -> dict[str, Any]:
    """For each fault, seconds from its end until `/readyz` answered 200 everywhere for good (by when the
    answer came), and until the last failed request it caused (by when that request started); what was
    answered after the next fault began is that fault's."""
    result = {}
    targets = {h["target"] for h in health}
    for index, fault in enumerate(faults):
        end = fault.ended_at or 0.0
        until = (faults[index + 1].began_at or float("inf")) if index + 1 < len(faults) else float("inf")
        ready = end
        for target in targets:
            probes = sorted(
                # Answered before the next fault began: one under way then may fail because of it.
                (p for p in health if p["target"] == target and end <= p["t"] and p["done"] < until),
                key=_start,
            )
            last_bad = max((i for i, p in enumerate(probes) if p["status"] != 200), default=-1)
            # Never ready again before the next fault: infinitely late.
            ready = max(ready, probes[last_bad + 1]["done"]) if last_bad + 1 < len(probes) else float("inf")
        last_failure = end
        for record in records:
            answered = record["t"] + record["ms"] / 1000
            if (fault.began_at or 0) <= record["t"] and answered < until and failed(record):
                last_failure = max(last_failure, record["t"])
        result[fault.name] = {
            "ready_after_s": round(ready - end, 2),
            "last_error_after_s": round(last_failure - end, 2),
        }
    return result


def _start(record: dict[str, Any]) -> float:
    return record["t"]


def healed(faults: list[Fault], records: list[dict[str, Any]], health: list[dict[str, Any]]) -> Check:
    heals = heal_times(faults, records, health)
    slow = {name: h for name, h in heals.items() if max(h.values()) > HEAL_SECONDS}
    detail = "; ".join(
        f"{name}: ready +{h['ready_after_s']} s, last error +{h['last_error_after_s']} s"
        for name, h in heals.items()
    )
    return Check(f"healthy within {HEAL_SECONDS:.0f} s of each fault's end, by itself", not slow, detail)


def rate_limit_probe(stack: Stack, key: str, *, through: str) -> list[dict[str, Any]]:
    """`PROBE_UPLOADS` tiny uploads, one after another, with one key: `through` "replicas" sends them to the
    three replicas in turn (bypassing nginx), "nginx" through it. Returns their records."""
    import io

    from PIL import Image

    from bench.chaos.load import post_upload

    records = []
    for n in range(PROBE_UPLOADS):
        buffer = io.BytesIO()
        Image.new("RGB", (24, 16), (n * 9 % 256, 80, 160)).save(buffer, "PNG")
        title = f"probe {through} {key[:8]} {n}"
        base = stack.replicas[n % len(stack.replicas)].url if through == "replicas" else stack.nginx.url
        record = post_upload(base, key, "probe", title, "probe.png", buffer.getvalue())
        records.append(record)
    return records


def rate_limit_race(stack: Stack, key: str) -> list[dict[str, Any]]:
    """`PROBE_UPLOADS` tiny uploads with one key sent to the three replicas at once (a barrier releases one
    thread per upload together), so that their processes race for the last of the allowance in Redis."""
    import io
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    from bench.chaos.load import post_upload

    barrier = threading.Barrier(PROBE_UPLOADS, timeout=60)

    def upload(n: int) -> dict[str, Any]:
        buffer = io.BytesIO()
        Image.new("RGB", (24, 16), (n * 9 % 256, 160, 80)).save(buffer, "PNG")
        base = stack.replicas[n % len(stack.replicas)].url
        barrier.wait()
        return post_upload(base, key, "probe", f"probe race {key[:8]} {n}", "probe.png", buffer.getvalue())

    with ThreadPoolExecutor(PROBE_UPLOADS) as pool:
        return list(pool.map(upload, range(PROBE_UPLOADS)))


def rate_limit_raced(records: list[dict[str, Any]]) -> Check:
    statuses = [r["status"] for r in records]
    # A 503 (the store's guard shedding a burst it cannot take in time) comes after the limit let the
    # upload in, so it spent an allowance as a 201 does: the limit held when exactly the rest are 429s.
    allowed, limited, shed = statuses.count(201), statuses.count(429), statuses.count(503)
    ok = allowed + shed == UPLOAD_LIMIT and limited == PROBE_UPLOADS - UPLOAD_LIMIT
    ok = ok and all(r.get("retry_after") for r in records if r["status"] in (429, 503))
    detail = (
        f"{PROBE_UPLOADS} uploads with one key, to the 3 replicas at once, limit {UPLOAD_LIMIT}/minute: "
        f"{allowed} x 201 and {shed} x 503 (let in, then shed by the store's guard), "
        f"{limited} x 429 with Retry-After"
    )
    return Check(
        "a key's upload limit holds when the replicas race for its last uploads (Redis)",
        ok,
        detail if ok else f"{detail}: {sorted(statuses, key=str)}",
    )


def rate_limit_shared(records: list[dict[str, Any]], *, when: str = "") -> Check:
    statuses = [r["status"] for r in records]
    allowed, limited = statuses.count(201), statuses.count(429)
    ok = allowed == UPLOAD_LIMIT and limited == PROBE_UPLOADS - UPLOAD_LIMIT and statuses[-1] == 429
    ok = ok and all(r.get("retry_after") for r in records if r["status"] == 429)
    detail = (
        f"{PROBE_UPLOADS} uploads with one key, to the 3 replicas in turn, limit {UPLOAD_LIMIT}/minute: "
        f"{allowed} x 201, {limited} x 429 with Retry-After"
    )
    return Check(
        f"a key's upload limit holds across the replicas (Redis){when}",
        ok,
        detail if ok else f"{detail}: {statuses}",
    )


def rate_limit_open_without_redis(records: list[dict[str, Any]]) -> Check:
    statuses = [r["status"] for r in records]
    ok = bool(records) and all(s == 201 for s in statuses)
    detail = f"{len(records)} uploads with one fresh key while Redis was down: " + (
        "all 201" if ok else f"{statuses}"
    )
    return Check("while Redis is down, uploads go through", ok, detail)


def limiter_faults_cost_little(faults: list[Fault], records: list[dict[str, Any]]) -> Check:
    """A fault of Redis only costs the limiter's timeout: p99 of the answers meanwhile stays low."""
    import statistics

    results = []
    for fault in faults:
        if not fault.name.startswith("redis"):
            continue
        latencies = sorted(r["ms"] for r in records if fault_at([fault], r["t"]) and not failed(r))
        p99 = statistics.quantiles(latencies, n=100, method="inclusive")[98] if len(latencies) > 1 else 0.0
        results.append((fault.label, p99))
    slow = [(label, p99) for label, p99 in results if p99 > LIMITER_FAULT_P99_MS]
    detail = ", ".join(f"{label}: p99 {p99:.0f} ms" for label, p99 in results)
    return Check(f"Redis faults cost requests little (p99 under {LIMITER_FAULT_P99_MS} ms)", not slow, detail)


def no_server_errors_logged(stack: Stack) -> Check:
    """No replica answered anything with a 500, the rig's probes and health checks included (their access
    log, one JSON line per request)."""
    errors, lines = [], 0
    for replica in stack.replicas:
        for line in replica.log_path.read_text(errors="replace").splitlines():
            if '"api.access"' not in line:
                continue
            lines += 1
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("status", 0) >= 500 and record["status"] != 503:
                errors.append(
                    f"replica {replica.index}: {record.get('method')} {record.get('path')} {record['status']}"
                )
    detail = f"{lines} requests in the replicas' access logs, none answered 5xx but 503"
    return Check("no 500 in the replicas' logs", not errors, detail if not errors else "; ".join(errors[:5]))


def _during(fault: Fault, records: list[dict[str, Any]], kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    """The load's requests of these kinds that began while the fault was on."""
    return [r for r in records if r["kind"] in kinds and fault_at([fault], r["t"])]


def _p99_outside_faults(faults: list[Fault], records: list[dict[str, Any]], kinds: tuple[str, ...]) -> float:
    """The p99 of these kinds' answers with no fault on, nor healing (the machine's own noise)."""
    quiet = [
        r["ms"]
        for r in records
        if r["kind"] in kinds
        and r["status"] is not None
        and fault_at(faults, r["t"], slack=HEAL_SECONDS) is None
    ]
    return _p99(quiet)


def _p99(latencies: list[float]) -> float:
    import statistics

    if len(latencies) < 2:
        return latencies[0] if latencies else 0.0
    return statistics.quantiles(sorted(latencies), n=100, method="inclusive")[98]


def unaffected_by(
    faults: list[Fault], records: list[dict[str, Any]], *, fault_name: str, kinds: tuple[str, ...], what: str
) -> Check:
    """While `fault_name` is on, requests of `kinds` (which do not need the stalled dependency) keep
    UNAFFECTED_OK_SHARE of 2xx answers and a p99 under UNAFFECTED_P99_MS."""
    results, ok = [], True
    quiet = _p99_outside_faults(faults, records, kinds)
    bound = max(UNAFFECTED_P99_MS, BUSY_MACHINE_FACTOR * quiet)
    for fault in (f for f in faults if f.name == fault_name):
        chosen = _during(fault, records, kinds)
        good = [r for r in chosen if r["status"] is not None and 200 <= r["status"] < 300]
        share = len(good) / len(chosen) if chosen else 1.0
        p99 = _p99([r["ms"] for r in chosen if r["status"] is not None])
        ok = ok and share >= UNAFFECTED_OK_SHARE and p99 <= bound
        results.append(
            f"{len(chosen)} requests, {share:.1%} 2xx, p99 {p99:.0f} ms (bound {bound:.0f} ms; "
            f"{quiet:.0f} ms outside faults)"
        )
    return Check(
        f"while {what}, {'/'.join(kinds)}: >= {UNAFFECTED_OK_SHARE:.0%} 2xx, p99 <= {UNAFFECTED_P99_MS} ms"
        f" (or {BUSY_MACHINE_FACTOR:g} x their p99 outside faults, on a busy machine)",
        ok,
        "; ".join(results) or f"no {fault_name} fault",
    )


def answered_in_time(
    faults: list[Fault], records: list[dict[str, Any]], *, fault_name: str, kinds: tuple[str, ...], what: str
) -> Check:
    """While `fault_name` is on, requests of `kinds` (which need the stalled dependency) are answered
    within ANSWER_WITHIN_MS: done, limited (429), or 503 with Retry-After; never queued behind it."""
    results, late, bad = [], [], []
    for fault in (f for f in faults if f.name == fault_name):
        chosen = _during(fault, records, kinds)
        for record in chosen:
            where = f"{record['method']} {record['path']} {record['status']} in {record['ms']:.0f} ms"
            status = record["status"]
            # What this kind takes with no fault on counts on top (a busy machine renders slowly).
            within = ANSWER_WITHIN_MS + _p99_outside_faults(faults, records, (record["kind"],))
            if status is None or record["ms"] > within:
                late.append(where)
            elif not (200 <= status < 300 or status == 429 or (status == 503 and record.get("retry_after"))):
                bad.append(where)
        counts: dict[str, int] = {}
        for record in chosen:
            counts[str(record["status"])] = counts.get(str(record["status"]), 0) + 1
        slowest = max((r["ms"] for r in chosen if r["status"] is not None), default=0.0)
        results.append(
            f"{len(chosen)} requests ("
            + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
            + f"), slowest {slowest:.0f} ms"
        )
    detail = "; ".join(results) or f"no {fault_name} fault"
    if late or bad:
        detail += f"; late: {late[:3]}; not allowed: {bad[:3]}"
    return Check(
        f"while {what}, {'/'.join(kinds)}: answered within {ANSWER_WITHIN_MS / 1000:g} s, at worst 503",
        not late and not bad,
        detail,
    )


def resumable_completed_once(stack: Stack, record: dict[str, Any], key: str) -> Check:
    """The tus upload the replica kill cut off (bench/chaos/resumable.py) was resumed on another replica
    and made its image exactly once, and none of its chunks is left in the bucket."""
    import psycopg

    problems = []
    if not record.get("image"):
        problems.append(f"the resumed upload made no image: {record}")
    if "cut_off" not in record:
        problems.append(f"the kill did not cut the upload off (it finished first): {record}")
    with psycopg.connect(stack.postgres.url.replace("postgres://", "postgresql://")) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM images_image WHERE title = %s", (record["title"],)
        ).fetchone()
    if count != 1:
        problems.append(f"{count} images carry its title, not 1")
    upload_id = record.get("upload_id")
    status, body = _get(
        f"{stack.replicas[0].url}/uploads/{upload_id}", headers={"Authorization": f"Bearer {key}"}
    )
    state = json.loads(body) if status == 200 else {}
    if state.get("state") != "completed" or f"/images/{(state.get('image') or {}).get('id')}" != record.get(
        "image"
    ):
        problems.append(f"GET /uploads/{upload_id} answered {status}: {state.get('state')}")
    assert stack.s3 is not None
    left = [
        entry["Key"]
        for page in stack.s3.client.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=f"uploads/partial/{upload_id}/"
        )
        for entry in page.get("Contents", ())
    ]
    if left:
        problems.append(f"{len(left)} chunks left: {left[:3]}")
    detail = (
        f"{record['size']} bytes: {record.get('sent_before_kill')} sent before the kill, cut off "
        f"({record.get('cut_off')}) with {record.get('confirmed_by_killed')} confirmed, resumed on replica 0 "
        f"at {record.get('resumed_at')}; one image ({record.get('image')}), no chunk left"
    )
    return Check(
        "a tus upload cut off by the kill resumes on another replica, completes once",
        not problems,
        "; ".join(problems) or detail,
    )
