"""`python -m bench.chaos`: start the stack, check the shared rate limit, run the load with faults on a
timeline, check what must hold, print the summary and write the JSON report and the PNG timeline.

    python -m bench.chaos                        # make chaos: 60 s, all seven faults
    python -m bench.chaos --seconds 20 --faults s3,replica,receiver,worker   # CI's short run

Exits 1 when a check fails (the run's folder, with every service's log, is then kept and printed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.chaos import checks, event_checks
from bench.chaos.faults import (
    DURATIONS,
    KILLED_REPLICA,
    HealthWatch,
    Timeline,
    UploadsInFlight,
    plan,
    plan_side,
)
from bench.chaos.load import DATABASE_ONLY, NEEDS_STORAGE
from bench.chaos.receiver import Receiver
from bench.chaos.report import plot, print_summary, summarize, write_json
from bench.chaos.resumable import ResumableInFlight
from bench.chaos.services import ROOT, Stack, create_api_keys, http_status, wait_until

LOAD_KEYS = 16  # the load's uploads go round these, each well under the per-key limit


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60, help="how long the load runs (default 60)")
    parser.add_argument("--rate", type=float, default=25, help="requests per second (default 25)")
    parser.add_argument(
        "--faults",
        default="replica,s3,postgres,redis,redis-hang,receiver,worker",
        help=f"in this order, from {', '.join(DURATIONS)} (default: all)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "chaos", help="report folder")
    parser.add_argument(
        "--keep", action="store_true", help="keep the run's folder (logs) even when all passes"
    )
    args = parser.parse_args()
    names = [name for name in args.faults.split(",") if name]
    if unknown := set(names) - set(DURATIONS):
        parser.error(f"unknown faults: {sorted(unknown)}")
    args.out.mkdir(parents=True, exist_ok=True)

    began = time.monotonic()
    all_passed = False
    # The run's folder (every service's log) is kept when something fails, or with --keep.
    with Stack(keep=True) as stack:
        print(
            f"stack up in {time.monotonic() - began:.1f} s: nginx {stack.nginx.url}, replicas "
            + ", ".join(r.url for r in stack.replicas),
            flush=True,
        )
        all_passed = run(stack, args, names)
        stack.keep = args.keep or not all_passed
    print(f"chaos: {'all checks passed' if all_passed else 'FAILED'} in {time.monotonic() - began:.0f} s")
    return 0 if all_passed else 1


def run(stack: Stack, args: argparse.Namespace, names: list[str]) -> bool:
    began = time.monotonic()
    keys = create_api_keys(
        stack.environment,
        [f"load-{n}" for n in range(LOAD_KEYS)]
        + ["probe-shared", "probe-race", "probe-no-redis", "probe-after", "in-flight", "resumable"]
        + ["admin-webhooks"],
    )
    receiver = Receiver()
    receiver.start()
    receiver.secret = register_receiver(stack, keys["admin-webhooks"], receiver.url)
    load_keys = stack.folder / "load-keys.json"
    load_keys.write_text(json.dumps([keys[f"load-{n}"] for n in range(LOAD_KEYS)]))

    # Before the load: one key's uploads spread over the three replicas must meet one limit.
    shared_probe = checks.rate_limit_probe(stack, keys["probe-shared"], through="replicas")
    # And the same sent at once: the replicas' processes race for the last of the allowance.
    race_probe = checks.rate_limit_race(stack, keys["probe-race"])
    no_redis_probe: list[dict] = []

    def during_redis() -> None:
        no_redis_probe.extend(checks.rate_limit_probe(stack, keys["probe-no-redis"], through="nginx"))

    in_flight = UploadsInFlight(stack.replicas[KILLED_REPLICA].url, keys["in-flight"])
    resumable = ResumableInFlight(
        stack.replicas[KILLED_REPLICA].url, stack.replicas[0].url, keys["resumable"]
    )
    load_log = stack.folder / "load.jsonl"
    load = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.chaos.load",
            "--base",
            stack.nginx.url,
            "--keys",
            str(load_keys),
            "--seconds",
            str(args.seconds),
            "--rate",
            str(args.rate),
            "--out",
            str(load_log),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    watch = HealthWatch(stack, stack.folder / "health.jsonl")
    try:
        assert load.stdin is not None and load.stdout is not None
        if load.stdout.readline().strip() != "ready":
            raise RuntimeError("the load generator did not start")
        start = time.time() + 0.5
        load.stdin.write(f"{start}\n")
        load.stdin.flush()
        faults = plan(
            stack,
            names,
            seconds=args.seconds,
            during_redis=during_redis,
            in_flight=in_flight,
            resumable=resumable,
        )
        side_faults = plan_side(stack, receiver, names, seconds=args.seconds)
        watch.begin()
        timeline, side_timeline = Timeline(faults, start), Timeline(side_faults, start)
        timeline.begin()
        side_timeline.begin()
        print(
            f"load: {args.rate:g} requests/s for {args.seconds:g} s; faults: "
            + ", ".join(f"{f.label} at +{f.start:g} s for {f.duration:g} s" for f in faults + side_faults),
            flush=True,
        )
        timeline.join()
        side_timeline.join()
        in_flight.join()
        resumable.join()
        if load.wait(timeout=args.seconds + 120) != 0:
            raise RuntimeError(f"the load generator exited with {load.returncode}")
        end = time.time()
        # Every fault has ended: watch /readyz a little longer, so the last one's healing is seen.
        last_end = max((f.ended_at or 0) for f in faults) if faults else end
        time.sleep(max(0.0, last_end + checks.HEAL_SECONDS + 1 - time.time()))
    finally:
        watch.stop()
        if load.poll() is None:
            load.kill()
            load.wait()
    wait_until(
        lambda: all(http_status(f"{replica.url}/readyz") == 200 for replica in stack.replicas),
        timeout=30,
        what="the service",
    )

    records = read_lines(load_log)
    health = read_lines(stack.folder / "health.jsonl")
    created = [
        r
        for r in records + shared_probe + race_probe + no_redis_probe + in_flight.records
        if r.get("status") == 201
    ]
    # Redis is back: the replicas' connections to it must have come back by themselves.
    after_redis = (
        checks.rate_limit_probe(stack, keys["probe-after"], through="replicas") if "redis" in names else []
    )
    created += [r for r in after_redis if r.get("status") == 201]
    # Every change has been answered: the queue must empty and every event reach the receiver, watched
    # while the other checks run.
    last_fault_end = max((f.ended_at or 0.0) for f in faults + side_faults) if faults or side_faults else end
    drain_watch = event_checks.DrainWatch(stack, last_fault_end=last_fault_end)
    print(f"load and faults done; checking ({time.monotonic() - began:.0f} s into the run)", flush=True)
    uploads = [
        r
        for r in records + shared_probe + race_probe + no_redis_probe + in_flight.records + after_redis
        if r["method"] == "POST"
    ]
    if "replica" in names:
        # The tus upload the kill cut off: its image (named by the last chunk's answer) has its one event.
        image = resumable.record.get("image")
        uploads.append(
            {
                "method": "POST",
                "status": 201 if image else None,
                "id": int(image.rsplit("/", 1)[-1]) if image else None,
                "title": resumable.record["title"],
            }
        )
    # Images the load deleted (or may have: no answer) are not listed any more; PATCHed ones may carry a
    # new title (a PATCH without an answer may or may not have been applied).
    deleted = {r["id"] for r in records if r["method"] == "DELETE" and r["status"] in (204, None)}
    created = [r for r in created if r["id"] not in deleted]
    retitled: dict[int, set[str]] = {}
    for r in records:
        if r["method"] == "PATCH" and r["status"] in (200, None):
            retitled.setdefault(r["id"], set()).add(r["title"])
    results = [
        checks.uploads_listed(stack, created, retitled),
        checks.files_serve(created),
        checks.renditions_serve(stack, created),
        checks.rows_have_files(stack),
        checks.orphans_explained(stack, faults, records + race_probe + no_redis_probe + in_flight.records),
        checks.errors_during_faults(faults, records),
        checks.healed(faults, records, health),
        checks.rate_limit_shared(shared_probe),
        checks.rate_limit_raced(race_probe),
    ]
    if "s3" in names:
        s3_stalled = {"faults": faults, "records": records, "fault_name": "s3", "what": "S3 is stopped"}
        results.append(checks.unaffected_by(**s3_stalled, kinds=("list", "filter", "detail")))
        results.append(checks.answered_in_time(**s3_stalled, kinds=NEEDS_STORAGE))
    if "postgres" in names:
        database_down = {
            "faults": faults,
            "records": records,
            "fault_name": "postgres",
            "what": "PostgreSQL is down",
        }
        results.append(checks.unaffected_by(**database_down, kinds=("file",)))
        results.append(checks.answered_in_time(**database_down, kinds=DATABASE_ONLY + NEEDS_STORAGE))
    if "redis" in names:
        results.append(checks.rate_limit_open_without_redis(no_redis_probe))
        results.append(checks.rate_limit_shared(after_redis, when=", again once Redis is back"))
    if any(name.startswith("redis") for name in names):
        results.append(checks.limiter_faults_cost_little(faults, records))
    drained_after, queue = drain_watch.result()
    print(f"checks done; queue drained ({time.monotonic() - began:.0f} s into the run)", flush=True)
    receiver.dump(stack.folder / "received.jsonl")
    received = receiver.snapshot()
    results += event_checks.events_match_changes(
        received,
        uploads=uploads,
        patches=[r for r in records if r["method"] == "PATCH"],
        deletes=[r for r in records if r["method"] == "DELETE"],
    )
    results.append(event_checks.signatures_verified(receiver))
    results.append(event_checks.queue_drained(drained_after, queue))
    optional = [
        event_checks.receiver_fault_retried(side_faults, receiver),
        event_checks.worker_killed_mid_batch(side_faults),
    ]
    results += [check for check in optional if check is not None]
    if "replica" in names:
        results.append(checks.resumable_completed_once(stack, resumable.record, keys["resumable"]))
    results.append(checks.no_server_errors_logged(stack))
    heals = checks.heal_times(faults, records, health)
    summary = summarize(records, faults, start, end)
    print_summary(summary, results, heals, faults)
    for fault in side_faults:
        print(f"webhooks' fault: {fault.label} at +{(fault.began_at or start) - start:.1f} s {fault.notes}")
    print(f"webhooks: queue and deliveries empty {drained_after} s after the last fault ended")
    if stack.supervisor is not None and stack.supervisor.log:
        exits = ", ".join(
            f"{e['what']} (exit {e['exit']}) at +{float(e['t']) - start:.1f} s"
            for e in stack.supervisor.log  # type: ignore[arg-type]
        )
        print(f"exited by themselves and started again (as compose's restart policy would): {exits}")

    stem = f"chaos-{int(args.seconds)}s"
    report = args.out / f"{stem}.json"
    picture = args.out / f"{stem}.png"
    write_json(
        report,
        settings={"seconds": args.seconds, "rate": args.rate, "faults": names},
        checks=results,
        faults=[
            {**f.as_dict(), "at_s": round((f.began_at or start) - start, 2)} for f in faults + side_faults
        ],
        heal=heals,
        webhooks={
            "drained_after_last_fault_s": drained_after,
            "drained_within_s": event_checks.DRAINED_WITHIN_S,
            "deliveries_received": len(received),
            "event_ids": len({r.webhook_id for r in received}),
            "bad_signatures": receiver.bad_signatures,
            # Workers and the relay that exited by themselves, started again by the rig's supervisor.
            "exited_and_restarted": stack.supervisor.log if stack.supervisor else [],
        },
        resumable=resumable.record,
        summary=summary,
        requests=len(records),
    )
    title = (
        f"{len(stack.replicas)} replicas behind nginx, {args.rate:g} requests/s for {args.seconds:g} s; "
        f"{len(records)} requests, "
        + ("all checks passed" if all(c.ok for c in results) else "CHECKS FAILED")
    )
    plot(picture, records, faults, start, title)
    requests_log = args.out / f"{stem}-requests.jsonl"
    shutil.copyfile(load_log, requests_log)
    print(f"\nreport: {report}\ntimeline: {picture}\nevery request: {requests_log}")
    return all(c.ok for c in results)


def register_receiver(stack: Stack, admin_key: str, url: str) -> str:
    """`POST /webhooks` through nginx with an admin key, every event kind: the endpoint's secret."""
    request = urllib.request.Request(  # noqa: S310  # the rig's own loopback address
        f"{stack.nginx.url}/webhooks",
        data=json.dumps({"url": url}).encode(),
        headers={"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  # loopback
        return json.loads(response.read())["secret"]


if __name__ == "__main__":
    sys.exit(main())
