"""``Lifecycle``: background tasks never fail unseen; waits end at drain."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from tusd_py.ops.lifecycle import Lifecycle


async def _fail() -> None:
    raise RuntimeError("boom")


def test_a_failed_background_task_is_logged_not_left_unretrieved(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        lifecycle = Lifecycle()
        lifecycle.spawn(_fail())
        await lifecycle.join_tasks(5.0)

    unretrieved: list[object] = []
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))
    with caplog.at_level(logging.ERROR, logger="tusd_py.app"):
        loop.run_until_complete(main())
        gc.collect()
    loop.close()
    assert unretrieved == []
    assert any("background task failed: RuntimeError: boom" in r.getMessage() for r in caplog.records)


def test_wait_draining_ends_when_draining_begins() -> None:
    async def main() -> None:
        lifecycle = Lifecycle()
        assert not lifecycle.draining
        assert await lifecycle.wait_draining(0.01) is False
        waiter = asyncio.ensure_future(lifecycle.wait_draining(60.0))
        await asyncio.sleep(0)
        lifecycle.draining = True
        assert await asyncio.wait_for(waiter, 5.0) is True
        assert lifecycle.draining

    asyncio.run(main())
