"""``protocol.http_date`` writes exactly what ``email.utils.formatdate(usegmt=True)`` writes."""

from __future__ import annotations

import random
from email.utils import formatdate

from tusd_py.core.protocol import http_date


def test_http_date_matches_formatdate_across_days_months_and_fractions() -> None:
    rng = random.Random(18)
    stamps = [0.0, 1402761600.0, 1796584784.861, 951782400.5, 4102444799.999]
    stamps += [rng.uniform(0, 4102444800) for _ in range(2000)]
    for ts in stamps:
        assert http_date(ts) == formatdate(ts, usegmt=True), ts
