"""The client's resume store: fingerprints, atomic writes, pruning (injected clock), concurrency."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

from tusd_py.cli.client.resume_store import ResumeStore, default_cache_dir, download_key, fingerprint


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_default_cache_dir_follows_xdg(tmp_path: Path) -> None:
    assert default_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "tusd-py"
    assert default_cache_dir({}) == Path.home() / ".cache" / "tusd-py"
    assert default_cache_dir({"XDG_CACHE_HOME": "relative/dir"}) == Path.home() / ".cache" / "tusd-py"


def test_fingerprint_changes_with_each_part_of_the_identity(tmp_path: Path) -> None:
    base = fingerprint(tmp_path / "a", 10, 5, "http://h/files/")
    assert base == fingerprint(tmp_path / "a", 10, 5, "http://h/files")  # trailing slash is not identity
    assert base == fingerprint(tmp_path / "x" / ".." / "a", 10, 5, "http://h/files/")  # same real path
    others = {
        fingerprint(tmp_path / "b", 10, 5, "http://h/files/"),
        fingerprint(tmp_path / "a", 11, 5, "http://h/files/"),
        fingerprint(tmp_path / "a", 10, 6, "http://h/files/"),
        fingerprint(tmp_path / "a", 10, 5, "http://other/files/"),
        download_key("http://h/files/a", tmp_path / "a"),
    }
    assert base not in others and len(others) == 5


def test_round_trip_and_stamp(tmp_path: Path) -> None:
    clock = FakeClock()
    store = ResumeStore(tmp_path / "c", clock=clock)
    assert store.get("k") is None
    stored = store.put("k", {"mode": "single", "url": "http://h/files/1"})
    assert stored == {"mode": "single", "url": "http://h/files/1", "updated_at": clock.now}
    # A second store object (another process) sees it.
    assert ResumeStore(tmp_path / "c", clock=clock).get("k") == stored
    clock.now += 5
    updated = store.update("k", lambda old: {**(old or {}), "complete": True})
    assert updated["complete"] is True and updated["updated_at"] == clock.now
    store.delete("k")
    assert store.get("k") is None and store.keys() == []
    store.delete("never-there")


def test_writes_are_atomic_and_private(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    store = ResumeStore(directory)
    for index in range(20):
        store.put(f"k{index}", {"url": f"u{index}"})
    assert sorted(p.name for p in directory.iterdir()) == ["resume.json", "resume.json.lock"]
    assert stat.S_IMODE(os.stat(directory / "resume.json").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    data = json.loads((directory / "resume.json").read_text())
    assert data["version"] == 1 and len(data["entries"]) == 20


def test_corrupt_or_foreign_files_are_treated_as_empty(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    directory.mkdir()
    store = ResumeStore(directory)
    for garbage in (
        "{not json",
        "[]",
        '{"version": 99, "entries": {"k": {}}}',
        '{"version": 1, "entries": 3}',
    ):
        (directory / "resume.json").write_text(garbage)
        assert store.get("k") is None
    store.put("k", {"url": "u"})
    assert store.get("k") == {"url": "u", "updated_at": store.get("k")["updated_at"]}  # type: ignore[index]


def test_old_entries_are_pruned_on_write(tmp_path: Path) -> None:
    clock = FakeClock()
    store = ResumeStore(tmp_path / "c", clock=clock, max_age=100.0)
    store.put("old", {"url": "a"})
    clock.now += 60
    store.put("young", {"url": "b"})
    clock.now += 50  # "old" is 110 s old, "young" 50 s
    store.put("new", {"url": "c"})
    assert store.keys() == ["new", "young"]


def test_concurrent_updates_lose_nothing(tmp_path: Path) -> None:
    store = ResumeStore(tmp_path / "c")
    store.put("shared", {"parts": [None] * 8})

    def fill(index: int) -> None:
        other = ResumeStore(tmp_path / "c")  # like another process: its own lock file handle

        def change(old: dict | None) -> dict:  # type: ignore[type-arg]
            assert old is not None
            old["parts"][index] = f"url-{index}"
            return old

        for _ in range(5):
            other.update("shared", change)
            other.put(f"own-{index}-{_}", {"n": index})

    threads = [threading.Thread(target=fill, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    entry = store.get("shared")
    assert entry is not None and entry["parts"] == [f"url-{i}" for i in range(8)]
    assert len([k for k in store.keys() if k.startswith("own-")]) == 40
