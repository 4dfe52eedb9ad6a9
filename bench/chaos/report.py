"""What the run shows: a table in the terminal, a JSON report, and a PNG timeline (matplotlib).

Throughput and latency are split by request kind and by phase: `before` the first fault, `during` a fault
(from its start to its end), and `after` (between and after faults, once each has ended).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bench.chaos.checks import Check, failed, fault_at
from bench.chaos.faults import Fault

KINDS = ("upload", "list", "filter", "detail", "file", "rendition", "patch", "delete")
PHASES = ("before", "during", "after")
OUTCOMES = ("ok", "429", "503", "502", "other error")
COLOURS = {"ok": "#4c9a2a", "429": "#8a8a8a", "503": "#e0a000", "502": "#d9534f", "other error": "#6f1d1b"}


def outcome(record: dict[str, Any]) -> str:
    if not failed(record):
        return "429" if record["status"] == 429 else "ok"
    return str(record["status"]) if record["status"] in (503, 502) else "other error"


def phase(record: dict[str, Any], faults: list[Fault]) -> str:
    first = min((f.began_at for f in faults if f.began_at), default=float("inf"))
    if record["t"] < first:
        return "before"
    return "during" if fault_at(faults, record["t"]) else "after"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if q < 100 else max(values)


def phase_seconds(faults: list[Fault], start: float, end: float) -> dict[str, float]:
    first = min((f.began_at for f in faults if f.began_at), default=end)
    during = sum(min(f.ended_at or end, end) - f.began_at for f in faults if f.began_at)
    return {"before": first - start, "during": during, "after": max(0.0, end - first - during)}


def summarize(records: list[dict[str, Any]], faults: list[Fault], start: float, end: float) -> dict[str, Any]:
    seconds = phase_seconds(faults, start, end)
    table: dict[str, Any] = {}
    for kind in KINDS:
        for name in PHASES:
            chosen = [r for r in records if r["kind"] == kind and phase(r, faults) == name]
            ok = [r for r in chosen if outcome(r) == "ok"]
            latencies = [r["ms"] for r in ok]
            table[f"{kind}/{name}"] = {
                "requests": len(chosen),
                "ok": len(ok),
                "ok_per_s": round(len(ok) / seconds[name], 2) if seconds[name] > 0 else None,
                "p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
                "p99_ms": round(percentile(latencies, 99), 1) if latencies else None,
            }
    per_fault = {}
    for fault in faults:
        inside = [r for r in records if fault_at([fault], r["t"])]
        per_fault[fault.name] = {o: sum(1 for r in inside if outcome(r) == o) for o in OUTCOMES}
        latencies = [r["ms"] for r in inside if outcome(r) == "ok"]
        per_fault[fault.name]["p99_ms"] = round(percentile(latencies, 99), 1) if latencies else None
    return {"phase_seconds": seconds, "by_kind_and_phase": table, "outcomes_by_fault": per_fault}


def print_summary(
    summary: dict[str, Any], checks: list[Check], heals: dict[str, Any], faults: list[Fault]
) -> None:
    print("\nthroughput (successful answers per second) and latency of successful answers, by phase")
    print(f"{'kind':<8}" + "".join(f"{p + ' ok/s':>13}{'p50 ms':>9}{'p99 ms':>9}" for p in PHASES))
    for kind in KINDS:
        cells = []
        for name in PHASES:
            row = summary["by_kind_and_phase"][f"{kind}/{name}"]
            cells.append(f"{_num(row['ok_per_s']):>13}{_num(row['p50_ms']):>9}{_num(row['p99_ms']):>9}")
        print(f"{kind:<8}" + "".join(cells))
    print("\nduring each fault: answers by outcome, and how long after its end the service was healthy again")
    print(
        f"{'fault':<22}"
        + "".join(f"{o:>12}" for o in OUTCOMES)
        + f"{'p99 ok ms':>11}{'ready after':>13}{'last error':>12}"
    )
    for fault in faults:
        counts, heal = summary["outcomes_by_fault"][fault.name], heals[fault.name]
        print(
            f"{fault.label:<22}"
            + "".join(f"{counts[o]:>12}" for o in OUTCOMES)
            + f"{_num(counts['p99_ms']):>11}"
            + f"{heal['ready_after_s']:>12.1f}s{heal['last_error_after_s']:>11.1f}s"
        )
    print("\nchecks")
    for check in checks:
        print(f"  {'PASS' if check.ok else 'FAIL'}  {check.name}: {check.detail}")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def write_json(path: Path, **parts: Any) -> None:
    path.write_text(json.dumps(parts, indent=2, default=lambda o: o.as_dict()) + "\n")


def plot(path: Path, records: list[dict[str, Any]], faults: list[Fault], start: float, title: str) -> None:
    """Answers per second by outcome (stacked, by the second they came in), faults shaded; below, the p99
    latency of each second's successful answers, all of them and those that need only the database
    (lists, filters, details: what a stalled store must not slow down)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = int(max((r["t"] + r["ms"] / 1000 - start for r in records), default=0)) + 1
    counts = {o: [0] * seconds for o in OUTCOMES}
    latencies: list[list[float]] = [[] for _ in range(seconds)]
    database_only: list[list[float]] = [[] for _ in range(seconds)]
    for record in records:
        # By when the answer came: a stalled second shows as a gap, then as the burst that follows it.
        second = int(record["t"] + record["ms"] / 1000 - start)
        if 0 <= second < seconds:
            counts[outcome(record)][second] += 1
            if outcome(record) == "ok":
                latencies[second].append(record["ms"])
                if record["kind"] in ("list", "filter", "detail"):
                    database_only[second].append(record["ms"])
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]}, constrained_layout=True
    )
    xs = list(range(seconds))
    top.stackplot(
        xs,
        *(counts[o] for o in OUTCOMES),
        labels=OUTCOMES,
        colors=[COLOURS[o] for o in OUTCOMES],
        step="post",
    )
    p99 = [percentile(values, 99) if values else float("nan") for values in latencies]
    bottom.step(xs, p99, where="post", color="#333333", linewidth=1, label="all")
    p99_database = [percentile(values, 99) if values else float("nan") for values in database_only]
    bottom.step(xs, p99_database, where="post", color="#4c9a2a", linewidth=1, label="list, filter, detail")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    bottom.set_yscale("log")
    top.set_ylim(0, max(map(sum, zip(*counts.values(), strict=True)), default=1) * 1.45)
    for fault in faults:
        if fault.began_at is None:
            continue
        left, right = fault.began_at - start, (fault.ended_at or fault.began_at) - start
        for axis in (top, bottom):
            axis.axvspan(left, right, color="#5b7db1", alpha=0.15, linewidth=0)
        top.text(left + 0.2, top.get_ylim()[1] * 0.97, fault.label, va="top", fontsize=8, color="#2b4a7a")
    top.set_ylabel("requests / s")
    top.set_title(title, fontsize=10)
    top.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    top.margins(x=0)
    bottom.set_ylabel("p99 ms (ok)")
    bottom.set_xlabel("seconds since the load started (shaded: a fault is on)")
    figure.savefig(path, dpi=110)
    plt.close(figure)
