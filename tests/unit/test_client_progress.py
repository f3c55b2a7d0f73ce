"""Progress rendering of the client: JSON lines (throttled, injected clocks) and tqdm bars."""

from __future__ import annotations

import io
import json

from tusd_py.cli.client.progress import (
    BarReporter,
    FileProgress,
    JsonLinesReporter,
    NullReporter,
    RateMeter,
    make_reporter,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _lines(stream: io.StringIO) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_progress_is_throttled_and_carries_rate_and_eta() -> None:
    clock = Clock()
    stream = io.StringIO()
    reporter = JsonLinesReporter(stream, clock=clock, wall=lambda: 1234.5, interval=0.5)
    progress = FileProgress(reporter, "f.bin", 1000, clock=clock)
    progress.acked(0, 0)  # first line
    for _ in range(4):  # within the interval: no lines
        clock.now += 0.1
        progress.sent(0, 50)
    clock.now += 0.2  # 0.6 s after the first line: one more
    progress.sent(0, 50)
    lines = _lines(stream)
    assert [line["bytes"] for line in lines] == [0, 250]
    assert lines[1] == {
        "event": "progress",
        "ts": 1234.5,
        "file": "f.bin",
        "bytes": 250,
        "acked": 0,
        "size": 1000,
        "rate": 400.0,  # 200 bytes over the 0.5 s between the first and the last send
        "eta": 1.9,  # 750 bytes left at 400 B/s
    }
    progress.acked(0, 250)
    progress.finish()  # the final line is never throttled
    assert _lines(stream)[-1]["acked"] == 250


def test_parts_are_summed_and_in_flight_bytes_drop_on_resync() -> None:
    stream = io.StringIO()
    progress = FileProgress(JsonLinesReporter(stream, interval=0.0), "f.bin", 100)
    progress.acked(0, 10, 0)
    progress.acked(1, 5, 50)
    progress.sent(1, 20)
    assert progress.counts() == (35, 15)
    progress.acked(1, 12, 50)  # the server kept only 7 of the 20 bytes
    assert progress.counts() == (22, 22)
    assert progress.moved == 20


def test_rate_meter_window() -> None:
    clock = Clock()
    meter = RateMeter(clock, window=5.0)
    assert meter.rate() is None
    meter.add(0)
    clock.now += 1
    meter.add(100)
    assert meter.rate() == 100.0
    clock.now += 10
    meter.add(200)  # the old samples left the window
    clock.now += 1
    meter.add(1200)
    assert meter.rate() == 1000.0


def test_events_and_messages() -> None:
    stream = io.StringIO()
    reporter = JsonLinesReporter(stream, wall=lambda: 1.0)
    reporter.event("retry", {"file": "f", "attempt": 1})
    reporter.message("plain words")
    assert stream.getvalue().splitlines() == [
        '{"event":"retry","ts":1.0,"file":"f","attempt":1}',
        "plain words",
    ]


def test_bar_shows_bytes_rate_and_eta() -> None:
    stream = io.StringIO()
    reporter = BarReporter(stream)
    reporter.progress("dir/f.bin", 0, 0, 4 << 20, None, False)
    reporter.progress("dir/f.bin", 2 << 20, 2 << 20, 4 << 20, None, False)
    reporter.event(
        "retry", {"file": "dir/f.bin", "status": 503, "reason": "busy", "attempt": 1, "delay": 0.5}
    )
    reporter.event("done", {"file": "dir/f.bin"})
    text = stream.getvalue()
    assert "f.bin" in text and "50%" in text and "2.00M/4.00M" in text
    assert "B/s" in text and "<" in text  # rate, then elapsed<remaining
    assert "f.bin: HTTP 503 (busy); retry 1 in 0.5s" in text


def test_make_reporter_picks_by_terminal() -> None:
    assert isinstance(make_reporter("auto", Tty()), BarReporter)
    assert isinstance(make_reporter("auto", io.StringIO()), JsonLinesReporter)
    assert isinstance(make_reporter("json", Tty()), JsonLinesReporter)
    assert isinstance(make_reporter("none", io.StringIO()), NullReporter)
