"""The per-user resume store: which upload URL belongs to which local file.

Layout: one JSON file, ``$XDG_CACHE_HOME/tusd-py/resume.json`` (default
``~/.cache/tusd-py/resume.json``), mode 0600 in a 0700 directory::

    {"version": 1,
     "entries": {"<key>": {..., "updated_at": <unix seconds>}}}

Upload keys are :func:`fingerprint` of (real path, size, mtime in ns, endpoint):
touching or growing the file, or pointing at another server, starts a new
upload instead of resuming a stale one. Values are small JSON objects owned
by the caller (upload URL, partial URLs, ...); the offset itself always comes
from the server (HEAD), never from here.

Every change is a read-modify-write under an exclusive ``flock`` on
``resume.json.lock`` (so concurrent ``tusd-py upload`` processes and threads
don't lose each other's entries), written to a temporary file in the same
directory, fsynced and ``os.replace``-d over the old file: a crash leaves the
old or the new file, never a torn one. An unreadable or corrupt file is treated
as empty (it is a cache). Entries untouched for ``max_age`` seconds are pruned
on write. The clock is injected.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tusd_py.cli.client.errors import ClientError

FORMAT_VERSION = 1
DEFAULT_MAX_AGE = 30 * 24 * 3600.0

Entry = dict[str, Any]


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME/tusd-py`` or ``~/.cache/tusd-py``."""
    base = environ.get("XDG_CACHE_HOME", "").strip()
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "tusd-py"


def fingerprint(path: str | os.PathLike[str], size: int, mtime_ns: int, endpoint: str) -> str:
    """The resume key of a local file sent to ``endpoint``."""
    identity = json.dumps(
        ["upload", os.path.realpath(path), size, mtime_ns, endpoint.rstrip("/")], separators=(",", ":")
    )
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()


def download_key(url: str, target: str | os.PathLike[str]) -> str:
    """The resume key of a download of ``url`` into ``target``."""
    identity = json.dumps(["download", url, os.path.realpath(target)], separators=(",", ":"))
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()


class ResumeStore:
    """Durable ``key -> JSON object`` map shared by every client process of a user."""

    def __init__(
        self,
        directory: Path,
        *,
        clock: Callable[[], float] = time.time,
        max_age: float = DEFAULT_MAX_AGE,
    ) -> None:
        self.directory = directory
        self.path = directory / "resume.json"
        self._lock_path = directory / "resume.json.lock"
        self._clock = clock
        self._max_age = max_age
        self._mutex = threading.Lock()

    # --- public API ----------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        """The entry stored under ``key`` (a copy), or None."""
        with self._locked():
            entry = self._read().get(key)
        return dict(entry) if entry is not None else None

    def put(self, key: str, entry: Mapping[str, Any]) -> Entry:
        """Store ``entry`` under ``key`` (stamped with ``updated_at``); returns what was stored."""
        return self.update(key, lambda _old: dict(entry))

    def update(self, key: str, change: Callable[[Entry | None], Entry | None]) -> Entry:
        """Atomically replace the entry with ``change(old)``; None deletes it. Returns the new entry
        (``{}`` when deleted)."""
        with self._locked():
            entries = self._read()
            old = entries.get(key)
            new = change(dict(old) if old is not None else None)
            if new is None:
                entries.pop(key, None)
                result: Entry = {}
            else:
                new["updated_at"] = self._clock()
                entries[key] = new
                result = dict(new)
            self._write(entries)
        return result

    def delete(self, key: str) -> None:
        """Forget ``key`` (no error if absent)."""
        self.update(key, lambda _old: None)

    def keys(self) -> list[str]:
        with self._locked():
            return sorted(self._read())

    # --- internals -----------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ClientError(f"cannot open the resume store in {self.directory}: {exc.strerror}") from exc
        with self._mutex:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the flock

    def _read(self) -> dict[str, Entry]:
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            return {}
        entries = data.get("entries")
        if not isinstance(entries, dict):
            return {}
        return {str(k): v for k, v in entries.items() if isinstance(v, dict)}

    def _write(self, entries: dict[str, Entry]) -> None:
        horizon = self._clock() - self._max_age
        kept = {
            key: value
            for key, value in entries.items()
            if isinstance(value.get("updated_at"), int | float) and value["updated_at"] >= horizon
        }
        payload = json.dumps({"version": FORMAT_VERSION, "entries": kept}, indent=1, sort_keys=True)
        tmp = self.directory / f".resume.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise ClientError(f"cannot write the resume store {self.path}: {exc.strerror}") from exc
