"""Progress and events of the client commands, for people and for programs.

One stream of events, two renderings (``--progress auto`` picks by whether
stderr is a terminal):

* ``bar``: a tqdm progress bar per file on stderr (bytes, rate, ETA); retries
  and errors are printed as lines above the bars. tqdm was chosen over rich: it
  is one small pure-Python dependency that does exactly this (byte units,
  smoothed rate, ETA, multi-thread safe bars).
* ``json``: one JSON object per line on stderr, each with ``event`` and
  ``ts`` (unix seconds). Events (``part`` is the index of a ``--parallel``
  part, absent otherwise):

  ==========  ==================================================================
  start       ``file, size, parts``
  created     ``file, url, part?`` a new upload was created on the server
  resume      ``file, url, offset, part?`` a stored upload was found; ``offset``
              is what the server holds (HEAD), resumed from there
  progress    ``file, bytes, acked, size, rate, eta`` at most every 0.5 s and at
              the end; ``acked`` is what the server confirmed, ``bytes`` adds
              what is in flight; ``rate`` bytes/s, ``eta`` seconds or null
  resync      ``file, offset, part?`` offset re-read with HEAD after a failure
  retry       ``file, attempt, delay, status, code, reason, part?`` waiting
              ``delay`` seconds before retrying (``status`` null: network error)
  done        ``file, url, size, sent`` ``sent``: body bytes sent by this run
  error       ``file, status, code, exit_code``; the message itself is the
              plain line that follows (each error is printed once)
  ==========  ==================================================================

* ``none``: nothing but errors.

Human-readable error messages always go to stderr as plain lines (they do not
start with ``{``), once each, whatever the mode.
"""

from __future__ import annotations

import collections
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import IO, Any, Protocol

from tqdm import tqdm


class Reporter(Protocol):
    """Where events and byte counts go."""

    def event(self, name: str, fields: Mapping[str, Any]) -> None: ...

    def progress(
        self, file: str, done: int, acked: int, total: int, rate: float | None, final: bool
    ) -> None: ...

    def message(self, text: str) -> None:
        """A human-readable line (errors, notes)."""
        ...

    def close(self) -> None: ...


class RateMeter:
    """Bytes per second over a sliding window of samples (clock injected)."""

    def __init__(self, clock: Callable[[], float], window: float = 5.0) -> None:
        self._clock = clock
        self._window = window
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def add(self, total_moved: int) -> None:
        now = self._clock()
        self._samples.append((now, total_moved))
        while len(self._samples) > 2 and now - self._samples[0][0] > self._window:
            self._samples.popleft()

    def rate(self) -> float | None:
        if len(self._samples) < 2:
            return None
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        if t1 <= t0:
            return None
        return (b1 - b0) / (t1 - t0)


class FileProgress:
    """Thread-safe byte counts of one file, possibly sent as several parts."""

    def __init__(
        self, reporter: Reporter, file: str, total: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.reporter = reporter
        self.file = file
        self.total = total
        self._acked: dict[int, int] = {}
        self._inflight: dict[int, int] = {}
        self._base: dict[int, int] = {}
        self.moved = 0
        self._meter = RateMeter(clock)
        self._lock = threading.Lock()

    def event(self, name: str, **fields: Any) -> None:
        self.reporter.event(name, {"file": self.file, **fields})

    def acked(self, part: int, offset: int, base: int = 0) -> None:
        """Part ``part`` (starting at byte ``base`` of the file) is confirmed up to ``offset``."""
        with self._lock:
            self._base[part] = base
            self._acked[part] = offset
            self._inflight[part] = 0
        self._report(False)

    def sent(self, part: int, n: int) -> None:
        """``n`` more bytes of ``part`` went out (not yet confirmed)."""
        with self._lock:
            self._inflight[part] = self._inflight.get(part, 0) + n
            self.moved += n
            self._meter.add(self.moved)
        self._report(False)

    def finish(self) -> None:
        self._report(True)

    def counts(self) -> tuple[int, int]:
        """``(done, acked)``: bytes confirmed plus in flight, and confirmed."""
        with self._lock:
            acked = sum(self._acked.values())
            done = min(self.total, acked + sum(self._inflight.values()))
        return done, acked

    def _report(self, final: bool) -> None:
        done, acked = self.counts()
        self.reporter.progress(self.file, done, acked, self.total, self._meter.rate(), final)


class NullReporter:
    """Only human-readable messages (to ``stream``)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def event(self, name: str, fields: Mapping[str, Any]) -> None:
        return None

    def progress(self, file: str, done: int, acked: int, total: int, rate: float | None, final: bool) -> None:
        return None

    def message(self, text: str) -> None:
        print(text, file=self._stream, flush=True)

    def close(self) -> None:
        return None


class JsonLinesReporter:
    """Events as JSON lines; progress throttled to one line per ``interval`` per file."""

    def __init__(
        self,
        stream: IO[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        interval: float = 0.5,
    ) -> None:
        self._stream = stream
        self._clock = clock
        self._wall = wall
        self._interval = interval
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def _write(self, payload: dict[str, Any]) -> None:
        line = json.dumps(payload, separators=(",", ":"))
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def event(self, name: str, fields: Mapping[str, Any]) -> None:
        self._write({"event": name, "ts": round(self._wall(), 3), **fields})

    def progress(self, file: str, done: int, acked: int, total: int, rate: float | None, final: bool) -> None:
        now = self._clock()
        with self._lock:
            if not final and now < self._next.get(file, 0.0):
                return
            self._next[file] = now + self._interval
        eta = (total - done) / rate if rate else None
        self.event(
            "progress",
            {
                "file": file,
                "bytes": done,
                "acked": acked,
                "size": total,
                "rate": round(rate, 1) if rate is not None else None,
                "eta": round(eta, 1) if eta is not None else None,
            },
        )

    def message(self, text: str) -> None:
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()

    def close(self) -> None:
        return None


class BarReporter:
    """tqdm bars (bytes, rate, ETA), one per file; retries and errors as lines above them."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._bars: dict[str, tqdm[Any]] = {}
        self._lock = threading.Lock()

    def _bar(self, file: str, total: int, done: int) -> tqdm[Any]:
        bar = self._bars.get(file)
        if bar is None:
            bar = tqdm(
                total=total,
                initial=done,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=os.path.basename(file) or file,
                file=self._stream,
                dynamic_ncols=True,
                leave=True,
                position=len(self._bars),
            )
            self._bars[file] = bar
        return bar

    def event(self, name: str, fields: Mapping[str, Any]) -> None:
        file = str(fields.get("file", ""))
        if name == "retry":
            what = f"HTTP {fields['status']}" if fields.get("status") else "network error"
            self.message(
                f"{os.path.basename(file)}: {what} ({fields.get('reason')}); "
                f"retry {fields.get('attempt')} in {fields.get('delay', 0):.1f}s"
            )
        elif name == "done":
            with self._lock:
                bar = self._bars.pop(file, None)
                if bar is not None:
                    bar.close()

    def progress(self, file: str, done: int, acked: int, total: int, rate: float | None, final: bool) -> None:
        with self._lock:
            bar = self._bar(file, total, done)
            if done != bar.n:
                bar.update(done - bar.n)

    def message(self, text: str) -> None:
        with self._lock:
            tqdm.write(text, file=self._stream)

    def close(self) -> None:
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()


def make_reporter(mode: str, stream: IO[str]) -> Reporter:
    """``auto`` (bar on a terminal, JSON lines otherwise), ``bar``, ``json`` or ``none``."""
    if mode == "auto":
        mode = "bar" if stream.isatty() else "json"
    if mode == "bar":
        return BarReporter(stream)
    if mode == "json":
        return JsonLinesReporter(stream)
    return NullReporter(stream)
