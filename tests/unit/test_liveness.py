"""``tusd_py.locking.liveness``: only a surely dead holder is judged dead."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from tusd_py.locking.liveness import SUFFIX, ProcessMark, boot_id


def test_a_mark_nobody_locks_is_dead_and_a_locked_one_alive(tmp_path: Path) -> None:
    me = ProcessMark(tmp_path / "me")
    me.open()
    other = tmp_path / f"other{SUFFIX}"
    other.write_bytes(b"")
    assert boot_id() and me.holder == f"{boot_id()} {me.path}"
    assert me.is_dead(f"{me.boot} {other}")  # its process is gone: nobody holds its flock
    fd = os.open(other, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as its live process does
        assert not me.is_dead(f"{me.boot} {other}")
    finally:
        os.close(fd)
    me.close()


def test_what_cannot_be_proven_dead_is_alive(tmp_path: Path) -> None:
    me = ProcessMark(tmp_path / "me")
    me.open()
    gone = tmp_path / f"gone{SUFFIX}"
    gone.write_bytes(b"")
    assert not me.is_dead(f"another-boot-id {gone}")  # another kernel: flock says nothing
    assert not me.is_dead(f"{me.boot} {tmp_path / 'missing'}")  # removed: maybe by hand
    assert not me.is_dead(me.holder)  # ourselves
    assert not me.is_dead("no-path-here")
    me.close()
    assert not Path(me.path).exists()  # a clean exit removes the mark


def test_stale_dead_marks_are_swept_and_others_kept(tmp_path: Path) -> None:
    directory = tmp_path / "marks"
    directory.mkdir()
    stale, young, locked = (directory / f"{n}{SUFFIX}" for n in ("stale", "young", "locked"))
    for path in (stale, young, locked):
        path.write_bytes(b"")
    for path in (stale, locked):
        os.utime(path, (1.0, 1.0))
    fd = os.open(locked, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        mark = ProcessMark(directory, sweep_age=60.0)
        mark.open()
        assert not stale.exists() and young.exists() and locked.exists()
        assert Path(mark.path).exists()
        mark.close()
    finally:
        os.close(fd)


def test_no_directory_means_no_mark(tmp_path: Path) -> None:
    mark = ProcessMark(None)
    mark.open()
    assert mark.holder == ""
    mark.touch()
    mark.close()
