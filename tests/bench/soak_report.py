"""The report of ``tests/bench/soak.py``: figures, invariants, text output.

Not a test module (pytest does not collect it).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tests.bench.soak_client import Stats

#: RSS growth (percent, warm-up to end) allowed per server process.
RSS_GROWTH_LIMIT = 10.0

#: ``[(seconds since the load began, {process: {"rss_kib", "anon_kib", ...}})]``
#: as sampled by ``soak.sample_until``: the first after the warm-up, the last
#: at the end (after the quiet wait).
Series = list[tuple[float, dict[str, dict[str, int]]]]


def _pct(before: int, after: int) -> float | None:
    return round(100.0 * (after - before) / before, 1) if before and after else None


def _mib(kib: int | None) -> float | None:
    return round(kib / 1024, 1) if kib else None


def middle(series: Series) -> int:
    """Index of the sample nearest to halfway between the first and the last."""
    halfway = (series[0][0] + series[-1][0]) / 2
    return min(range(len(series)), key=lambda i: abs(series[i][0] - halfway))


def rss_figures(series: Series) -> dict[str, dict[str, Any]]:
    """Per process: RSS (and its anonymous / file-backed parts) at the start and
    the end, its series in MiB (None where the process was not there), and its
    growth in percent from start to end (``rss_growth_pct``, the invariant's
    figure) and over each half (start to the middle sample, middle to end; each
    relative to the RSS at the beginning of that half)."""
    at_start, at_mid, at_end = series[0][1], series[middle(series)][1], series[-1][1]
    out: dict[str, dict[str, Any]] = {}
    for label in sorted({name for _, taken in series for name in taken}):
        start, mid, end = at_start.get(label, {}), at_mid.get(label, {}), at_end.get(label, {})
        rss0, rss_mid, rss1 = start.get("rss_kib", 0), mid.get("rss_kib", 0), end.get("rss_kib", 0)
        out[label] = {
            "rss_start_mib": round(rss0 / 1024, 1),
            "rss_end_mib": round(rss1 / 1024, 1),
            "rss_growth_pct": _pct(rss0, rss1),
            "growth_first_half_pct": _pct(rss0, rss_mid),
            "growth_second_half_pct": _pct(rss_mid, rss1),
            "anon_start_mib": _mib(start.get("anon_kib")),
            "anon_end_mib": _mib(end.get("anon_kib")),
            "file_start_mib": _mib(start.get("file_kib")),
            "file_end_mib": _mib(end.get("file_kib")),
            "rss_series_mib": [_mib(taken.get(label, {}).get("rss_kib")) for _, taken in series],
            "fds_start": start.get("fds"),
            "fds_end": end.get("fds"),
        }
    return out


def report(
    args: argparse.Namespace,
    stats: Stats,
    series: Series,
    found: dict[str, Any],
    waited: float,
    ran: float,
    stuck: list[str],
    alive: dict[str, bool],
    logs: dict[str, Any],
) -> dict[str, Any]:
    with stats.lock:
        statuses = dict(sorted(stats.statuses.items()))
        events = dict(sorted(stats.events.items()))
        samples = {
            "offsets_back": list(stats.offsets_back),
            "offsets_beyond_sent": list(stats.offsets_beyond),
            "corrupted": list(stats.corrupted),
        }
        unexpected = {k: list(v) for k, v in sorted(stats.unexpected.items())}
        uploads = {
            "completed": len(stats.completed),
            "deleted": len(stats.deleted),
            "s3": len(stats.s3_routed),
        }
    processes = rss_figures(series)
    five_xx = sum(n for key, n in statuses.items() if int(key.split()[1]) >= 500)
    server_5xx = sum(n for v in logs.values() for n in v["access_5xx"].values())
    checks = {
        "no 5xx (client answers and server access logs)": five_xx == 0 and server_5xx == 0,
        "no corrupted file": events.get("corrupted", 0) == 0,
        "no offset went back": events.get("offset went back", 0) == 0,
        "no offset beyond bytes sent": events.get("offset beyond bytes sent", 0) == 0,
        "no lock left": not found["locks"],
        "no live lease left": found["leases_live"] == 0,
        "no multipart upload left for completed/deleted uploads": not found["multipart_of_finished"],
        "no 'never retrieved' / 500 / traceback in server logs": all(
            v["error_lines"] == 0 and v["never_retrieved"] == 0 for v in logs.values()
        ),
        f"RSS growth < {RSS_GROWTH_LIMIT:g}% after warm-up": all(
            p["rss_growth_pct"] is not None and p["rss_growth_pct"] < RSS_GROWTH_LIMIT
            for p in processes.values()
        ),
        "every client stopped in time": not stuck,
        "every server alive at the end": all(alive.values()),
        "no client crashed": events.get("client crashed", 0) == 0,
    }
    return {
        "command": "python3 tests/bench/soak.py " + " ".join(args.argv),
        "clients": args.clients,
        "seed": args.seed,
        "auth": not args.no_auth,
        "ran_s": round(ran, 1),
        "requests": sum(statuses.values()),
        "five_xx": five_xx,
        "server_5xx": server_5xx,
        "statuses": statuses,
        "events": events,
        "uploads": uploads,
        "processes": processes,
        "sample_times_s": [round(t) for t, _ in series],
        "middle_sample_s": round(series[middle(series)][0]),
        "leftovers": {**found, "quiet_wait_s": round(waited, 1)},
        "server_logs": logs,
        "samples": samples,
        "unexpected": unexpected,
        "stuck_clients": stuck,
        "checks": checks,
        "ok": all(checks.values()),
    }


def print_text(result: dict[str, Any]) -> None:
    out = sys.stdout
    print(f"command: {result['command']}", file=out)
    print(f"ran {result['ran_s']} s, {result['clients']} clients, auth {result['auth']}", file=out)
    print(
        f"requests: {result['requests']}, 5xx received: {result['five_xx']}, "
        f"5xx in server access logs: {result['server_5xx']}",
        file=out,
    )
    print("answers: " + ", ".join(f"{k}: {v}" for k, v in result["statuses"].items()), file=out)
    print("events: " + ", ".join(f"{k}: {v}" for k, v in result["events"].items()), file=out)
    print(f"uploads: {result['uploads']}", file=out)
    if result["stuck_clients"]:
        print(
            f"clients still in a request long after the stop: {result['stuck_clients']}",
            file=out,
        )
    print(f"RSS after the warm-up and at the end; halves split at {result['middle_sample_s']} s:", file=out)
    print(
        "| process | RSS start MiB | RSS end MiB | growth % | 1st half % | 2nd half % "
        "| anon MiB | file MiB | fds start | fds end |",
        file=out,
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|", file=out)
    for label, p in result["processes"].items():
        print(
            f"| {label} | {p['rss_start_mib']} | {p['rss_end_mib']} | {p['rss_growth_pct']} "
            f"| {p['growth_first_half_pct']} | {p['growth_second_half_pct']} "
            f"| {p['anon_start_mib']} → {p['anon_end_mib']} | {p['file_start_mib']} → {p['file_end_mib']} "
            f"| {p['fds_start']} | {p['fds_end']} |",
            file=out,
        )
    times = result["sample_times_s"]
    print("RSS series, MiB (seconds since the load began; the last column is the end sample):", file=out)
    print("| process | " + " | ".join(f"{t} s" for t in times) + " |", file=out)
    print("|---|" + "---:|" * len(times), file=out)
    for label, p in result["processes"].items():
        print(f"| {label} | " + " | ".join(str(v) for v in p["rss_series_mib"]) + " |", file=out)
    left = result["leftovers"]
    print(
        f"leftovers after {left['quiet_wait_s']} s: locks {len(left['locks'])} {left['locks'][:5]}, "
        f"leases live {left['leases_live']} lapsed {left['leases_lapsed']}, multipart uploads "
        f"{left['multipart_total']} ({len(left['multipart_of_finished'])} of completed/deleted uploads: "
        f"{left['multipart_of_finished'][:5]})",
        file=out,
    )
    for name, logs in result["server_logs"].items():
        print(
            f"log {name} ({logs['url']}): never retrieved {logs['never_retrieved']}, "
            f"5xx answers {logs['access_5xx']}, error lines {logs['error_lines']}",
            file=out,
        )
        for line, count in logs["errors"].items():
            print(f"    error x{count}: {line}", file=out)
        for line, count in logs["warnings"].items():
            print(f"    warning/error x{count}: {line}", file=out)
    for key, lines in result["samples"].items():
        for line in lines[:10]:
            print(f"{key}: {line}", file=out)
    for key, (count, *examples) in result["unexpected"].items():
        print(f"unexpected: {key} x{count}", file=out)
        for line in examples:
            print(f"    e.g. {line}", file=out)
    for name, passed in result["checks"].items():
        print(f"[{'ok' if passed else 'FAIL'}] {name}", file=out)
