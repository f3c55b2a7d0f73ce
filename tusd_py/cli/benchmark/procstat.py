"""CPU and memory of a server process, read from ``/proc/<pid>`` (Linux).

:class:`ProcSampler` is a context manager around a measured interval: it
records the process's user+system CPU seconds (all threads) at both ends,
samples ``VmRSS`` every ``interval`` seconds in a thread to find the peak
during the interval, and reads ``VmHWM`` (the lifetime peak) at the end.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from types import TracebackType


@dataclass(frozen=True)
class ProcUsage:
    """What a process used during one measured interval."""

    cpu_s: float
    user_s: float
    system_s: float
    rss_start_kib: int
    rss_peak_kib: int
    rss_end_kib: int
    hwm_kib: int


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` so far, all threads included."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    # After the command name: fields[0] is the state (field 3); utime, stime are fields 14, 15.
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB."""
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


class ProcSampler:
    """Measures ``pid`` over a ``with`` block; the result is :attr:`usage`."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.usage: ProcUsage | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak = 0
        self._cpu0 = (0.0, 0.0)
        self._rss0 = 0

    def __enter__(self) -> ProcSampler:
        self._rss0, _ = memory_kib(self.pid)
        self._peak = self._rss0
        self._cpu0 = cpu_seconds(self.pid)
        self._thread = threading.Thread(target=self._sample, name=f"procstat-{self.pid}", daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                rss, _ = memory_kib(self.pid)
            except OSError:
                return
            self._peak = max(self._peak, rss)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        user, system = cpu_seconds(self.pid)
        rss, hwm = memory_kib(self.pid)
        user -= self._cpu0[0]
        system -= self._cpu0[1]
        self.usage = ProcUsage(
            cpu_s=round(user + system, 3),
            user_s=round(user, 3),
            system_s=round(system, 3),
            rss_start_kib=self._rss0,
            rss_peak_kib=max(self._peak, rss),
            rss_end_kib=rss,
            hwm_kib=hwm,
        )
