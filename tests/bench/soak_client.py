"""The clients of ``tests/bench/soak.py``: threads that upload at random.

Each :class:`SoakClient` runs a bounded loop of random actions against a
list of server base URLs (the same uploads are reachable on every one):

* a single upload: POST on a random instance, then PATCHes of random chunks
  to random instances; now and then a PATCH is aborted (the socket is closed,
  sometimes with a RST, after part of the body) and the client resumes from
  the offset a HEAD on a random instance reports; now and then the upload is
  deleted half way or abandoned; a finished upload is read back with GET and
  its sha256 compared to what was sent, then usually deleted;
* a concatenation: two or three partial uploads sent like above, a final
  upload naming them, the final read back and compared.

Sizes are disk-routed (KiBs to a few MiB) or, less often, S3-routed (13-20
MiB with the soak's 12 MiB threshold). Every answer is counted in
:class:`Stats`, which also keeps, per upload, the largest offset ever
acknowledged (a 204's or a HEAD's ``Upload-Offset``) and the end of the
bytes ever sent, and records any HEAD below the former ("offset went back")
or above the latter. Only 127.0.0.1; every loop is bounded in count and time.
Not a test module (pytest does not collect it).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import magic

from tests.integration import tushttp

KIB = 1 << 10
MIB = 1 << 20
#: The first bytes of every upload: plain text, so the file-type check never
#: mistakes random bytes for an executable (``MZ``...).
MARKER = b"tusd-py soak upload\n"
#: Client-side timeout of one request; above lock_timeout + network_timeout
#: (20 + 60 s by default), the longest a request may legitimately take.
REQUEST_TIMEOUT = 100.0
#: Bounds of one client's loop and of one upload's request loop.
MAX_ACTIONS = 100_000
MAX_STEPS = 400
DELETE_ATTEMPTS = 5
#: GETs retried 0.5 s apart while a finished upload answers 409 (its
#: completion may still be running on another instance).
GET_RETRIES = 10
#: Samples of anomalies kept (each list), so a bad run's report stays short.
MAX_SAMPLES = 30
#: Answers that are expected in the races the soak creates.
EXPECTED = {
    "POST": {201},
    "HEAD": {200, 404, 410},
    "PATCH": {204, 409, 423},
    "GET": {200},
    "DELETE": {204, 404, 410, 423},
}


@dataclass
class Stats:
    """Counters shared by every client thread (guarded by one lock)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    acked: dict[str, int] = field(default_factory=dict)
    acked_by: dict[str, str] = field(default_factory=dict)
    sent_end: dict[str, int] = field(default_factory=dict)
    completed: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    s3_routed: set[str] = field(default_factory=set)
    offsets_back: list[str] = field(default_factory=list)
    offsets_beyond: list[str] = field(default_factory=list)
    corrupted: list[str] = field(default_factory=list)
    #: ``{"METHOD status code": [count, first samples...]}`` of unexpected answers.
    unexpected: dict[str, list[Any]] = field(default_factory=dict)

    def answer(self, method: str, status: int, url: str, body: bytes = b"", note: str = "") -> None:
        """Count one answer (status 0: connection cut, -1: client timeout)."""
        with self.lock:
            self.statuses[f"{method} {status}"] += 1
        if status not in EXPECTED.get(method, set()):
            self.odd(f"{method} {status} {error_code(body)}", f"{url} {body[:160]!r}{note}")

    def odd(self, key: str, sample: str) -> None:
        """Count an unexpected answer or event under ``key``, keeping a few samples."""
        with self.lock:
            entry = self.unexpected.setdefault(key, [0])
            entry[0] += 1
            if len(entry) <= 3:
                entry.append(sample)

    def count(self, event: str, n: int = 1) -> None:
        with self.lock:
            self.events[event] += n

    def sent(self, upload: str, end: int) -> None:
        with self.lock:
            self.sent_end[upload] = max(self.sent_end.get(upload, 0), end)

    def offset_seen(self, upload: str, offset: int, source: str) -> None:
        """An offset a server reported; flags one below an acknowledged offset."""
        with self.lock:
            acked = self.acked.get(upload, 0)
            if offset < acked:
                self.events["offset went back"] += 1
                if len(self.offsets_back) < MAX_SAMPLES:
                    self.offsets_back.append(
                        f"{upload}: {source} says {offset} < {acked} "
                        f"acknowledged by {self.acked_by.get(upload)}"
                    )
            if offset > self.sent_end.get(upload, 0):
                self.events["offset beyond bytes sent"] += 1
                if len(self.offsets_beyond) < MAX_SAMPLES:
                    self.offsets_beyond.append(
                        f"{upload}: {source} says {offset} > sent {self.sent_end.get(upload, 0)}"
                    )
            if offset > acked:
                self.acked[upload] = offset
                self.acked_by[upload] = source

    def mark(self, kind: str, upload: str) -> None:
        with self.lock:
            {"completed": self.completed, "deleted": self.deleted, "s3": self.s3_routed}[kind].add(upload)

    def corrupt(self, text: str) -> None:
        with self.lock:
            self.events["corrupted"] += 1
            if len(self.corrupted) < MAX_SAMPLES:
                self.corrupted.append(text)


def error_code(body: bytes) -> str:
    """The ``error.code`` of a JSON error body, or ""."""
    try:
        return str(json.loads(body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""


def upload_id(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


class SoakClient(threading.Thread):
    """One loopback client (see the module docstring)."""

    def __init__(
        self,
        index: int,
        bases: list[str],
        stats: Stats,
        stop: threading.Event,
        seed: int,
        auth: str | None,
        s3_share: float = 0.08,
    ) -> None:
        super().__init__(name=f"soak-client-{index}", daemon=True)
        self.bases = bases
        self.stats = stats
        self.stop_event = stop
        self.rng = random.Random(seed)
        self.auth = {"Authorization": f"Bearer {auth}"} if auth else {}
        self.s3_share = s3_share
        self.concat = True

    # --- HTTP -------------------------------------------------------------------

    def base(self) -> str:
        return self.rng.choice(self.bases)

    def call(
        self, method: str, url: str, headers: dict[str, str] | None = None, body: bytes | None = None
    ) -> tushttp.Response | None:
        """One request; None (and counted as 0 or -1) when the connection failed."""
        try:
            res = tushttp.request(method, url, {**self.auth, **(headers or {})}, body, REQUEST_TIMEOUT)
        except TimeoutError:
            self.stats.answer(method, -1, url)
            return None
        except (OSError, http.client.HTTPException):
            self.stats.answer(method, 0, url)
            return None
        self.stats.answer(method, res.status, url, res.body)
        return res

    def aborted_patch(self, url: str, offset: int, data: bytes) -> None:
        """Send the headers and part of the body of a PATCH, then close (sometimes with a RST)."""
        host_port = url.split("/", 3)[2]
        host, port = host_port.split(":")
        path = "/" + url.split("/", 3)[3]
        cut = self.rng.randint(0, len(data) - 1) if data else 0
        lines = [
            f"PATCH {path} HTTP/1.1",
            f"Host: {host_port}",
            "Tus-Resumable: 1.0.0",
            "Content-Type: application/offset+octet-stream",
            f"Upload-Offset: {offset}",
            f"Content-Length: {len(data)}",
            *(f"{k}: {v}" for k, v in self.auth.items()),
        ]
        self.stats.count("aborted PATCH")
        try:
            with socket.create_connection((host, int(port)), timeout=30) as sock:
                sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
                sock.sendall(data[:cut])
                self.stats.sent(upload_id(url), offset + cut)
                if self.rng.random() < 0.3:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            self.stats.count("aborted PATCH: connect/send failed")

    # --- one upload ---------------------------------------------------------------

    def size(self, big: bool) -> int:
        if big:
            return self.rng.randint(13 * MIB, 20 * MIB)
        return int(2 ** self.rng.uniform(10, 22))  # 1 KiB .. 4 MiB, log-uniform

    def payload(self, size: int) -> bytes:
        data = MARKER + self.rng.randbytes(max(0, size - len(MARKER)))
        return data[:size]

    def create(self, length: int, extra: dict[str, str] | None = None) -> str | None:
        res = self.call("POST", self.base() + "/files/", {"Upload-Length": str(length), **(extra or {})})
        if res is None or res.status != 201 or not res.header("Location"):
            return None
        path = tushttp.on("", str(res.header("Location")))
        self.stats.offset_seen(upload_id(path), 0, "POST")
        return path

    def head(self, path: str) -> int | None:
        """The offset a random instance reports; None if unreachable, -1 if gone (404/410)."""
        base = self.base()
        res = self.call("HEAD", base + path)
        if res is not None and res.status in (404, 410):
            return -1
        if res is None or res.status != 200 or res.header("Upload-Offset") is None:
            return None
        offset = int(str(res.header("Upload-Offset")))
        self.stats.offset_seen(upload_id(path), offset, f"HEAD on {base}")
        return offset

    def send(self, path: str, data: bytes, deadline: float, may_delete: bool) -> str:
        """PATCH ``data`` to the upload at ``path`` until done; returns
        "done", "deleted", "abandoned", "vanished" or "failed"."""
        uid = upload_id(path)
        offset: int | None = 0
        for _step in range(MAX_STEPS):
            if self.stop_event.is_set() or time.monotonic() > deadline:
                return "abandoned"
            if offset is None or self.rng.random() < 0.2:
                offset = self.head(path)
                if offset is None:
                    self.stats.count("HEAD failed during upload")
                    time.sleep(0.05)
                    continue
                if offset < 0:
                    self.stats.odd("upload vanished (HEAD 404/410, not deleted by the client)", path)
                    return "vanished"
            if offset == len(data):
                return "done"
            roll = self.rng.random()
            if may_delete and roll < 0.01:
                res = self.call("DELETE", self.base() + path)
                if res is not None and res.status == 204:
                    self.stats.mark("deleted", uid)
                    self.stats.count("deleted mid-upload")
                    return "deleted"
                offset = None
                continue
            if roll < 0.015:
                self.stats.count("abandoned")
                return "abandoned"
            chunk = data[offset : offset + int(2 ** self.rng.uniform(16, 23))]
            url = self.base() + path
            if roll < 0.12:
                self.aborted_patch(url, offset, chunk)
                offset = None
                continue
            self.stats.sent(uid, offset + len(chunk))
            res = self.call(
                "PATCH",
                url,
                {"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
                chunk,
            )
            if res is not None and res.status == 204 and res.header("Upload-Offset") is not None:
                new = int(str(res.header("Upload-Offset")))
                if new != offset + len(chunk):
                    self.stats.count("204 with an offset other than offset + body")
                self.stats.offset_seen(uid, new, f"PATCH 204 on {url}")
                offset = new
                continue
            if res is not None and res.status == 423:
                time.sleep(0.05)
            if res is not None and res.status == 415:
                sent_type = magic.from_buffer(chunk[:8192], mime=True) if offset == 0 else "-"
                self.stats.odd(
                    "415 detail", f"{path} at offset {offset}: libmagic of the sent head: {sent_type}"
                )
            offset = None
        self.stats.count("upload ran out of steps")
        return "failed"

    def verify(self, path: str, data: bytes) -> bool:
        """GET and compare; a 409 (HEAD said offset == length, the upload is
        not finished yet) is retried for a few seconds and counted."""
        res = self.call("GET", self.base() + path)
        for _ in range(GET_RETRIES):
            if res is None or res.status != 409 or self.stop_event.is_set():
                break
            self.stats.count("GET 409 after HEAD/PATCH said offset == length (retried)")
            time.sleep(0.5)
            res = self.call("GET", self.base() + path)
        if res is None or res.status != 200:
            self.stats.count("GET of a finished upload failed")
            return False
        want = hashlib.sha256(data).hexdigest()
        got = hashlib.sha256(res.body).hexdigest()
        if want != got:
            first = next(
                (i for i in range(0, len(data), 4096) if res.body[i : i + 4096] != data[i : i + 4096]), -1
            )
            with self.stats.lock:
                where = "S3-routed" if upload_id(path) in self.stats.s3_routed else "disk"
            self.stats.corrupt(
                f"{path} ({where}): got {len(res.body)} bytes sha256 {got[:12]}, sent {len(data)} "
                f"sha256 {want[:12]}; first differing 4 KiB block at byte {first} "
                f"({first / MIB:.2f} MiB)"
            )
            return False
        self.stats.count("verified")
        return True

    def delete(self, path: str) -> None:
        """DELETE, retried a few times on 423 or a cut (not once the soak is stopping)."""
        for _ in range(DELETE_ATTEMPTS):
            res = self.call("DELETE", self.base() + path)
            if res is not None and res.status in (204, 404, 410):
                self.stats.mark("deleted", upload_id(path))
                return
            if self.stop_event.is_set():
                break
            time.sleep(0.1)
        self.stats.count("DELETE did not succeed")

    def one_upload(self) -> None:
        big = self.rng.random() < self.s3_share
        data = self.payload(self.size(big))
        path = self.create(len(data))
        if path is None:
            return
        if big:
            self.stats.mark("s3", upload_id(path))
        self.stats.count("uploads created")
        outcome = self.send(path, data, time.monotonic() + 300, may_delete=True)
        self.stats.count(f"upload {outcome}")
        if outcome == "done":
            self.stats.mark("completed", upload_id(path))
            self.verify(path, data)
            if self.rng.random() < 0.85:
                self.delete(path)

    def one_concat(self) -> None:
        parts: list[tuple[str, bytes]] = []
        for _ in range(self.rng.randint(2, 3)):
            big = self.rng.random() < self.s3_share / 2
            data = self.payload(self.size(big) // (1 if big else 2))
            path = self.create(len(data), {"Upload-Concat": "partial"})
            if path is None:
                return
            if big:
                self.stats.mark("s3", upload_id(path))
            if self.send(path, data, time.monotonic() + 300, may_delete=False) != "done":
                return
            self.stats.mark("completed", upload_id(path))
            parts.append((path, data))
        res = self.call(
            "POST", self.base() + "/files/", {"Upload-Concat": "final;" + " ".join(p for p, _ in parts)}
        )
        if res is None or res.status != 201 or not res.header("Location"):
            self.stats.count("concatenation refused")
            return
        final = tushttp.on("", str(res.header("Location")))
        whole = b"".join(d for _, d in parts)
        self.stats.sent(upload_id(final), len(whole))
        self.stats.mark("completed", upload_id(final))
        self.stats.count("concatenations")
        if self.verify(final, whole) and self.rng.random() < 0.85:
            for path in [final, *(p for p, _ in parts)]:
                self.delete(path)

    def run(self) -> None:
        try:
            for _ in range(MAX_ACTIONS):
                if self.stop_event.is_set():
                    return
                if self.concat and self.rng.random() < 0.15:
                    self.one_concat()
                else:
                    self.one_upload()
        except Exception as exc:  # a bug in the soak itself: count it, do not hide it
            self.stats.count("client crashed")
            self.stats.odd("client crashed", f"{self.name}: {exc!r}")
