"""``HttpDates`` (the Date/Upload-Expires strings, once a second) and
``RequestIds`` (X-Request-ID values without a system call)."""

from __future__ import annotations

import email.utils

from handlers.base import RequestIds
from tusd_py.core.protocol import HttpDates, http_date


def test_formats_as_rfc_9110_and_truncates_to_the_second() -> None:
    dates = HttpDates()
    for ts in (0.0, 1.5, 1_700_000_000.999, 1_796_601_636.25, 4_102_444_800.0):
        assert dates.format(ts) == email.utils.formatdate(int(ts), usegmt=True) == http_date(ts)


def test_now_follows_the_clock_and_the_cache_stays_bounded() -> None:
    now = [1_000.2]
    dates = HttpDates(size=4, clock=lambda: now[0])
    seen = []
    for step in range(50):
        now[0] = 1_000.2 + step * 0.5
        seen.append(dates.now())
        assert len(dates._texts) <= 4
    assert seen == [http_date(1_000.2 + step * 0.5) for step in range(50)]
    assert len(set(seen)) == 25  # two responses per second share one string


def test_request_ids_are_16_hex_digits_and_distinct() -> None:
    ids = RequestIds()
    made = [ids() for _ in range(10_000)]
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in made)
    assert len(set(made)) == len(made)
    assert RequestIds()() != RequestIds()()  # each is seeded from the OS
