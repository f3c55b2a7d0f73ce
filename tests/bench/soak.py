#!/usr/bin/env python3
"""Soak benchmark: many clients, random aborts, resumes, deletes and
concatenations against every deployment shape at once, for minutes.

Not a test (pytest does not collect it). Starts, on 127.0.0.1 and free ports:

* a redis-server (``procs.RedisProcess``) and a moto S3 server
  (``services.moto_server``), a fresh bucket;
* ``tusd-py serve`` A and B and ``serve --workers 2`` C, all on that Redis
  (one prefix), that bucket and ONE shared data dir; uploads above 12 MiB go
  to S3 in 5 MiB parts (``s3_support.overrides``, GET proxied). Auth is on
  with one JWT per client (tier premium) so stream leases are exercised;
  ``--no-auth`` runs every client as the admin (no leases). Per-IP limits
  are off (every client is 127.0.0.1).

Then ``--clients`` threads of ``soak_client.SoakClient`` run for
``--duration`` seconds. RSS and open fds of every server process (C's
workers included) are sampled after the warm-up (240 s, or a quarter of a
shorter run), every ``--sample-every`` seconds (60) while the load runs, and
at the end; the report shows each process's RSS series and its growth over
the first and the second half of the run. At the end the clients stop, the servers get a
bounded time to become quiet, and leftovers are counted: Redis lock keys,
live stream leases, multipart uploads of uploads that were completed or
deleted, plus "Task exception was never retrieved" / 500 / traceback lines in
the server logs. Exits 1 if an invariant fails (see ``INVARIANTS``)::

    python3 tests/bench/soak.py --duration 600 --clients 50 [--seed N] [--sample-every 60] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from tests import services  # noqa: E402
from tests.bench.soak_client import SoakClient, Stats  # noqa: E402
from tests.bench.soak_report import print_text, report  # noqa: E402
from tests.integration import procs, tushttp  # noqa: E402
from tests.integration import s3_support as s3t  # noqa: E402
from tusd_py.auth.tokens import mint_token  # noqa: E402
from tusd_py.core.config import Config, load_config  # noqa: E402

PREFIX = "soak:"
#: Seconds of load before the first RSS sample the growth invariant starts
#: from. Per-minute series (RESULTS.md "Soak RSS: warm-up, not a leak") rise
#: 5–11 % in the first 3–4 minutes (executor threads started on demand, the
#: allocator's high-water mark) and stay flat after: the budget is about what
#: comes after that ramp. The report still prints the whole series.
WARMUP = 240.0
#: Longest wait for the servers to release everything once clients stop.
QUIET_TIMEOUT = 45.0
#: Longest wait for a client thread to finish its request after the stop.
JOIN_TIMEOUT = 130.0
NEVER_RETRIEVED = "Task exception was never retrieved"
_HEX = re.compile(r"\b[0-9a-f]{16,}\b")
_NUMBER = re.compile(r"\d+")
#: An access-log line's method and status.
_ACCESS = re.compile(r'"event": "Request", "request_id": "[^"]*", "method": "(\w+)",.*?"status": (\d+)')


class AuthServer(procs.ServerProcess):
    """``procs.ServerProcess`` with auth on (its ``launch`` always passes --no-auth)."""

    def launch(self) -> AuthServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "tusd_py", "serve", "--host", "127.0.0.1", "--port", "0"]
        cmd += ["--data-dir", str(self.data_dir), *self.args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=log, env=self.env, cwd=str(self.data_dir)
            )
        return self


def server_env(redis_url: str, endpoint: str, bucket: str, secret: str | None) -> dict[str, str]:
    env = s3t.env_for(s3t.overrides(endpoint, bucket, download="proxy"))
    env.update(
        TUSD_PY_REDIS_URL=redis_url,
        TUSD_PY_REDIS_PREFIX=PREFIX,
        TUSD_PY_THROTTLE_IP_CREATIONS_PER_MINUTE="0",
        TUSD_PY_THROTTLE_IP_REQUESTS_PER_MINUTE="0",
        # Clients create uploads faster than a person would; 0 = unlimited.
        TUSD_PY_THROTTLE_PREMIUM_CREATIONS_PER_MINUTE="0",
    )
    if secret:
        env["TUSD_PY_AUTH_SECRET"] = secret
    return env


# --- /proc sampling ------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and its direct children (the workers of ``--workers``)."""
    children: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                children += [int(c) for c in (task / "children").read_text().split()]
    return [pid, *sorted(set(children))]


#: ``/proc/<pid>/status`` fields sampled, and their keys in a sample: the
#: resident set and its parts (heap and other anonymous memory; mapped files
#: such as shared libraries and prometheus' multiprocess files; shared memory).
_STATUS_FIELDS = {
    "VmRSS:": "rss_kib",
    "RssAnon:": "anon_kib",
    "RssFile:": "file_kib",
    "RssShmem:": "shmem_kib",
}


def sample(servers: dict[str, procs.ServerProcess]) -> dict[str, dict[str, int]]:
    """``{process name: {"rss_kib", "anon_kib", "file_kib", "shmem_kib", "fds"}}``
    (0 / -1 when the process is gone); C's workers are ``C/w<pid>``."""
    out: dict[str, dict[str, int]] = {}
    for name, server in servers.items():
        for i, pid in enumerate(process_tree(server.pid)):
            label = name if i == 0 else f"{name}/w{pid}"
            figures = dict.fromkeys(_STATUS_FIELDS.values(), 0)
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    key = _STATUS_FIELDS.get(line.split(maxsplit=1)[0] if line else "")
                    if key:
                        figures[key] = int(line.split()[1])
            fds = -1
            with contextlib.suppress(OSError):
                fds = len(os.listdir(f"/proc/{pid}/fd"))
            out[label] = {**figures, "fds": fds}
    return out


def sample_until(
    servers: dict[str, procs.ServerProcess], stop: threading.Event, began: float, until: float, every: float
) -> list[tuple[float, dict[str, dict[str, int]]]]:
    """Sample now and then every ``every`` seconds until ``until`` seconds after
    ``began`` (monotonic), or until ``stop`` is set: ``[(seconds since began,
    sample)]``. Bounded: at most ``until / every + 1`` samples."""
    first = time.monotonic() - began
    series = [(first, sample(servers))]
    for k in range(1, int(until / every) + 2):
        due = first + k * every
        if due >= until or stop.wait(max(0.0, due - (time.monotonic() - began))):
            break
        series.append((time.monotonic() - began, sample(servers)))
    return series


# --- leftovers -----------------------------------------------------------------------


def leftovers(redis_url: str, endpoint: str, bucket: str, stats: Stats) -> dict[str, Any]:
    """Lock keys, leases (live and lapsed) and multipart uploads of finished/deleted uploads."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        locks = [k.decode() for k in client.scan_iter(match=f"{PREFIX}lock:*", count=1000)]
        now_ms = int(time.time() * 1000)
        live = lapsed = 0
        for key in client.scan_iter(match=f"{PREFIX}leases:*", count=1000):
            members = int(client.zcard(key))
            alive = int(client.zcount(key, f"({now_ms}", "+inf"))
            live, lapsed = live + alive, lapsed + members - alive
    finally:
        client.close()
    s3 = s3t.client(endpoint)
    pending: list[str] = []
    marker: dict[str, str] = {}
    for _page in range(100):
        page = s3.list_multipart_uploads(Bucket=bucket, **marker)
        pending += [u["Key"] for u in page.get("Uploads", [])]
        if not page.get("IsTruncated"):
            break
        marker = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}
    with stats.lock:
        finished = stats.completed | stats.deleted
    stale = sorted(k for k in pending if k.rsplit("/", 1)[-1] in finished)
    return {
        "locks": locks,
        "leases_live": live,
        "leases_lapsed": lapsed,
        "multipart_total": len(pending),
        "multipart_of_finished": stale,
    }


def quiet(redis_url: str, endpoint: str, bucket: str, stats: Stats) -> tuple[dict[str, Any], float]:
    """Poll (bounded) until no lock, live lease or stale multipart upload is left."""
    start = time.monotonic()
    found = leftovers(redis_url, endpoint, bucket, stats)
    while found["locks"] or found["leases_live"] or found["multipart_of_finished"]:
        if time.monotonic() - start > QUIET_TIMEOUT:
            break
        time.sleep(1.0)
        found = leftovers(redis_url, endpoint, bucket, stats)
    return found, time.monotonic() - start


def signature(line: str) -> str:
    """A log line without what varies between occurrences (ids, numbers, times)."""
    try:
        record = json.loads(line)
        text = f"{record.get('level')} {record.get('logger')}: {record.get('msg')}"
    except ValueError:
        text = line
    text = _HEX.sub("<id>", text.splitlines()[0] if text else text)
    return _NUMBER.sub("N", text)[:300]


def log_findings(servers: dict[str, procs.ServerProcess]) -> dict[str, Any]:
    """Per server: "never retrieved" and 500 counts, the error lines of
    ``procs.server_errors`` grouped by :func:`signature`, and every warning or
    error line grouped the same way (for the report, not an invariant)."""
    out: dict[str, Any] = {}
    for name, server in servers.items():
        text = ""
        with contextlib.suppress(OSError):
            text = server.log_path.read_text(errors="replace")
        bad = procs.server_errors(server.log_path)
        warnings = Counter(
            signature(line)
            for line in text.splitlines()
            if '"level": "warning"' in line or '"level": "error"' in line
        )
        statuses: Counter[str] = Counter()
        for line in text.splitlines():
            match = _ACCESS.search(line)
            if match and int(match.group(2)) >= 500:
                statuses[f"{match.group(1)} {match.group(2)}"] += 1
        out[name] = {
            "url": server.base_url,
            "access_5xx": dict(statuses),
            "never_retrieved": text.count(NEVER_RETRIEVED),
            "status_500": sum('"status": 500' in line for line in bad),
            "error_lines": len(bad),
            "errors": dict(Counter(signature(line) for line in bad).most_common(8)),
            "warnings": dict(warnings.most_common(10)),
        }
    return out


# --- the run -------------------------------------------------------------------------


@contextlib.contextmanager
def cluster(work: Path, auth: bool) -> Iterator[tuple[dict[str, procs.ServerProcess], str, str, str, Config]]:
    """Redis, moto, bucket and the three servers; everything stopped (by PID) at exit."""
    redis_proc = procs.RedisProcess(work / "redis")
    redis_proc.start()
    servers: dict[str, procs.ServerProcess] = {}
    try:
        with services.moto_server() as endpoint:
            bucket = s3t.new_bucket(endpoint)
            secret = secrets.token_hex(32) if auth else None
            env = server_env(redis_proc.url, endpoint, bucket, secret)
            kind = AuthServer if auth else procs.ServerProcess
            data = work / "data"
            for name, args in (("A", ()), ("B", ()), ("C", ("--workers", "2"))):
                servers[name] = kind(data, work / f"{name}.log", env, args)
            pids: set[int] = set()
            try:
                procs.start_all(list(servers.values()))
                pids = {p for s in servers.values() for p in process_tree(s.pid)}
                config = load_config(environ=env, overrides={"server.data_dir": str(data)})
                yield servers, redis_proc.url, endpoint, bucket, config
            finally:
                for server in servers.values():
                    server.stop()
                for pid in pids:  # a worker its supervisor did not take down
                    with contextlib.suppress(OSError):
                        if b"tusd_py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                            os.kill(pid, signal.SIGKILL)
    finally:
        redis_proc.stop()


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    with cluster(work, not args.no_auth) as (servers, redis_url, endpoint, bucket, config):
        bases = [s.base_url for s in servers.values()]
        options = tushttp.request("OPTIONS", bases[0] + "/files/")
        concat = "concatenation" in (options.header("Tus-Extension") or "")
        stats = Stats()
        stop = threading.Event()
        clients = []
        for i in range(args.clients):
            token = None if args.no_auth else mint_token(config, user=f"soak-{i}", tier="premium")
            client = SoakClient(i, bases, stats, stop, args.seed * 1000 + i, token)
            client.concat = concat
            clients.append(client)
        began = time.monotonic()
        for client in clients:
            client.start()
        warmup = min(WARMUP, args.duration / 4)
        stop.wait(warmup)
        series = sample_until(servers, stop, began, args.duration, args.sample_every)
        stop.wait(max(0.0, args.duration - (time.monotonic() - began)))
        stop.set()
        join_deadline = time.monotonic() + JOIN_TIMEOUT
        for client in clients:
            client.join(max(0.1, join_deadline - time.monotonic()))
        stuck = [c.name for c in clients if c.is_alive()]
        ran = time.monotonic() - began
        found, waited = quiet(redis_url, endpoint, bucket, stats)
        series.append((time.monotonic() - began, sample(servers)))
        alive = {name: s.proc is not None and s.proc.poll() is None for name, s in servers.items()}
    return report(args, stats, series, found, waited, ran, stuck, alive, log_findings(servers))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    ap.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the clients' random choices")
    ap.add_argument(
        "--sample-every", type=float, default=60.0, help="seconds between RSS samples (default 60)"
    )
    ap.add_argument("--json", action="store_true", help="print the report as one JSON object")
    ap.add_argument("--no-auth", action="store_true", help="serve --no-auth (no stream leases)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs) and print its path")
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.duration <= 0 or not 1 <= args.clients <= 500 or args.sample_every < 1:
        ap.error("--duration must be positive, --clients 1..500 and --sample-every >= 1")
    if shutil.which("redis-server") is None:
        ap.error("redis-server is not installed")
    work = Path(tempfile.mkdtemp(prefix="tusd-soak-"))
    try:
        result = run(args, work)
    finally:
        if args.keep:
            print(f"work dir (logs): {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_text(result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
