"""The server's fixed memory footprint (issue 18): what a configuration does not
use is not imported.

Each check runs in a fresh interpreter (this test process has imported
everything already): it builds the context of a default ``serve`` (SQLite state,
local disk, jobs consumer running), starts it on a loopback port, creates an
upload and appends to it, then reports the heavy packages in ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

#: Packages a SQLite + local-disk server never needs (the rate-limit library's
#: Redis side, the sqlite-utils toolkit and what it pulls in, S3, the draft's
#: structured fields). ``redis`` itself is not listed: huey's storage module
#: imports it whenever it is installed.
NEVER_WITHOUT_REDIS = ("limits", "sqlite_utils", "click", "pluggy", "dateutil", "boto3", "http_sf")
#: Only JWT authentication needs these.
AUTH_ONLY = ("jwt", "cryptography")

PROBE = textwrap.dedent(
    """
    import asyncio, json, socket, sys
    from tornado.httpclient import AsyncHTTPClient
    from tusd_py.cli import server
    from tusd_py.core.config import load_config

    async def main(data_dir: str, auth: bool) -> None:
        config = load_config(environ={}, overrides={"server.data_dir": data_dir, "auth.enabled": auth})
        ctx = await server.build_context(config)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.setblocking(False)
        running = await server.start(ctx, [sock])
        codes = []
        try:
            client = AsyncHTTPClient()
            base = f"http://127.0.0.1:{running.port}"
            tus = {"Tus-Resumable": "1.0.0"}
            headers = {**tus, "Upload-Length": "3"}
            if auth:
                from tusd_py.auth.tokens import mint_token
                tus["Authorization"] = headers["Authorization"] = "Bearer " + mint_token(config, user="u")
            created = await client.fetch(base + "/files/", method="POST", body=b"", headers=headers)
            codes.append(created.code)
            patch = {**tus, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
            location = created.headers["Location"]
            url = location if location.startswith("http") else base + location
            appended = await client.fetch(url, method="PATCH", body=b"abc", headers=patch)
            codes.append(appended.code)
            jobs = ctx.jobs
            consumer_running = jobs is not None and jobs.consumer is not None and jobs.consumer.running
        finally:
            await running.drain_and_close()
        print(json.dumps({"codes": codes, "consumer": consumer_running, "modules": sorted(sys.modules)}))

    asyncio.run(main(sys.argv[1], sys.argv[2] == "auth"))
    """
)


def loaded_after_serving(tmp_path: Path, auth: bool) -> dict[str, object]:
    """Run :data:`PROBE` in a fresh interpreter; its JSON report."""
    command = [sys.executable, "-c", PROBE, str(tmp_path), "auth" if auth else "no-auth"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    report: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return report


def heavy_in(report: dict[str, object], names: tuple[str, ...]) -> list[str]:
    modules = report["modules"]
    assert isinstance(modules, list)
    return [name for name in names if name in modules]


def test_a_default_server_loads_no_sqlite_utils_limits_s3_or_http_sf(tmp_path: Path) -> None:
    report = loaded_after_serving(tmp_path, auth=True)
    assert report["codes"] == [201, 204]
    assert report["consumer"] is True  # the jobs consumer ran
    assert heavy_in(report, NEVER_WITHOUT_REDIS) == []
    assert heavy_in(report, AUTH_ONLY) == list(AUTH_ONLY)  # auth is on by default: PyJWT is used


def test_a_no_auth_server_does_not_load_pyjwt_either(tmp_path: Path) -> None:
    report = loaded_after_serving(tmp_path, auth=False)
    assert report["codes"] == [201, 204]
    # (cryptography may still come with redis, through huey)
    assert heavy_in(report, NEVER_WITHOUT_REDIS + ("jwt",)) == []
