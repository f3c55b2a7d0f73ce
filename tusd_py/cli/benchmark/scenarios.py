"""Timed benchmark scenarios against a tus creation endpoint.

Each function runs one scenario and returns a :class:`Result`: the metric
(creations/s, HEADs/s or MiB/s), errors, the URLs it created (the caller
verifies and cleans them up with :func:`cleanup`), and, when a server
``pid`` is given, the server's CPU and memory during the timed part.
Every loop is bounded in count, and in time by ``max_time`` plus the
client's socket timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tusd_py.cli.benchmark.loadclient import LoadClient, LoadError, Pattern
from tusd_py.cli.benchmark.procstat import ProcSampler, ProcUsage

MIB = 1 << 20
GIB = 1 << 30
SINGLE_SEED = 1000
CONCURRENT_SEED = 2000


@dataclass
class Result:
    """The outcome of one scenario run."""

    scenario: str
    variant: str
    value: float
    unit: str
    seconds: float
    count: int
    bytes: int = 0
    errors: int = 0
    first_error: str | None = None
    usage: ProcUsage | None = None
    urls: list[str] = field(default_factory=list)
    #: The pattern seed of each URL (uploads only), for verification.
    seeds: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.errors == 0

    @property
    def cpu_per_gib(self) -> float | None:
        """Server CPU seconds per GiB received (uploads with a sampled pid)."""
        if self.usage is None or not self.bytes:
            return None
        return self.usage.cpu_s / (self.bytes / GIB)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("urls")
        data.pop("seeds")
        data["ok"] = self.ok
        data["cpu_per_gib"] = None if self.cpu_per_gib is None else round(self.cpu_per_gib, 3)
        return data


def fmt_size(n: int) -> str:
    """1073741824 → ``"1G"``; sizes that are not whole units stay in bytes."""
    for unit, mult in (("G", GIB), ("M", MIB), ("K", 1 << 10)):
        if n >= mult and n % mult == 0:
            return f"{n // mult}{unit}"
    return str(n)


class _Timer:
    """Wall time of a block, with an optional :class:`ProcSampler` around it."""

    def __init__(self, pid: int | None) -> None:
        self.sampler = ProcSampler(pid) if pid else None
        self.seconds = 0.0
        self._t0 = 0.0

    def __enter__(self) -> _Timer:
        if self.sampler is not None:
            self.sampler.__enter__()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self._t0
        if self.sampler is not None:
            self.sampler.__exit__(None, None, None)

    @property
    def usage(self) -> ProcUsage | None:
        return self.sampler.usage if self.sampler is not None else None


def measure_create(
    endpoint: str,
    headers: Mapping[str, str],
    n: int,
    *,
    warmup: int = 20,
    pid: int | None = None,
    max_time: float = 600.0,
) -> Result:
    """``n`` sequential creations (``Upload-Length: 1024``) on one connection."""
    urls: list[str] = []
    errors: list[str] = []
    done = 0
    with LoadClient(endpoint, headers) as client:
        for i in range(warmup):
            urls.append(client.create(1024, name=f"warmup-{i}.bin"))
        deadline = time.monotonic() + max_time
        with _Timer(pid) as timer:
            for i in range(n):
                if time.monotonic() > deadline:
                    errors.append("max time reached")
                    break
                try:
                    urls.append(client.create(1024, name=f"create-{i}.bin"))
                    done += 1
                except LoadError as exc:
                    errors.append(str(exc))
    return Result(
        scenario="create",
        variant=f"n={n}",
        value=done / timer.seconds if timer.seconds else 0.0,
        unit="1/s",
        seconds=round(timer.seconds, 3),
        count=done,
        errors=len(errors),
        first_error=errors[0] if errors else None,
        usage=timer.usage,
        urls=urls,
    )


def measure_head(
    endpoint: str,
    headers: Mapping[str, str],
    n: int,
    *,
    warmup: int = 20,
    pid: int | None = None,
    max_time: float = 600.0,
) -> Result:
    """``n`` keep-alive HEADs of one upload holding 100 of its 1024 bytes."""
    errors: list[str] = []
    done = 0
    with LoadClient(endpoint, headers) as client:
        url = client.create(1024, name="head.bin")
        client.patch(url, Pattern(7), 0, 100)
        for _ in range(warmup):
            client.offset(url)
        deadline = time.monotonic() + max_time
        with _Timer(pid) as timer:
            for _ in range(n):
                if time.monotonic() > deadline:
                    errors.append("max time reached")
                    break
                try:
                    offset = client.offset(url)
                except LoadError as exc:
                    errors.append(str(exc))
                    continue
                if offset != 100:
                    errors.append(f"HEAD offset {offset}, expected 100")
                else:
                    done += 1
    return Result(
        scenario="head",
        variant=f"n={n}",
        value=done / timer.seconds if timer.seconds else 0.0,
        unit="1/s",
        seconds=round(timer.seconds, 3),
        count=done,
        errors=len(errors),
        first_error=errors[0] if errors else None,
        usage=timer.usage,
        urls=[url],
    )


def measure_upload(
    endpoint: str,
    headers: Mapping[str, str],
    size: int,
    *,
    chunk: int = 0,
    seed: int = SINGLE_SEED,
    pid: int | None = None,
) -> Result:
    """One upload of ``size`` bytes in PATCHes of ``chunk`` bytes (0 = one PATCH)."""
    error: str | None = None
    url: str | None = None
    with LoadClient(endpoint, headers) as client, _Timer(pid) as timer:
        try:
            url = client.upload(size, chunk, seed)
        except LoadError as exc:
            error = str(exc)
    variant = (
        f"{fmt_size(size)} one PATCH" if chunk <= 0 else f"{fmt_size(size)} in {fmt_size(chunk)} PATCHes"
    )
    return Result(
        scenario="upload",
        variant=variant,
        value=size / MIB / timer.seconds if error is None and timer.seconds else 0.0,
        unit="MiB/s",
        seconds=round(timer.seconds, 3),
        count=0 if error else 1,
        bytes=0 if error else size,
        errors=int(error is not None),
        first_error=error,
        usage=timer.usage,
        urls=[url] if url else [],
        seeds=[seed] if url else [],
    )


def measure_concurrent(
    endpoint: str,
    headers: Mapping[str, str],
    k: int,
    size: int,
    *,
    chunk: int = 8 * MIB,
    pid: int | None = None,
    max_time: float = 900.0,
) -> Result:
    """``k`` uploads of ``size`` bytes at once (one thread and connection each)."""
    barrier = threading.Barrier(k + 1, timeout=60)
    outcomes: list[tuple[str | None, str | None]] = [(None, "did not finish")] * k

    def worker(i: int) -> None:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            outcomes[i] = (None, "start barrier broken")
            return
        with LoadClient(endpoint, headers) as client:
            try:
                outcomes[i] = (client.upload(size, chunk, CONCURRENT_SEED + i), None)
            except LoadError as exc:
                outcomes[i] = (None, str(exc))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(k)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + max_time
    with _Timer(pid) as timer:
        barrier.wait()
        for thread in threads:
            thread.join(max(0.1, deadline - time.monotonic()))
    completed = [(i, url) for i, (url, err) in enumerate(outcomes) if url is not None and err is None]
    errors = [err for _, err in outcomes if err is not None]
    return Result(
        scenario="concurrent",
        variant=f"{k}x{fmt_size(size)} in {fmt_size(chunk)} PATCHes",
        value=len(completed) * size / MIB / timer.seconds if timer.seconds else 0.0,
        unit="MiB/s",
        seconds=round(timer.seconds, 3),
        count=len(completed),
        bytes=len(completed) * size,
        errors=len(errors),
        first_error=errors[0] if errors else None,
        usage=timer.usage,
        urls=[url for _, url in completed],
        seeds=[CONCURRENT_SEED + i for i, _ in completed],
    )


def cleanup(endpoint: str, headers: Mapping[str, str], urls: Sequence[str]) -> None:
    """DELETE ``urls`` (termination); failures are ignored."""
    with LoadClient(endpoint, headers) as client:
        for url in urls:
            client.delete(url)
