"""Benchmark: a 1 GiB upload through tusd-py's S3 relay vs boto3's own
``upload_file`` of the same bytes to the same S3 endpoint, in one run.

Starts its own moto server and ``python -m tusd_py serve`` (this checkout,
defaults: 100 MiB threshold, 8 MiB parts, 4 concurrent part uploads, 1 MiB
reads), then alternates the two uploads ``--rounds`` times and prints medians
and the paired ratio tusd-py / boto3 (SPEC §11 target: >= 0.8). The tus
upload is timed from POST to the final 204, which includes
CompleteMultipartUpload; boto3 uses its default TransferConfig (8 MiB parts,
10 threads) and the same client settings as tusd-py. Both objects' multipart
ETags are compared (same part size, so equal ETags mean equal bytes).

    python tests/bench/s3_relay.py [--size-mib 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
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

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import botocore.config  # noqa: E402
from boto3.s3.transfer import TransferConfig  # noqa: E402

from tests import services  # noqa: E402

MIB = 1 << 20


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_file(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        for _ in range(size // (64 * MIB)):
            f.write(os.urandom(64 * MIB))
        f.write(os.urandom(size % (64 * MIB)))


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mib * MIB
    work = Path(tempfile.mkdtemp(prefix="tusd-s3-bench-"))
    source = work / "payload.bin"
    make_file(source, size)
    bucket = "bench"
    with services.moto_server() as endpoint:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            config=botocore.config.Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                max_pool_connections=20,
            ),
        )
        s3.create_bucket(Bucket=bucket)
        port = services.free_port()
        env = dict(os.environ)
        env.update(
            {
                "PYTHONPATH": str(ROOT),
                "TUSD_PY_S3_BUCKET": bucket,
                "TUSD_PY_S3_ENDPOINT_URL": endpoint,
                "TUSD_PY_S3_REGION": "us-east-1",
                "TUSD_PY_S3_PATH_STYLE": "true",
                "TUSD_PY_S3_ACCESS_KEY_ID": "bench",
                "TUSD_PY_S3_SECRET_ACCESS_KEY": "bench",
            }
        )
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
                start = time.perf_counter()
                s3.upload_file(str(source), bucket, "boto3-copy", Config=TransferConfig())
                boto_times.append(time.perf_counter() - start)
                tus_etag = s3.head_object(Bucket=bucket, Key=upload_id)["ETag"]
                boto_etag = s3.head_object(Bucket=bucket, Key="boto3-copy")["ETag"]
                same = "same ETag" if tus_etag == boto_etag else f"ETAG DIFFERS {tus_etag} {boto_etag}"
                print(
                    f"round {round_no + 1}: tusd-py {args.size_mib / tus_times[-1]:.0f} MiB/s, "
                    f"boto3 {args.size_mib / boto_times[-1]:.0f} MiB/s, "
                    f"server CPU {cpu[-1] / (size / (1 << 30)):.2f} s/GiB, {same}",
                    flush=True,
                )
                s3.delete_object(Bucket=bucket, Key=upload_id)
                s3.delete_object(Bucket=bucket, Key="boto3-copy")
        finally:
            server.terminate()
            server.wait(30)
    ratios = [b / t for t, b in zip(tus_times, boto_times, strict=True)]
    print(
        f"median: tusd-py {args.size_mib / statistics.median(tus_times):.0f} MiB/s, "
        f"boto3 upload_file {args.size_mib / statistics.median(boto_times):.0f} MiB/s, "
        f"paired ratio tusd-py/boto3 median {statistics.median(ratios):.2f} "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f}), "
        f"server CPU {statistics.median(cpu) / (size / (1 << 30)):.2f} s/GiB"
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
