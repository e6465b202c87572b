"""Insert spool files: a process killed mid-insert must not leak them (in /dev/shm they hold RAM)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa

from heron.storage.chdb import ChDBStorage, sweep_spool


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_sweep_removes_files_of_dead_processes_only(tmp_path: Path) -> None:
    dead = tmp_path / f"heron-insert-{_dead_pid()}-aa.arrows"
    alive = tmp_path / f"heron-insert-{os.getpid()}-bb.arrows"
    old_unnamed = tmp_path / "heron-insert-0123456789abcdef.arrows"
    new_unnamed = tmp_path / "heron-insert-fedcba9876543210.arrows"
    other = tmp_path / "unrelated.arrows"
    for f in (dead, alive, old_unnamed, new_unnamed, other):
        f.write_bytes(b"x")
    hour_ago = time.time() - 3700
    os.utime(old_unnamed, (hour_ago, hour_ago))
    assert sweep_spool(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [alive.name, new_unnamed.name, other.name])


def test_insert_leaves_no_spool_file(storage: ChDBStorage) -> None:
    from heron.storage import chdb
    before = set(chdb._SPOOL.glob(f"heron-insert-{os.getpid()}-*"))
    storage.command(f"CREATE TABLE IF NOT EXISTS `{storage.database}`.spool_t (x Int64) ENGINE = Memory")
    storage.insert("spool_t", pa.table({"x": pa.array([1, 2, 3], pa.int64())}))
    assert storage.execute(f"SELECT sum(x) AS s FROM `{storage.database}`.spool_t").to_pylist() == [{"s": 6}]
    assert set(chdb._SPOOL.glob(f"heron-insert-{os.getpid()}-*")) == before
