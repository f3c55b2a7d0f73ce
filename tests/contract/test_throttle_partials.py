"""Partial uploads (``Upload-Concat: partial``) and the creation limits (issue 12, point 4).

A file sent as N partials plus one final upload costs one creation; partials
count against their own windows, :data:`PARTIALS_PER_CREATION` times larger.
Both backends, time from a :class:`FakeClock`.
"""

from __future__ import annotations

import pytest

from tests.contract.test_throttle import BACKENDS, basic, instances
from tusd_py.core import errors
from tusd_py.throttle.guard import PARTIALS_PER_CREATION


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.gen_test
async def test_partials_do_not_count_as_creations(backend: str, redis_url: str) -> None:
    async with instances(backend, redis_url) as inst:
        guard = inst.guard(ip_creations_per_minute=2, basic_creations_per_minute=2)
        for _ in range(3):  # three files of four parts each
            for _ in range(4):
                headers = await guard.check("partial", basic(), "10.0.0.1")
                assert headers["RateLimit-Limit"] == str(2 * PARTIALS_PER_CREATION)
        # both creations are still there: partials used none of them
        for remaining in ("1", "0"):
            headers = await guard.check("create", basic(), "10.0.0.1")
            assert headers["RateLimit-Limit"] == "2" and headers["RateLimit-Remaining"] == remaining
        with pytest.raises(errors.RateLimited) as info:
            await guard.check("create", basic(), "10.0.0.1")
        assert "2 upload creations per minute" in info.value.message


@pytest.mark.gen_test
async def test_partials_are_bounded_by_their_own_window(backend: str, redis_url: str) -> None:
    async with instances(backend, redis_url) as inst:
        guard = inst.guard(ip_creations_per_minute=1, basic_creations_per_minute=1)
        for _ in range(PARTIALS_PER_CREATION):
            await guard.check("partial", basic(), "10.0.0.2")
        with pytest.raises(errors.RateLimited) as info:
            await guard.check("partial", basic(), "10.0.0.2")
        exc = info.value
        assert exc.status == 429 and exc.code == "ERR_RATE_LIMITED"
        assert f"{PARTIALS_PER_CREATION} partial upload creations per minute per" in exc.message
        assert 1 <= int(exc.headers["Retry-After"]) <= 60
        # the next window allows partials again
        inst.clock.advance(60)
        await guard.check("partial", basic(), "10.0.0.2")
