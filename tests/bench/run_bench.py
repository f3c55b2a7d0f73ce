"""Benchmark tusd-py against a bare Tornado handler started in the same run.

Not a test. Starts, on loopback with temporary data dirs:

* ``bare``: ``tests/bench/bare_server.py`` (``stream_request_body`` that only
  appends to a file, 1 MiB reads) — the ceiling SPEC §11 ratios refer to;
* ``tusd-py``: ``python -m tusd_py serve --no-auth --read-size 1MiB`` (the
  default config otherwise: SQLite state, ``fsync = on_complete``);
* ``tusd-py-nofsync``: the same with ``--local-fsync never`` (the bare
  handler never fsyncs either), for the upload and concurrent scenarios
  (and ``tusd-py-wN-nofsync`` beside ``tusd-py-wN``);
* ``tusd-py-auth``: tusd-py with JWT auth on (every request carries one
  admin bearer token), for creations and HEADs;
* with ``--baseline REV``: ``tusd-py-before`` and ``tusd-py-auth-before``,
  the same two servers run from ``git archive REV`` (before/after of a
  change in the same run), for creations and HEADs;
* with ``--uvloop``: ``tusd-py-uvloop``, tusd-py on uvloop (every scenario);
* with ``--workers N`` (default 2, 0 = none): ``bare-wN`` (N bare handler
  processes on one ``SO_REUSEPORT`` port, the fair ceiling) and
  ``tusd-py-wN`` (``serve --workers N``), for the concurrent scenario; their
  ratios are to ``bare-wN``, and their CPU/RSS are not sampled (several
  processes);
* for the ``s3`` scenario (the S3 relay, ``tests/bench/s3_relay.py``): a moto
  server on a free loopback port and ``tusd-py-s3`` (tusd-py relaying to it,
  S3 defaults, ``--s3-threshold`` to lower the threshold for small
  ``--s3-size`` runs), measured against ``boto3`` (``upload_file`` of the same
  file to the same endpoint, default TransferConfig, in this process; its
  ratio base); with ``--s3-copy`` also ``tusd-py-s3-copy`` (``zero_copy =
  false``: the before/after of splicing into the part spool). Their order
  rotates per round; each tus object is compared with boto3's by multipart
  ETag, then both are deleted;

then runs ``--rounds`` rounds; in each round every scenario runs once per
server, servers interleaved (their order rotates per round). Before each
timed scenario the page cache is flushed (``os.sync``) so one server's
writeback does not land in another's time. Results: medians, ratios of
medians and paired (same-round) ratios to ``bare``, server CPU per GiB and
peak RSS from ``/proc``, a check of the SPEC §11 targets, and the stored
bytes verified (sha256 in round 1, sizes after). The report replaces the
block between the markers in ``tests/bench/RESULTS.md`` (``--results``); the
report itself is :mod:`tests.bench.bench_report`.

One line, deterministic (fixed sizes, seeds and order)::

    .venv/bin/python tests/bench/run_bench.py   # the project venv: tornado, boto3, moto
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


from tests.bench import s3_relay  # noqa: E402
from tests.bench.bench_report import (  # noqa: E402
    BOTO,
    GIB,
    MIB,
    S3_COPY,
    S3_SERVER,
    Record,
    RunInfo,
    load_jsonl,
    loadavg,
    report,
    write_results,
)
from tusd_py.cli.benchmark import scenarios  # noqa: E402
from tusd_py.cli.benchmark.loadclient import Pattern  # noqa: E402
from tusd_py.cli.benchmark.scenarios import Result  # noqa: E402
from tusd_py.core.config import parse_size  # noqa: E402

SCENARIOS = ("create", "head", "small", "upload", "chunked", "concurrent", "s3")
UPLOAD_SCENARIOS = frozenset({"small", "upload", "chunked"})


@dataclass
class Server:
    """One server process under test."""

    name: str
    cmd: list[str]
    data_dir: Path
    uploads_dir: Path
    log_path: Path
    port: int
    health_path: str
    scenarios: frozenset[str]
    process: subprocess.Popen[bytes] | None = None
    #: Request headers of every request (the bearer token of auth variants).
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    #: Extra environment of the server process.
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    #: Where ``tusd_py`` is imported from (a ``--baseline`` export or this checkout).
    source: Path = REPO
    #: Identical processes started (bare handlers sharing a port with SO_REUSEPORT).
    processes: int = 1
    #: False: several processes; CPU and RSS are not sampled.
    sampled: bool = True
    extra_processes: list[subprocess.Popen[bytes]] = dataclasses.field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/files/"

    @property
    def pid(self) -> int | None:
        """The process sampled for CPU and RSS (None: not sampled)."""
        assert self.process is not None
        return self.process.pid if self.sampled else None

    def file_for(self, url: str) -> Path:
        return self.uploads_dir / urllib.parse.urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: HMAC secret of the auth variants (a benchmark-only value).
BENCH_SECRET = "tusd-py-bench-secret-0123456789abcdef"
CREATE_HEAD = frozenset({"create", "head"})


def bench_token() -> str:
    """An admin bearer token for :data:`BENCH_SECRET` (admin: no rate limits)."""
    import jwt

    claims = {"sub": "bench", "tier": "admin", "iat": int(time.time()), "exp": int(time.time()) + 7 * 86400}
    return jwt.encode(claims, BENCH_SECRET, algorithm="HS256")


def export_baseline(rev: str, work: Path) -> Path:
    """``git archive rev`` of this repository, unpacked under ``work``."""
    dest = work / f"baseline-{rev}"
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def make_servers(work: Path, args: argparse.Namespace) -> list[Server]:
    tusd_args: Sequence[str] = args.tusd_arg
    bare_cmd = [sys.executable, str(REPO / "tests" / "bench" / "bare_server.py"), "--read-size", str(MIB)]
    servers = [
        Server(
            name="bare",
            cmd=[*bare_cmd, "--data-dir", str(work / "bare")],
            data_dir=work / "bare",
            uploads_dir=work / "bare",
            log_path=work / "bare.log",
            port=free_port(),
            health_path="/files/0",
            scenarios=frozenset(SCENARIOS),
        )
    ]
    auth_env = {"TUSD_PY_AUTH_SECRET": BENCH_SECRET}
    auth_headers = {"Authorization": f"Bearer {bench_token()}"}
    # (name, serve arguments, scenarios, auth, source)
    variants: list[tuple[str, list[str], frozenset[str], bool, Path]] = [
        ("tusd-py", [], frozenset(SCENARIOS), False, REPO)
    ]
    if not args.no_nofsync:
        nofsync_scenarios = UPLOAD_SCENARIOS | {"concurrent"}
        variants.append(("tusd-py-nofsync", ["--local-fsync", "never"], nofsync_scenarios, False, REPO))
    if not args.no_auth_variant:
        variants.append(("tusd-py-auth", [], CREATE_HEAD, True, REPO))
    if args.baseline:
        before = export_baseline(args.baseline, work)
        variants.append(("tusd-py-before", [], CREATE_HEAD, False, before))
        if not args.no_auth_variant:
            variants.append(("tusd-py-auth-before", [], CREATE_HEAD, True, before))
    if args.uvloop:
        variants.append(
            ("tusd-py-uvloop", ["--server-event-loop", "uvloop"], frozenset(SCENARIOS), False, REPO)
        )
    if args.workers > 1:
        n = args.workers
        data = work / f"bare-w{n}"
        servers.append(
            Server(
                name=f"bare-w{n}",
                cmd=[*bare_cmd, "--data-dir", str(data), "--reuse-port"],
                data_dir=data,
                uploads_dir=data,
                log_path=work / f"bare-w{n}.log",
                port=free_port(),
                health_path="/files/0",
                scenarios=frozenset({"concurrent"}),
                processes=n,
                sampled=False,
            )
        )
        variants.append((f"tusd-py-w{n}", ["--workers", str(n)], frozenset({"concurrent"}), False, REPO))
        if not args.no_nofsync:
            variants.append(
                (f"tusd-py-w{n}-nofsync", ["--workers", str(n), "--local-fsync", "never"],
                 frozenset({"concurrent"}), False, REPO)
            )  # fmt: skip
    for name, extra, allowed, auth, source in variants:
        data = work / name
        servers.append(
            Server(
                name=name,
                cmd=[sys.executable, "-m", "tusd_py", "serve", *([] if auth else ["--no-auth"]),
                     "--host", "127.0.0.1", "--data-dir", str(data), "--read-size", "1MiB",
                     *extra, *tusd_args],
                data_dir=data,
                uploads_dir=data / "uploads",
                log_path=work / f"{name}.log",
                port=free_port(),
                health_path="/healthz",
                scenarios=allowed,
                headers=auth_headers if auth else {},
                env=auth_env if auth else {},
                source=source,
                sampled="--workers" not in extra,
            )
        )  # fmt: skip
    for server in servers:
        server.cmd += ["--port", str(server.port)]
    return servers


@contextmanager
def running(server: Server, work: Path, timeout: float = 30.0) -> Iterator[Server]:
    """Start ``server``; wait until it answers HTTP; stop it (SIGTERM) at exit."""
    env = dict(os.environ, PYTHONPATH=str(server.source), **server.env)
    with server.log_path.open("wb") as log:
        server.process = subprocess.Popen(server.cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
        server.extra_processes = [
            subprocess.Popen(server.cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
            for _ in range(server.processes - 1)
        ]
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} exited: {server.log_path.read_text()[-2000:]}")
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{server.port}{server.health_path}", method="HEAD"
                )
                urllib.request.urlopen(req, timeout=2).close()
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{server.name} did not start within {timeout}s") from None
                time.sleep(0.1)
        while server.extra_processes:  # every process of a shared port listens
            listening = server.log_path.read_text(errors="replace").count("listening on")
            if listening >= server.processes:
                break
            if any(p.poll() is not None for p in server.extra_processes) or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{server.name}: not all processes listen: {server.log_path.read_text()[-2000:]}"
                )
            time.sleep(0.1)
        yield server
    finally:
        for process in [server.process, *server.extra_processes]:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for _ in range(1 << 30):
            block = f.read(4 * MIB)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def verify(server: Server, result: Result, size_each: int, full: bool) -> str:
    """Check what ``server`` stored for ``result``'s uploads (sha256 when ``full``)."""
    if not result.seeds:
        return "skipped"
    bad = 0
    for url, seed in zip(result.urls, result.seeds, strict=True):
        path = server.file_for(url)
        if not path.exists() or path.stat().st_size != size_each:
            bad += 1
        elif full and file_sha256(path) != Pattern(seed).sha256(size_each):
            bad += 1
    kind = "sha256" if full else "size"
    return f"{kind} ok" if not bad else f"{bad}/{len(result.seeds)} bad ({kind})"


def run(
    args: argparse.Namespace, work: Path, on_record: Callable[[Record], None], log_errors: dict[str, int]
) -> list[Record]:
    """All rounds; ``on_record`` sees each record as soon as it exists.

    ``log_errors`` receives, per server, the number of 5xx/error lines it logged.
    """
    servers = make_servers(work, args)
    records: list[Record] = []
    plans: dict[str, tuple[Callable[[Server], Result], int]] = {
        "create": (lambda s: scenarios.measure_create(s.endpoint, s.headers, args.create_n, pid=s.pid), 0),
        "head": (lambda s: scenarios.measure_head(s.endpoint, s.headers, args.head_n, pid=s.pid), 0),
        "small": (
            lambda s: scenarios.measure_upload(s.endpoint, s.headers, args.small_size, pid=s.pid),
            args.small_size,
        ),
        "upload": (
            lambda s: scenarios.measure_upload(s.endpoint, s.headers, args.single_size, pid=s.pid),
            args.single_size,
        ),
        "chunked": (
            lambda s: scenarios.measure_upload(
                s.endpoint, s.headers, args.single_size, chunk=args.chunk, pid=s.pid
            ),
            args.single_size,
        ),
        "concurrent": (
            lambda s: scenarios.measure_concurrent(
                s.endpoint, s.headers, args.conc_k, args.conc_size, chunk=args.chunk, pid=s.pid
            ),
            args.conc_size,
        ),
    }
    with ExitStack() as stack:
        relay = stack.enter_context(s3_setup(work, args)) if "s3" in args.scenarios else None
        if relay is not None:
            servers += relay.servers
        for server in servers:
            stack.enter_context(running(server, work))
        for rnd in range(1, args.rounds + 1):
            shift = (rnd - 1) % len(servers)
            order = servers[shift:] + servers[:shift]
            for name in args.scenarios:
                if name == "s3":
                    assert relay is not None
                    for record in s3_round(relay, rnd):
                        records.append(record)
                        on_record(record)
                    continue
                measure, size_each = plans[name]
                for server in order:
                    if name not in server.scenarios:
                        continue
                    os.sync()
                    result = measure(server)
                    record = Record(rnd, server.name, name, result)
                    record.verify = verify(server, result, size_each, full=rnd == 1)
                    scenarios.cleanup(server.endpoint, server.headers, result.urls)
                    records.append(record)
                    on_record(record)
        for server in servers:
            log_errors[server.name] = _server_errors(server)
    return records


@dataclass
class S3Relay:
    """The ``s3`` scenario's parts: moto, the bucket, the file, the servers."""

    servers: list[Server]
    client: Any
    source: Path
    size: int


@contextmanager
def s3_setup(work: Path, args: argparse.Namespace) -> Iterator[S3Relay]:
    """A moto server, its bucket, the ``--s3-size`` file and the (not yet
    started) servers relaying to it: ``tusd-py-s3``, and with ``--s3-copy``
    ``tusd-py-s3-copy`` (zero-copy off); moto stops at exit."""
    from tests import services

    source = work / "s3-payload.bin"
    s3_relay.make_file(source, args.s3_size)
    with services.moto_server() as endpoint:
        client = s3_relay.boto_client(endpoint)
        client.create_bucket(Bucket=s3_relay.BUCKET)
        env = s3_relay.tusd_env(endpoint, threshold=args.s3_threshold)
        servers = []
        for name, extra_env in [
            (S3_SERVER, {}),
            *([(S3_COPY, {"TUSD_PY_SERVER_ZERO_COPY": "false"})] if args.s3_copy else []),
        ]:
            data = work / name
            port = free_port()
            servers.append(Server(
                name=name,
                cmd=[sys.executable, "-m", "tusd_py", "serve", "--no-auth", "--host", "127.0.0.1",
                     "--data-dir", str(data), "--read-size", "1MiB", *args.tusd_arg, "--port", str(port)],
                data_dir=data,
                uploads_dir=data / "uploads",
                log_path=work / f"{name}.log",
                port=port,
                health_path="/healthz",
                scenarios=frozenset({"s3"}),
                env={**env, **extra_env},
            ))  # fmt: skip
        try:
            yield S3Relay(servers, client, source, args.s3_size)
        finally:
            source.unlink(missing_ok=True)


def s3_round(relay: S3Relay, rnd: int) -> list[Record]:
    """One round of the ``s3`` scenario: each tus upload and boto3's, in an
    order that rotates per round; each tus object is compared with boto3's
    (multipart ETag), then deleted."""
    sides: list[Server | None] = [*relay.servers, None]  # None: boto3
    shift = (rnd - 1) % len(sides)
    records: list[Record] = []
    uploads: dict[str, str] = {}
    for server in sides[shift:] + sides[:shift]:
        os.sync()
        if server is None:
            result = s3_relay.measure_boto(relay.client, relay.source, relay.size)
            records.append(Record(rnd, BOTO, "s3", result))
            continue
        result, upload_id = s3_relay.measure_tusd(server.port, server.pid, relay.source, relay.size)
        records.append(Record(rnd, server.name, "s3", result))
        if upload_id is not None:
            uploads[server.name] = upload_id
    boto_ok = all(r.result.ok for r in records if r.server == BOTO)
    for record in records:
        upload_id = uploads.get(record.server)
        if upload_id is not None and boto_ok:
            same = s3_relay.same_etag(relay.client, upload_id, s3_relay.BOTO_KEY)
            record.verify = "etag ok" if same else "bad (multipart ETag differs from boto3's)"
    for key in [*uploads.values(), s3_relay.BOTO_KEY]:
        relay.client.delete_object(Bucket=s3_relay.BUCKET, Key=key)
    return records


def _progress_line(r: Record) -> str:
    res = r.result
    usage = res.usage
    cpu = f" cpu {res.cpu_per_gib:.2f}s/GiB" if res.cpu_per_gib is not None else ""
    rss = f" rss {usage.rss_peak_kib / 1024:.0f}MiB" if usage else ""
    err = f" ERR {res.errors}: {res.first_error}" if res.errors else ""
    value = f"{res.value:.1f} {res.unit}"
    return f"round {r.round} {r.server:<16} {res.scenario} {res.variant}: {value}{cpu}{rss} [{r.verify}]{err}"


def _server_errors(server: Server) -> int:
    """Lines in a server's log with a 5xx status or error level."""
    count = 0
    for line in server.log_path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if int(rec.get("status") or 0) >= 500 or rec.get("level") in ("error", "critical"):
            count += 1
    return count


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _scenarios(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        if n not in SCENARIOS:
            raise argparse.ArgumentTypeError(f"unknown scenario {n!r}; choose from {', '.join(SCENARIOS)}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--scenarios", type=_scenarios, default=list(SCENARIOS), help=",".join(SCENARIOS))
    parser.add_argument("--single-size", type=_size, default=GIB, help="upload/chunked: bytes (1GiB)")
    parser.add_argument(
        "--small-size", type=_size, default=100 * MIB, help="small: bytes, for RSS growth (100MiB)"
    )
    parser.add_argument("--chunk", type=_size, default=8 * MIB, help="chunked/concurrent PATCH size (8MiB)")
    parser.add_argument("--conc-k", type=int, default=20, help="concurrent: uploads at once (20)")
    parser.add_argument("--conc-size", type=_size, default=50 * MIB, help="concurrent: bytes each (50MiB)")
    parser.add_argument("--s3-size", type=_size, default=GIB, help="s3: bytes of the relayed file (1GiB)")
    parser.add_argument(
        "--s3-threshold",
        type=_size,
        help="s3: tusd-py's s3.threshold (default: the server's, 100MiB; uploads up to it stay on disk)",
    )
    parser.add_argument(
        "--s3-copy", action="store_true", help="s3: also run tusd-py-s3-copy (zero_copy off), before/after"
    )
    parser.add_argument("--create-n", type=int, default=500, help="create: creations per run (500)")
    parser.add_argument("--head-n", type=int, default=2000, help="head: HEADs per run (2000)")
    parser.add_argument("--tusd-arg", action="append", default=[], help="extra `tusd-py serve` argument")
    parser.add_argument(
        "--no-nofsync", action="store_true", help="skip the tusd-py --local-fsync never server"
    )
    parser.add_argument(
        "--baseline", metavar="REV", help="also run tusd-py from git revision REV (before/after, create/head)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="concurrent: N bare processes vs serve --workers N (2; 0 = skip)",
    )
    parser.add_argument(
        "--uvloop",
        action="store_true",
        help="also run tusd-py with [server] event_loop = uvloop (needs uvloop)",
    )
    parser.add_argument("--no-auth-variant", action="store_true", help="skip the JWT-auth tusd-py server")
    parser.add_argument("--work-dir", type=Path, help="where data dirs and logs go (default: a temp dir)")
    parser.add_argument(
        "--results", type=Path, default=REPO / "tests" / "bench" / "RESULTS.md", help="report file to update"
    )
    parser.add_argument("--no-results", action="store_true", help="print the report only")
    parser.add_argument("--json-out", type=Path, help="also write every result as JSON lines here")
    parser.add_argument(
        "--report-from", type=Path, metavar="JSONL", help="rebuild the report from a --json-out file; no run"
    )
    args = parser.parse_args(argv)
    if args.report_from:
        info, records = load_jsonl(args.report_from)
    else:
        command = ".venv/bin/python tests/bench/run_bench.py" + "".join(
            " " + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
        )
        info = RunInfo.begin(args, command)
        records = measure(args, info)
    block = report(records, info)
    print(block)
    if not args.no_results:
        write_results(args.results, block)
    return 0 if all(r.result.ok and "bad" not in r.verify for r in records) else 1


def measure(args: argparse.Namespace, info: RunInfo) -> list[Record]:
    """Run the benchmark; progress on stderr, records to ``--json-out`` as they come."""
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="tusd-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    out = args.json_out.open("w") if args.json_out else None

    def on_record(record: Record) -> None:
        print(_progress_line(record), file=sys.stderr, flush=True)
        if out is not None:
            out.write(json.dumps(record.to_dict()) + "\n")
            out.flush()

    started = time.monotonic()
    try:
        records = run(args, work, on_record, info.log_errors)
    finally:
        info.seconds = round(time.monotonic() - started, 1)
        info.load_after = loadavg()
        if out is not None:
            out.write(json.dumps({"run": dataclasses.asdict(info)}) + "\n")
            out.close()
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return records


if __name__ == "__main__":
    sys.exit(main())
