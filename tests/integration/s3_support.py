"""Helpers shared by the S3 relay tests: buckets on the moto server, config
overrides with a lowered threshold, direct boto3 access for assertions."""

from __future__ import annotations

import os
import random
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import botocore.config

from tests import services
from tests.integration.procs import server_errors

MIB = 1 << 20
#: Lowered thresholds so tests move tens of MiB, not hundreds.
THRESHOLD = 12 * MIB
PART = 5 * MIB


def client(endpoint: str) -> Any:
    """A boto3 S3 client for assertions (path style, dummy credentials)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


def new_bucket(endpoint: str) -> str:
    """Create a fresh bucket (so ListMultipartUploads sees only this test's uploads)."""
    name = f"tusd-{secrets.token_hex(6)}"
    client(endpoint).create_bucket(Bucket=name)
    return name


def overrides(endpoint: str, bucket: str, **extra: Any) -> dict[str, Any]:
    """``config_overrides`` routing uploads above 12 MiB to S3 in 5 MiB parts."""
    values: dict[str, Any] = {
        "s3.bucket": bucket,
        "s3.endpoint_url": endpoint,
        "s3.region": "us-east-1",
        "s3.path_style": True,
        "s3.access_key_id": "testing",
        "s3.secret_access_key": "testing",
        "s3.threshold": THRESHOLD,
        "s3.part_size": PART,
        "s3.min_part_size": PART,
        "s3.spool_parts": 2,
        "s3.max_attempts": 2,
        "s3.timeout": 5.0,
    }
    values.update({k if "." in k else f"s3.{k}": v for k, v in extra.items()})
    return values


def env_for(config: dict[str, Any]) -> dict[str, str]:
    """The same settings as ``TUSD_PY_*`` environment variables (subprocess servers)."""
    out = {}
    for dotted, value in config.items():
        section, key = dotted.split(".", 1)
        text = str(value).lower() if isinstance(value, bool) else str(value)
        out[f"TUSD_PY_{section}_{key}".upper()] = text
    return out


def object_bytes(endpoint: str, bucket: str, key: str) -> bytes:
    return bytes(client(endpoint).get_object(Bucket=bucket, Key=key)["Body"].read())


def multipart_uploads(endpoint: str, bucket: str) -> list[dict[str, Any]]:
    return list(client(endpoint).list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def pattern(size: int, seed: int = 1) -> bytes:
    """Deterministic pseudo-random test bytes."""
    return random.Random(seed).randbytes(size)


ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def server_process(data_dir: Path, settings: dict[str, Any]) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``python -m tusd_py serve`` from this checkout on a free loopback port;
    yields ``(process, base_url)`` once /healthz answers. Killed at exit; its
    stderr goes to ``<data_dir>/../server-<port>.log``, which must then show no
    500, traceback or orphaned task failure (:func:`procs.server_errors`)."""
    port = services.free_port()
    env = dict(os.environ)
    env.update(env_for(settings))
    env["PYTHONPATH"] = str(ROOT)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"server-{port}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tusd_py",
                "serve",
                "--no-auth",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("tusd-py serve did not start") from None
                time.sleep(0.1)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    bad = server_errors(log_path)
    assert not bad, "\n".join(bad)
