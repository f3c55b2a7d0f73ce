"""The client's backoff policy, retry budget and status classification (injected randomness)."""

from __future__ import annotations

import pytest

from tusd_py.cli.client.retry import (
    BackoffPolicy,
    Disposition,
    RetryBudget,
    classify,
    parse_retry_after,
)


def test_delay_doubles_per_attempt_between_half_and_full() -> None:
    low = BackoffPolicy(initial=1.0, factor=2.0, cap=100.0, rng=lambda: 0.0)
    high = BackoffPolicy(initial=1.0, factor=2.0, cap=100.0, rng=lambda: 1.0)
    assert [low.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert [high.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 16.0]


def test_jitter_uses_the_injected_random_source() -> None:
    values = iter([0.25, 0.75])
    policy = BackoffPolicy(initial=4.0, rng=lambda: next(values))
    assert policy.delay(1) == 2.0 + 0.25 * 2.0
    assert policy.delay(1) == 2.0 + 0.75 * 2.0


def test_delay_is_capped() -> None:
    policy = BackoffPolicy(initial=1.0, cap=5.0, rng=lambda: 1.0)
    assert policy.delay(30) == 5.0
    assert BackoffPolicy(initial=1.0, cap=5.0, rng=lambda: 0.0).delay(30) == 2.5


def test_retry_after_is_a_floor_and_is_clamped() -> None:
    policy = BackoffPolicy(initial=0.25, rng=lambda: 0.0, max_retry_after=60.0)
    assert policy.delay(1, retry_after=1.0) == 1.0
    assert policy.delay(1, retry_after=0.0) == 0.125
    assert policy.delay(1, retry_after=3600.0) == 60.0
    long_backoff = BackoffPolicy(initial=8.0, rng=lambda: 1.0)
    assert long_backoff.delay(1, retry_after=1.0) == 8.0


def test_invalid_policies_and_attempts_are_refused() -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(factor=0.5)
    with pytest.raises(ValueError):
        BackoffPolicy(initial=-1)
    with pytest.raises(ValueError):
        BackoffPolicy().delay(0)


def test_budget_counts_failures_without_progress() -> None:
    budget = RetryBudget(BackoffPolicy(max_attempts=3))
    assert [budget.failed() for _ in range(3)] == [1, 2, 3]
    assert not budget.exhausted
    budget.failed()
    assert budget.exhausted
    budget.progressed()
    assert budget.failed() == 1 and not budget.exhausted


def test_zero_retries_gives_up_at_the_first_failure() -> None:
    budget = RetryBudget(BackoffPolicy(max_attempts=0))
    budget.failed()
    assert budget.exhausted


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (409, Disposition.RESYNC),
        (408, Disposition.RETRY),
        (423, Disposition.RETRY),
        (429, Disposition.RETRY),
        (460, Disposition.RETRY),
        (500, Disposition.RETRY),
        (502, Disposition.RETRY),
        (503, Disposition.RETRY),
        (507, Disposition.RETRY),
        (400, Disposition.PERMANENT),
        (401, Disposition.PERMANENT),
        (403, Disposition.PERMANENT),
        (404, Disposition.PERMANENT),
        (410, Disposition.PERMANENT),
        (412, Disposition.PERMANENT),
        (413, Disposition.PERMANENT),
        (415, Disposition.PERMANENT),
    ],
)
def test_classify(status: int, expected: Disposition) -> None:
    assert classify(status) is expected


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") is None
    # HTTP date, relative to an injected now.
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=lambda: 1445412480.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: 1445412490.0) == 0.0
