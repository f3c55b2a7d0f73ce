"""``Metrics`` in prometheus-client multiprocess mode (what each ``serve --workers``
child runs), checked through the shared files themselves.

It runs in a child interpreter: multiprocess mode switches prometheus-client's
value class for the whole process, which must not leak into this one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import asyncio, json, os
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from tusd_py.ops.lifecycle import Lifecycle
from tusd_py.ops.metrics import SHARE_INTERVAL, Metrics

def shared():
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=os.environ["PROMETHEUS_MULTIPROC_DIR"])
    return {s.name: s.value for family in registry.collect() for s in family.samples if not s.labels}

async def main():
    lifecycle = Lifecycle()
    metrics = Metrics()
    metrics.track(lifecycle)
    seen = {}
    token = lifecycle.stream_started(lambda reason: None)
    metrics.bytes_received += 10  # a received chunk
    seen["during"] = shared()
    lifecycle.stream_ended(token)  # then nothing: no request answered, no scrape
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20 * SHARE_INTERVAL
    while shared().get("tusd_py_active_streams") != 0 and loop.time() < deadline:
        await asyncio.sleep(SHARE_INTERVAL / 5)
    seen["after"] = shared()
    metrics.observe_upload("upload.created")
    metrics.observe_request("PATCH", 204, None, 0.2)
    seen["scrape"] = metrics.exposition()[0].decode()
    print(json.dumps(seen))

asyncio.run(main())
"""


def test_a_workers_series_reach_the_shared_files(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["during"]["tusd_py_active_streams"] == 1
    assert seen["during"]["tusd_py_bytes_received_total"] == 10
    # the stream ended after the last thing this process did: the files still catch up
    assert seen["after"]["tusd_py_active_streams"] == 0
    assert seen["after"]["tusd_py_draining"] == 0
    scrape = seen["scrape"]  # the exposition reads the shared files
    assert "tusd_py_uploads_created_total 1.0" in scrape
    assert 'tusd_py_requests_total{method="PATCH",status="204"} 1.0' in scrape
    assert "tusd_py_patch_duration_seconds_count 1.0" in scrape
    assert any(p.name.startswith("counter_") for p in tmp_path.iterdir())
