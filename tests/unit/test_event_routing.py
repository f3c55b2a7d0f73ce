"""Event fan-out: a sink is called only for the event kinds it declared, and
the live sink builds nothing while its hub has nobody to tell."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from types import SimpleNamespace
from typing import cast

from tusd_py.core.config import load_config
from tusd_py.core.events import LogEventSink, MultiSink
from tusd_py.core.models import UploadInfo
from tusd_py.events.live.hub import LiveHub
from tusd_py.events.live.sink import LiveEventSink
from tusd_py.jobs.system import JobsSink, JobSystem
from tusd_py.ops.logs import LogPipeline


def info(upload_id: str = "a" * 32, offset: int = 0) -> UploadInfo:
    now = time.time()
    return UploadInfo(id=upload_id, owner="alice", length=10, offset=offset, created_at=now, updated_at=now)


class Recorder:
    """Records every event it is called with; ``event_kinds`` as given."""

    def __init__(self, kinds: frozenset[str] | None = None) -> None:
        if kinds is not None:
            self.event_kinds = kinds
        self.seen: list[str] = []

    def emit(self, event: str, info: UploadInfo, detail: str | None = None) -> None:
        self.seen.append(event)


class Broken:
    event_kinds = frozenset({"upload.finished"})

    def emit(self, event: str, info: UploadInfo, detail: str | None = None) -> None:
        raise RuntimeError("boom")


def test_a_sink_is_called_only_for_the_kinds_it_declared() -> None:
    finished_only = Recorder(frozenset({"upload.finished"}))
    everything = Recorder()
    sink = MultiSink([finished_only, Broken(), everything])
    for event in ("upload.created", "upload.progress", "upload.finished", "upload.progress", "custom"):
        sink.emit(event, info())
    assert finished_only.seen == ["upload.finished"]
    # a failing sink does not keep the others from their events
    assert everything.seen == [
        "upload.created",
        "upload.progress",
        "upload.finished",
        "upload.progress",
        "custom",
    ]
    assert sink.sinks_for("upload.progress") == (everything,)


def test_the_log_sink_is_not_routed_progress_but_every_lifecycle_event() -> None:
    log = LogEventSink()
    sink = MultiSink([log])
    assert sink.sinks_for("upload.progress") == ()
    for event in (
        "upload.created",
        "upload.finished",
        "upload.terminated",
        "upload.expired",
        "upload.failed",
    ):
        assert sink.sinks_for(event) == (log,)


def test_live_sink_builds_nothing_while_the_hub_is_idle_and_delivers_once_subscribed() -> None:
    async def run() -> None:
        hub = LiveHub(progress_interval=60)
        await hub.start()
        sink = MultiSink([LiveEventSink(hub)])
        assert sink.sinks_for("upload.expired") == ()
        for offset in range(5):  # nobody listens: no rate-limit slot is kept either
            sink.emit("upload.progress", info(offset=offset))
        sink.emit("upload.created", info())
        assert hub.idle and hub.delivered == 0
        sub = hub.subscribe("alice")
        assert not hub.idle
        sink.emit("upload.progress", info(offset=7))  # the first of a window goes out at once
        sink.emit("upload.finished", info(offset=10))
        first, second = await sub.next(0), await sub.next(0)
        assert first is not None and (first["type"], first["offset"]) == ("upload.progress", 7)
        assert second is not None and (second["type"], second["offset"]) == ("upload.finished", 10)
        hub.unsubscribe(sub)
        assert hub.idle
        await hub.aclose()

    asyncio.run(run())


def test_the_lifecycle_line_carries_the_event_and_the_upload() -> None:
    out = io.StringIO()
    pipeline = LogPipeline(out)
    pipeline.start()
    logger = logging.getLogger(f"tusd_py.test.events.{id(pipeline)}")
    logger.propagate = False
    logger.handlers[:] = [pipeline.handler]
    logger.setLevel(logging.INFO)
    sink = LogEventSink(logger)
    sink.emit("upload.created", info(offset=3))
    sink.emit("upload.progress", info(offset=4))  # never logged
    sink.emit("upload.failed", info(offset=5), detail="disk full")
    pipeline.stop()
    created, failed = (json.loads(line) for line in out.getvalue().splitlines())
    keys = ("level", "msg", "event", "upload_id", "user", "offset", "length", "storage")
    assert {k: created[k] for k in keys} == {
        "level": "info", "msg": "UploadCreated", "event": "UploadCreated", "upload_id": "a" * 32,
        "user": "alice", "offset": 3, "length": 10, "storage": "disk",
    }  # fmt: skip
    assert (failed["event"], failed["offset"], failed["detail"]) == ("UploadFailed", 5, "disk full")


def test_the_jobs_sink_takes_completion_and_removal_and_upload_webhooks_only_when_configured() -> None:
    def sink(**overrides: object) -> JobsSink:
        return JobsSink(cast(JobSystem, SimpleNamespace(config=load_config(overrides=overrides))))

    assert sink().event_kinds == {"upload.finished", "upload.terminated", "upload.expired"}
    hooked = sink(**{"hooks.url": ["http://127.0.0.1:9/hook"], "hooks.secret": "s" * 32}).event_kinds
    assert {"upload.created", "upload.finished", "upload.terminated", "upload.expired"} <= hooked
    assert "upload.progress" not in hooked
