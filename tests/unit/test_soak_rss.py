"""The soak's RSS series (tests/bench/soak.py, soak_report.py): per-interval
samples of every server process and growth over each half of the run."""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace
from typing import Any

from tests.bench import soak
from tests.bench.soak_report import Series, middle, rss_figures


def taken(**rss_mib: float) -> dict[str, dict[str, int]]:
    return {
        name: {"rss_kib": int(mib * 1024), "anon_kib": int(mib * 512), "fds": 9}
        for name, mib in rss_mib.items()
    }


def test_growth_over_each_half_and_the_series() -> None:
    series: Series = [
        (30.0, taken(A=100, W=50)),
        (90.0, taken(A=104, W=50)),
        (150.0, taken(A=108, W=55)),  # the middle: halfway between 30 and 270 s
        (210.0, taken(A=109)),  # W gone (restarted under another pid)
        (270.0, taken(A=110.16, W=55)),
    ]
    assert middle(series) == 2
    figures = rss_figures(series)
    a, w = figures["A"], figures["W"]
    assert a["rss_growth_pct"] == 10.2
    assert a["growth_first_half_pct"] == 8.0
    assert a["growth_second_half_pct"] == 2.0
    assert a["rss_series_mib"] == [100.0, 104.0, 108.0, 109.0, 110.2]
    assert (a["anon_start_mib"], a["file_start_mib"]) == (50.0, None)
    assert w["rss_series_mib"] == [50.0, 50.0, 55.0, None, 55.0]
    assert (w["growth_first_half_pct"], w["growth_second_half_pct"]) == (10.0, 0.0)


def test_a_process_missing_at_an_end_has_no_growth() -> None:
    figures = rss_figures([(30.0, taken(A=100)), (60.0, taken(A=101, B=80)), (90.0, taken(B=81))])
    assert figures["A"]["rss_growth_pct"] is None
    assert figures["B"]["growth_first_half_pct"] is None
    assert figures["B"]["rss_series_mib"] == [None, 80.0, 81.0]


def own_process() -> dict[str, Any]:
    return {"self": SimpleNamespace(pid=os.getpid())}


def test_sample_reads_rss_parts_of_a_live_process() -> None:
    figures = soak.sample(own_process())["self"]
    assert figures["rss_kib"] > 0 and figures["anon_kib"] > 0 and figures["fds"] > 0
    assert figures["rss_kib"] >= figures["anon_kib"] + figures["file_kib"]


def test_sample_until_samples_every_interval_until_the_end() -> None:
    stop = threading.Event()
    began = time.monotonic()
    series = soak.sample_until(own_process(), stop, began, until=0.29, every=0.1)
    times = [t for t, _ in series]
    assert len(times) == 3  # due at 0, 0.1 and 0.2 s after the first; none due at 0.3 s
    assert times == sorted(times)
    assert all(s["self"]["rss_kib"] > 0 for _, s in series)


def test_sample_until_stops_at_once_when_the_load_stops() -> None:
    stop = threading.Event()
    stop.set()
    series = soak.sample_until(own_process(), stop, time.monotonic(), until=600.0, every=60.0)
    assert len(series) == 1
