"""Peak server RSS while POST /index streams multipart bodies of growing size.

Starts ``python -m tusd_py serve --no-auth`` from this checkout on a free
loopback port with a temporary data dir, then sends one small warm-up upload
and one ``multipart/form-data`` body per size (default 64 MiB and 1 GiB) over a
raw socket, generated on the fly (the client holds 1 MiB at a time). After
each upload it reads the server's ``VmHWM`` (peak RSS) from ``/proc`` and
checks the stored file's size and SHA-256 against what was sent.

Memory is flat when the peak after 1 GiB equals the peak after 64 MiB within
a few MiB. Prints one Markdown row per size (paste into tests/bench/RESULTS.md)
and, with ``--out``, appends JSON lines.

    python tests/bench/bench_index_rss.py --sizes 64M,1G --out /tmp/index-rss.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCK = 1 << 20
UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    return int(text[:-1]) * UNITS[text[-1]] if text[-1] in UNITS else int(text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not become ready")


def post_multipart(port: int, size: int) -> tuple[dict[str, object], str, float]:
    """Send a multipart body with a ``size``-byte file; returns (201 document, sha256, seconds)."""
    boundary = "----bench" + os.urandom(8).hex()
    prefix = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    suffix = f"\r\n--{boundary}--\r\n".encode()
    head = (
        "POST /index HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(prefix) + size + len(suffix)}\r\n\r\n"
    ).encode()
    block = bytearray(os.urandom(BLOCK))
    digest = hashlib.sha256()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(head + prefix)
        sent = 0
        counter = 0
        while sent < size:
            counter += 1
            block[:8] = counter.to_bytes(8, "big")
            piece = bytes(block[: min(BLOCK, size - sent)])
            digest.update(piece)
            s.sendall(piece)
            sent += len(piece)
        s.sendall(suffix)
        response = b""
        while chunk := s.recv(65536):
            response += chunk
    elapsed = time.monotonic() - started
    status_line, _, rest = response.partition(b"\r\n")
    if b" 201 " not in status_line + b" ":
        raise RuntimeError(f"unexpected answer: {response[:300]!r}")
    body = rest.split(b"\r\n\r\n", 1)[1]
    return json.loads(body), digest.hexdigest(), elapsed


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(8 * BLOCK):
            digest.update(chunk)
    return digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="64M,1G", help="comma-separated file sizes (default 64M,1G)")
    parser.add_argument("--read-size", default="1MiB", help="server read size (server.read_size)")
    parser.add_argument("--out", help="append JSON lines here")
    args = parser.parse_args()
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="tusd-py-bench-") as tmp:
        data_dir = Path(tmp)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        cmd = [
            sys.executable, "-m", "tusd_py", "serve", "--no-auth", "--host", "127.0.0.1",
            "--port", str(port), "--data-dir", str(data_dir), "--read-size", args.read_size,
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(port, proc)
            post_multipart(port, 1 << 20)  # warm-up: imports, libmagic, first SQLite pages
            baseline = proc_kib(proc.pid, "VmHWM")
            print(f"server pid {proc.pid}, peak RSS after warm-up {baseline / 1024:.1f} MiB")
            print(
                "| file size | seconds | MiB/s | peak RSS before MiB | peak RSS after MiB | bytes verified |"
            )
            print("|---|---|---|---|---|---|")
            for size in sizes:
                before = proc_kib(proc.pid, "VmHWM")
                doc, sent_sha, seconds = post_multipart(port, size)
                after = proc_kib(proc.pid, "VmHWM")
                stored = data_dir / "uploads" / str(doc["file_id"])
                verified = stored.stat().st_size == size and sha256_file(stored) == sent_sha
                row = {
                    "size": size,
                    "seconds": round(seconds, 2),
                    "mib_s": round(size / (1 << 20) / seconds, 1),
                    "peak_rss_before_mib": round(before / 1024, 1),
                    "peak_rss_after_mib": round(after / 1024, 1),
                    "verified": verified,
                }
                print(
                    f"| {size / (1 << 20):.0f} MiB | {row['seconds']} | {row['mib_s']} | "
                    f"{row['peak_rss_before_mib']} | {row['peak_rss_after_mib']} | {verified} |"
                )
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(json.dumps({"bench": "index-multipart-rss", **row}) + "\n")
                stored.unlink()
                if not verified:
                    return 1
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
