"""Index throughput and worker memory: a generated CSV uploaded and indexed,
beside ``sqlite-utils insert DB T FILE --csv`` on the same file in the same run.

Generates a CSV of ``--size`` bytes (10 columns: integers, floats, text; the
file is written in 1 MiB pieces), starts ``tusd-py serve --no-auth
--jobs-workers 0`` and one ``tusd-py worker`` from this checkout with a
temporary data dir, uploads the file with tus (1 MiB PATCH pieces, declared
``text/csv`` so it is auto-indexed), and times from the last byte stored to
the job's ``COMPLETED`` (rows/s); the worker's peak RSS is ``VmHWM`` from
``/proc``. Then runs ``sqlite-utils insert`` on the same file and reports its
rows/s and peak RSS (``wait4`` rusage). Prints one Markdown row per
measurement as soon as it is taken (paste into tests/bench/RESULTS.md), with
the load average then (other work on the machine skews every figure), and
at the end the worker's peak RSS growth from the first size to the last.

With ``--before REF`` the worker of another revision (``git archive REF``
into a temporary directory) indexes the first size too, in the same run:
a before/after figure for a change to the index job.

    python tests/bench/bench_index.py --sizes 100M,1G --before main

Goal (issue 15): ≥ 0.8× sqlite-utils' rows/s, worker peak RSS < 150 MiB and
flat between 100 MiB and 1 GiB.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.bench_index_rss import free_port, parse_size, proc_kib, wait_ready  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PIECE = 1 << 20


def make_csv(path: Path, size: int, seed: int = 7) -> int:
    """Write about ``size`` bytes of CSV; returns the number of data rows."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    rows = 0
    written = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        header = "id,a,b,c,d,e,name,city,note,flag\n"
        out.write(header)
        written += len(header)
        while written < size:
            lines = []
            for _ in range(2000):
                line = (
                    f"{rows},{rng.randint(0, 10**6)},{rng.random():.6f},{rng.randint(-500, 500)},"
                    f"{rng.random() * 1000:.3f},{rng.randint(0, 9)},{rng.choice(words)}-{rows % 977},"
                    f'{rng.choice(words).title()},"note, {rows}",{rows % 2}\n'
                )
                lines.append(line)
                rows += 1
            chunk = "".join(lines)
            out.write(chunk)
            written += len(chunk)
    return rows


def request(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request(method, path, body=body, headers={"Tus-Resumable": "1.0.0", **headers})
    res = conn.getresponse()
    res.read()
    conn.close()
    return res


def upload(port: int, path: Path) -> str:
    size = path.stat().st_size
    meta = ",".join(
        f"{k} {base64.b64encode(v).decode()}"
        for k, v in (("filename", b"bench.csv"), ("filetype", b"text/csv"))
    )
    res = request(port, "POST", "/files/", {"Upload-Length": str(size), "Upload-Metadata": meta})
    assert res.status == 201, res.status
    location = res.getheader("Location") or ""
    file_path = "/files/" + location.rsplit("/", 1)[-1]
    offset = 0
    with path.open("rb") as f:
        while offset < size:
            piece = f.read(PIECE * 16)
            res = request(
                port, "PATCH", file_path,
                {"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}, piece,
            )  # fmt: skip
            assert res.status == 204, res.status
            offset += len(piece)
    return location.rsplit("/", 1)[-1]


def status(port: int, file_id: str) -> dict[str, object]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", f"/index-status/{file_id}")
    doc = json.loads(conn.getresponse().read())
    conn.close()
    return dict(doc)


def run_ours(csv_path: Path, rows: int, workdir: Path, root: Path = ROOT) -> tuple[float, int]:
    """(rows/s, worker peak RSS KiB) of the checkout at ``root``."""
    port = free_port()
    data = workdir / f"data-{abs(hash(root))}"
    common = ["--data-dir", str(data)]
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    tusd = [sys.executable, "-m", "tusd_py"]
    serve = subprocess.Popen(
        [*tusd, "serve", "--no-auth", "--port", str(port), "--jobs-workers", "0", *common],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    worker = subprocess.Popen(
        [*tusd, "worker", "--jobs-workers", "1", *common],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        wait_ready(port, serve)
        file_id = upload(port, csv_path)
        started = time.monotonic()
        while True:
            doc = status(port, file_id)
            jobs = doc.get("jobs") or []
            if jobs and jobs[-1]["status"] in ("COMPLETED", "FAILED"):  # type: ignore[index]
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        job = jobs[-1]  # type: ignore[index]
        assert job["status"] == "COMPLETED" and job["result"]["rows"] == rows, job
        return rows / elapsed, proc_kib(worker.pid, "VmHWM")
    finally:
        for proc in (worker, serve):
            proc.terminate()
            proc.wait(60)
        shutil.rmtree(data, ignore_errors=True)


def run_sqlite_utils(csv_path: Path, rows: int, workdir: Path) -> tuple[float, int]:
    """(rows/s, peak RSS KiB) of ``sqlite-utils insert DB T FILE --csv``."""
    binary = str(Path(sys.executable).with_name("sqlite-utils"))
    started = time.monotonic()
    proc = subprocess.Popen([binary, "insert", str(workdir / "su.db"), "t", str(csv_path), "--csv"])
    _, code, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - started
    assert code == 0, code
    return rows / elapsed, int(usage.ru_maxrss)


def export(ref: str, into: Path) -> Path:
    """A clean copy of revision ``ref`` of this repository under ``into``."""
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def row(text: str, rows: int, what: str, rate: float, rss_kib: int, base: float | None) -> None:
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    ratio = f"{rate / base:.2f}×" if base else "—"
    print(
        f"| {text} | {rows:,} | {what} | {rate:,.0f} | {rss_kib / 1024:.0f} MiB | {ratio} | {load} |",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100M,1G")
    parser.add_argument("--before", metavar="REF", help="also index the first size with revision REF")
    args = parser.parse_args()
    print("| CSV | rows | run | rows/s | peak RSS | ÷ sqlite-utils rows/s | load avg 1/5/15 min |")
    print("|---|---|---|---|---|---|---|")
    peaks: list[tuple[str, int]] = []
    with tempfile.TemporaryDirectory(prefix="bench-index-") as keep:
        before_root = export(args.before, Path(keep) / "before") if args.before else None
        for n, text in enumerate(args.sizes.split(",")):
            size = parse_size(text)
            with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
                workdir = Path(tmp)
                csv_path = workdir / "bench.csv"
                rows = make_csv(csv_path, size)
                results = []
                if before_root is not None and n == 0:
                    rate, peak = run_ours(csv_path, rows, workdir, before_root)
                    results.append((f"tusd-py worker, {args.before}", rate, peak))
                    print(f"# {text} {args.before}: {rate:,.0f} rows/s", file=sys.stderr, flush=True)
                ours, rss = run_ours(csv_path, rows, workdir)
                results.append(("tusd-py worker", ours, rss))
                peaks.append((text, rss))
                print(
                    f"# {text} worker: {ours:,.0f} rows/s, {rss / 1024:.0f} MiB", file=sys.stderr, flush=True
                )
                theirs, their_rss = run_sqlite_utils(csv_path, rows, workdir)
                for what, rate, peak in results:
                    row(text, rows, what, rate, peak, theirs)
                row(text, rows, "`sqlite-utils insert --csv`", theirs, their_rss, None)
    if len(peaks) > 1:
        (first, low), (last, high) = peaks[0], peaks[-1]
        print(
            f"\nworker peak RSS {first} → {last}: {low / 1024:.0f} → {high / 1024:.0f} MiB "
            f"({(high - low) / 1024:+.1f} MiB)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
