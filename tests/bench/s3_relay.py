"""Benchmark: a 1 GiB upload through tusd-py's S3 relay vs boto3's own
``upload_file`` of the same bytes to the same S3 endpoint, in one run.

Starts its own moto server and ``python -m tusd_py serve`` (this checkout,
defaults: 100 MiB threshold, 8 MiB parts, 4 concurrent part uploads, 1 MiB
reads), then alternates the two uploads ``--rounds`` times and prints medians
and the paired ratio tusd-py / boto3 (SPEC §11 target: >= 0.8; issue 18:
>= 1.0). The tus upload is timed from POST to the final 204, which includes
CompleteMultipartUpload; boto3 uses its default TransferConfig (8 MiB parts,
10 threads) and the same client settings as tusd-py. Both objects' multipart
ETags are compared (same part size, so equal ETags mean equal bytes).

    python tests/bench/s3_relay.py [--size-mib 1024] [--rounds 3]

The same measurement is the ``s3`` scenario of ``tests/bench/run_bench.py``,
which imports the pieces below (:func:`boto_client`, :func:`tusd_env`,
:func:`measure_tusd`, :func:`measure_boto`, :func:`same_etag`).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import botocore.config  # noqa: E402
from boto3.s3.transfer import TransferConfig  # noqa: E402

from tests import services  # noqa: E402
from tusd_py.cli.benchmark.procstat import ProcSampler  # noqa: E402
from tusd_py.cli.benchmark.scenarios import Result, fmt_size  # noqa: E402

MIB = 1 << 20
GIB = 1 << 30
#: The bucket both uploads go to, the key of boto3's copy, the dummy credentials.
BUCKET = "bench"
BOTO_KEY = "boto3-copy"
CREDENTIALS = "bench"
#: ``Result.scenario`` of both sides.
SCENARIO = "s3 relay"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_file(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        for _ in range(size // (64 * MIB)):
            f.write(os.urandom(64 * MIB))
        f.write(os.urandom(size % (64 * MIB)))


def boto_client(endpoint: str) -> Any:
    """The boto3 client of the comparison: path style, the bench credentials,
    checksums only when required (as tusd-py's client), 20 connections."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS,
        aws_secret_access_key=CREDENTIALS,
        config=botocore.config.Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=20,
        ),
    )


def tusd_env(endpoint: str, bucket: str = BUCKET, threshold: int | None = None) -> dict[str, str]:
    """Environment of a ``tusd-py serve`` relaying to ``bucket`` at ``endpoint``
    (S3 defaults otherwise; ``threshold`` overrides ``s3.threshold``)."""
    env = {
        "TUSD_PY_S3_BUCKET": bucket,
        "TUSD_PY_S3_ENDPOINT_URL": endpoint,
        "TUSD_PY_S3_REGION": "us-east-1",
        "TUSD_PY_S3_PATH_STYLE": "true",
        "TUSD_PY_S3_ACCESS_KEY_ID": CREDENTIALS,
        "TUSD_PY_S3_SECRET_ACCESS_KEY": CREDENTIALS,
    }
    if threshold is not None:
        env["TUSD_PY_S3_THRESHOLD"] = str(threshold)
    return env


def tus_upload(port: int, path: Path, size: int) -> tuple[float, str]:
    """POST + one PATCH of the whole file; returns (seconds, upload id)."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600, blocksize=MIB)
    conn.request("POST", "/files/", headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(size)})
    res = conn.getresponse()
    res.read()
    assert res.status == 201, res.status
    url = res.getheader("Location") or ""
    path_part = "/" + url.split("/", 3)[3] if url.startswith("http") else url
    with open(path, "rb") as body:
        conn.request(
            "PATCH",
            path_part,
            body=body,
            headers={
                "Tus-Resumable": "1.0.0",
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
                "Content-Length": str(size),
            },
        )
        res = conn.getresponse()
        res.read()
    assert res.status == 204, res.status
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed, path_part.rsplit("/", 1)[-1]


def boto_upload(s3: Any, source: Path, bucket: str = BUCKET, key: str = BOTO_KEY) -> float:
    """boto3 ``upload_file`` with its default TransferConfig; seconds."""
    start = time.perf_counter()
    s3.upload_file(str(source), bucket, key, Config=TransferConfig())
    return time.perf_counter() - start


def same_etag(s3: Any, key: str, other: str, bucket: str = BUCKET) -> bool:
    """Equal multipart ETags (same part size): the same bytes."""
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    return bool(etag == s3.head_object(Bucket=bucket, Key=other)["ETag"])


def result_of(seconds: float, size: int, usage: Any = None, error: str | None = None) -> Result:
    """The :class:`Result` of one upload of ``size`` bytes in ``seconds`` (MiB/s)."""
    return Result(
        scenario=SCENARIO,
        variant=f"{fmt_size(size)} to moto",
        value=size / MIB / seconds if seconds and error is None else 0.0,
        unit="MiB/s",
        seconds=round(seconds, 3),
        count=1,
        bytes=size,
        errors=0 if error is None else 1,
        first_error=error,
        usage=usage,
    )


def measure_tusd(port: int, pid: int | None, source: Path, size: int) -> tuple[Result, str | None]:
    """One tus upload of ``source`` (POST + one PATCH) with the server's CPU
    and memory sampled; the result and the upload id (None after an error)."""
    sampler = ProcSampler(pid) if pid else None
    try:
        with sampler if sampler is not None else contextlib.nullcontext():
            seconds, upload_id = tus_upload(port, source, size)
    except (AssertionError, OSError, http.client.HTTPException) as exc:
        return result_of(0.0, size, error=repr(exc)), None
    return result_of(seconds, size, sampler.usage if sampler else None), upload_id


def measure_boto(s3: Any, source: Path, size: int) -> Result:
    """One boto3 ``upload_file`` of ``source`` as :data:`BOTO_KEY`."""
    try:
        seconds = boto_upload(s3, source)
    except Exception as exc:  # botocore raises many kinds; the run records it
        return result_of(0.0, size, error=repr(exc))
    return result_of(seconds, size)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mib * MIB
    work = Path(tempfile.mkdtemp(prefix="tusd-s3-bench-"))
    source = work / "payload.bin"
    make_file(source, size)
    with services.moto_server() as endpoint:
        s3 = boto_client(endpoint)
        s3.create_bucket(Bucket=BUCKET)
        port = services.free_port()
        env = dict(os.environ, PYTHONPATH=str(ROOT), **tusd_env(endpoint))
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tusd_py",
                "serve",
                "--no-auth",
                "--port",
                str(port),
                "--data-dir",
                str(work / "data"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            tus_times: list[float] = []
            boto_times: list[float] = []
            cpu: list[float] = []
            for round_no in range(args.rounds):
                before = cpu_seconds(server.pid)
                elapsed, upload_id = tus_upload(port, source, size)
                cpu.append(cpu_seconds(server.pid) - before)
                tus_times.append(elapsed)
                boto_times.append(boto_upload(s3, source))
                same = "same ETag" if same_etag(s3, upload_id, BOTO_KEY) else "ETAG DIFFERS"
                print(
                    f"round {round_no + 1}: tusd-py {args.size_mib / tus_times[-1]:.0f} MiB/s, "
                    f"boto3 {args.size_mib / boto_times[-1]:.0f} MiB/s, "
                    f"server CPU {cpu[-1] / (size / GIB):.2f} s/GiB, {same}",
                    flush=True,
                )
                s3.delete_object(Bucket=BUCKET, Key=upload_id)
                s3.delete_object(Bucket=BUCKET, Key=BOTO_KEY)
        finally:
            server.terminate()
            server.wait(30)
    ratios = [b / t for t, b in zip(tus_times, boto_times, strict=True)]
    print(
        f"median: tusd-py {args.size_mib / statistics.median(tus_times):.0f} MiB/s, "
        f"boto3 upload_file {args.size_mib / statistics.median(boto_times):.0f} MiB/s, "
        f"paired ratio tusd-py/boto3 median {statistics.median(ratios):.2f} "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f}), "
        f"server CPU {statistics.median(cpu) / (size / GIB):.2f} s/GiB"
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
