"""``LiveHub``: per-user fan-out, the per-upload progress rate limit, bounded queues."""

from __future__ import annotations

import asyncio
import threading

from tusd_py.events.live.hub import LiveHub


def progress(upload_id: str, offset: int) -> dict[str, object]:
    return {"type": "upload.progress", "upload_id": upload_id, "offset": offset}


def test_events_reach_the_owner_and_admins_only() -> None:
    async def run() -> None:
        hub = LiveHub()
        await hub.start()
        alice, bob, admin = hub.subscribe("alice"), hub.subscribe("bob"), hub.subscribe(None)
        one = hub.subscribe("alice", upload_id="u2")
        hub.publish("alice", {"type": "upload.created", "upload_id": "u1"})
        hub.publish("alice", {"type": "upload.created", "upload_id": "u2"})
        assert [alice.pending(), bob.pending(), admin.pending(), one.pending()] == [2, 0, 2, 1]
        event = await alice.next(0)
        assert event is not None and event["upload_id"] == "u1" and isinstance(event["at"], str)
        assert await bob.next(0.01) is None
        await hub.aclose()
        assert await alice.next() is None  # closed subscriptions end their readers

    asyncio.run(run())


def test_progress_is_rate_limited_per_upload_and_the_last_offset_arrives() -> None:
    async def run() -> None:
        hub = LiveHub(progress_interval=0.05)
        await hub.start()
        sub = hub.subscribe("alice")
        for offset in range(1, 11):
            hub.publish("alice", progress("u1", offset))
            hub.publish("alice", progress("u2", offset))
        assert [e["offset"] for e in sub._queue] == [1, 1]  # the first of each upload at once
        held = [await sub.next(5.0) for _ in range(4)]
        assert [(e["upload_id"], e["offset"]) for e in held if e] == [
            ("u1", 1),
            ("u2", 1),
            ("u1", 10),
            ("u2", 10),
        ]
        hub.publish("alice", progress("u1", 11))  # held back: window still open
        hub.publish("alice", {"type": "upload.finished", "upload_id": "u1", "offset": 12})
        finished = await sub.next(5.0)
        assert finished is not None and finished["type"] == "upload.finished"
        assert await sub.next(0.1) is None, "a held-back progress event outlived upload.finished"
        await hub.aclose()

    asyncio.run(run())


def test_full_queue_drops_oldest_progress_first_and_counts() -> None:
    async def run() -> None:
        hub = LiveHub(queue_size=4)
        await hub.start()
        slow = hub.subscribe("alice")
        hub.publish("alice", {"type": "upload.created", "upload_id": "x"})
        for n in range(10):
            hub.publish("alice", progress(f"p{n}", n))
        assert slow.pending() == 4 and slow.dropped == 7
        kept = [e["type"] for e in slow._queue]
        assert kept[0] == "upload.created", kept  # progress went first
        await hub.aclose()

    asyncio.run(run())


def test_publish_threadsafe_from_a_worker_thread() -> None:
    async def run() -> None:
        hub = LiveHub()
        await hub.start()
        sub = hub.subscribe("alice")
        worker = threading.Thread(
            target=hub.publish_threadsafe, args=("alice", {"type": "job.completed", "job_id": "j1"})
        )
        worker.start()
        event = await sub.next(5.0)
        worker.join(5.0)
        assert event is not None and event["job_id"] == "j1"
        await hub.aclose()

    asyncio.run(run())
