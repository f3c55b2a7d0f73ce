#!/usr/bin/env python3
"""Aggregate upload throughput of ``serve --workers 2`` against ``--workers 1``.

Runs the reference harness (``/work/shared/bench/tusbench.py``, scenario
``concurrent``: K parallel uploads of S bytes in PATCHes of C bytes) against
tusd-py started from this checkout, alternating 1 and 2 workers for several
rounds (A B B A ...) on one shared redis-server (both settings use Redis, so
only the process count differs). Prints one JSON line per run and a summary
with medians, per-round ratios and server CPU per GiB (summed over the
worker processes).

    python3 tests/bench/bench_workers.py --rounds 3            # 50 x 100 MiB
    python3 tests/bench/bench_workers.py --conc-k 10 --conc-size 20M --rounds 1   # quick

Loopback only; every wait is bounded. Not a test: numbers go to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_HARNESS = Path(os.environ.get("TUSBENCH", "/work/shared/bench/tusbench.py"))
_LISTENING = re.compile(rb"listening on (http://\S+/files/)")
_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of ``pids`` (live processes) in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def server_pids(parent: int) -> list[int]:
    """The serving processes: the workers of a supervisor, else the process itself."""
    children: list[int] = []
    for task in Path(f"/proc/{parent}/task").iterdir():
        text = (task / "children").read_text().split()
        children += [int(c) for c in text]
    return children or [parent]


def start_server(
    workers: int, data_dir: Path, redis_url: str | None, log: Path, fsync: str
) -> tuple[subprocess.Popen[bytes], str]:
    """Start tusd-py; ``redis_url`` None means SQLite state (+ file locks for workers)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSD_PY_")}
    env["PYTHONPATH"] = str(ROOT)
    if redis_url:
        env.update(TUSD_PY_REDIS_URL=redis_url, TUSD_PY_REDIS_PREFIX=f"bench-{time.time_ns()}:")
    cmd = [
        sys.executable,
        "-m",
        "tusd_py",
        "serve",
        "--no-auth",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--workers",
        str(workers),
        "--data-dir",
        str(data_dir),
        "--read-size",
        "1MiB",
        "--local-fsync",
        fsync,
    ]
    with open(log, "ab") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env)
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    line = b""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = _LISTENING.search(line)
        if match:
            return proc, match.group(1).decode()
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"server did not start: {line!r}; see {log}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def run_once(
    args: argparse.Namespace, workers: int, round_no: int, redis_url: str | None, work: Path
) -> dict[str, object]:
    data_dir = work / f"data-w{workers}-r{round_no}"
    proc, url = start_server(workers, data_dir, redis_url, work / f"server-w{workers}.log", args.fsync)
    try:
        pids = server_pids(proc.pid)
        cpu_before = cpu_seconds(pids)
        cmd = [
            sys.executable,
            str(args.harness),
            "--url",
            url,
            "--scenarios",
            "concurrent",
            "--conc-k",
            str(args.conc_k),
            "--conc-size",
            args.conc_size,
            "--chunk",
            args.chunk,
            "--label",
            f"workers-{workers}",
            "--round",
            str(round_no),
        ]
        if args.verify:
            cmd += ["--verify-dir", str(data_dir / "uploads")]
        out = subprocess.run(cmd, capture_output=True, timeout=args.max_time, check=False)
        cpu = cpu_seconds(pids) - cpu_before
        lines = [json.loads(x) for x in out.stdout.decode().splitlines() if x.startswith("{")]
        if not lines:
            raise RuntimeError(f"harness failed: {out.stderr.decode()[-2000:]}")
        result = dict(lines[-1])
        gib = result.get("completed", 0) * parse_size(args.conc_size) / (1 << 30)  # type: ignore[operator]
        result.update(
            state=args.state,
            workers=workers,
            server_pids=len(pids),
            server_cpu_s=round(cpu, 2),
            server_cpu_s_per_gib=round(cpu / gib, 3) if gib else None,
        )
        return result
    finally:
        stop_server(proc)
        shutil.rmtree(data_dir, ignore_errors=True)


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+)([KMG]?)", text.strip().upper().replace("IB", "").replace("B", ""))
    if not match:
        raise ValueError(text)
    return int(match.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[match.group(2)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--harness", type=Path, default=DEFAULT_HARNESS, help="path of tusbench.py")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conc-k", type=int, default=50)
    ap.add_argument("--conc-size", default="100M")
    ap.add_argument("--chunk", default="8M")
    ap.add_argument("--fsync", default="on_complete", choices=["never", "on_complete", "every_patch"])
    ap.add_argument("--verify", action="store_true", help="sha256-check every upload (slow)")
    ap.add_argument(
        "--state", default="redis", choices=["redis", "sqlite"], help="redis, or SQLite + file locks"
    )
    ap.add_argument("--max-time", type=float, default=1800.0)
    ap.add_argument("--out", type=Path, help="append JSON lines here")
    args = ap.parse_args(argv)
    if not args.harness.is_file():
        ap.error(f"harness not found: {args.harness} (set --harness or TUSBENCH)")
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        ap.error("redis-server is not installed")
    work = Path(tempfile.mkdtemp(prefix="tusd-bench-workers-"))
    redis_port = free_port()
    redis = subprocess.Popen(
        [
            redis_bin,
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(work),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results: list[dict[str, object]] = []
    try:
        wait_port(redis_port)
        redis_url = f"redis://127.0.0.1:{redis_port}/0" if args.state == "redis" else None
        for round_no in range(args.rounds):
            order = (1, 2) if round_no % 2 == 0 else (2, 1)
            for workers in order:
                result = run_once(args, workers, round_no, redis_url, work)
                results.append(result)
                line = json.dumps(result)
                print(line, flush=True)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(line + "\n")
    finally:
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    summarize(results)
    return 0 if all(r.get("ok") for r in results) else 1


def summarize(results: list[dict[str, object]]) -> None:
    by: dict[int, list[float]] = {1: [], 2: []}
    cpu: dict[int, list[float]] = {1: [], 2: []}
    rounds: dict[int, dict[int, float]] = {}
    for r in results:
        w = int(r["workers"])  # type: ignore[call-overload]
        by[w].append(float(r["value"]))  # type: ignore[arg-type]
        if r.get("server_cpu_s_per_gib") is not None:
            cpu[w].append(float(r["server_cpu_s_per_gib"]))  # type: ignore[arg-type]
        rounds.setdefault(int(r["round"]), {})[w] = float(r["value"])  # type: ignore[call-overload, arg-type]
    print("\n| workers | runs | median MiB/s | all runs MiB/s | median server CPU s/GiB |", file=sys.stderr)
    print("|---|---|---|---|---|", file=sys.stderr)
    for w in (1, 2):
        if by[w]:
            med_cpu = statistics.median(cpu[w]) if cpu[w] else float("nan")
            runs = ", ".join(f"{v:.0f}" for v in by[w])
            print(
                f"| {w} | {len(by[w])} | {statistics.median(by[w]):.1f} | {runs} | {med_cpu:.2f} |",
                file=sys.stderr,
            )
    paired = [r[2] / r[1] for r in rounds.values() if 1 in r and 2 in r and r[1] > 0]
    if by[1] and by[2]:
        ratio = statistics.median(by[2]) / statistics.median(by[1])
        print(
            f"\nratio of medians (2 workers / 1): {ratio:.2f}x; per-round ratios: "
            + ", ".join(f"{p:.2f}" for p in paired),
            file=sys.stderr,
        )


if __name__ == "__main__":
    sys.exit(main())
