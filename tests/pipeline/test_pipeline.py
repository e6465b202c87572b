"""Pipeline: durable acknowledgement, group commit, idempotent replay, corrupt records, backpressure."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from pathlib import Path

import pyarrow as pa
import pytest

from heron.exceptions import Backpressure, PipelineClosed
from heron.pipeline import WAL, Pipeline
from heron.pipeline.wal import HEADER
from heron.storage import migrate
from heron.storage.chdb import ChDBStorage


def rows(start: int, n: int) -> dict[str, pa.Table]:
    ids = pa.array(range(start, start + n), pa.uint64())
    return {"metric_samples": pa.table({"series_id": ids, "ts": pa.array([1000] * n, pa.int64()),
                                        "value": pa.array([1.0] * n)})}


def count(storage: ChDBStorage) -> tuple[int, int]:
    t = storage.execute(f"SELECT count() AS n, uniqExact(series_id) AS u FROM `{storage.database}`.metric_samples")
    return t.column("n")[0].as_py(), t.column("u")[0].as_py()


@pytest.fixture
def db(storage: ChDBStorage) -> ChDBStorage:
    migrate(storage)
    return storage


def test_ack_means_durable_and_flush_inserts(db: ChDBStorage, tmp_path: Path) -> None:
    p = Pipeline(db, tmp_path / "wal", flush_interval=10)
    p.start()
    seq = p.submit_sync(rows(0, 10), "metrics")
    assert seq == 1
    # Durable before any insert: the record is readable from the WAL on disk.
    assert [r.seq for r in WAL(tmp_path / "wal").read(0)] == [1]
    assert count(db) == (0, 0)
    p.flush()
    assert count(db) == (10, 10)
    p.close()


def test_concurrent_writes_are_group_committed(db: ChDBStorage, tmp_path: Path) -> None:
    p = Pipeline(db, tmp_path / "wal")
    p.start()
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        seqs = list(ex.map(lambda i: p.submit_sync(rows(i * 5, 5), "metrics"), range(200)))
    assert sorted(seqs) == list(range(1, 201))
    fsyncs = p.metrics.wal_fsync._sum.get(), sum(
        s.value for m in p.metrics.wal_fsync.collect() for s in m.samples if s.name.endswith("_count"))
    assert fsyncs[1] < 200, "concurrent writes should share fsyncs"
    p.close()
    assert count(db) == (1000, 1000)


def test_replay_after_crash_is_idempotent(db: ChDBStorage, tmp_path: Path) -> None:
    wal_dir = tmp_path / "wal"
    p = Pipeline(db, wal_dir, flush_interval=3600, batch_rows=10**9)
    p.start()
    for i in range(5):
        p.submit_sync(rows(i * 100, 100), "metrics")
    p.flush()  # 500 rows in storage, checkpoint says done=5
    for i in range(5, 8):
        p.submit_sync(rows(i * 100, 100), "metrics")
    # Simulate a crash after an insert reached storage but before the checkpoint said so:
    # roll the checkpoint back to an intent covering records 6..8 and insert them ourselves.
    p._simulate_crash()
    ckpt = p._read_checkpoint()
    # The batch reaches storage the way the flusher sends it, then the process dies.
    p._insert_with_retry("metric_samples", [rows(i * 100, 100)["metric_samples"] for i in range(5, 8)],
                         f"{ckpt['epoch']}:metric_samples:6-8")
    p._write_checkpoint({"done": 5, "intent": [6, 8], "epoch": ckpt["epoch"]})
    assert count(db) == (800, 800)

    q = Pipeline(db, wal_dir, flush_interval=0.05)
    assert q.start() == 3
    q.flush()
    assert count(db) == (800, 800), "replayed batch must be deduplicated"
    q.submit_sync(rows(5000, 1), "metrics")
    q.close()
    assert count(db) == (801, 801)
    # A third start replays nothing.
    r = Pipeline(db, wal_dir)
    assert r.start() == 0
    r.close()


def test_corrupt_and_torn_records_are_skipped_rest_kept(db: ChDBStorage, tmp_path: Path, caplog) -> None:
    wal_dir = tmp_path / "wal"
    p = Pipeline(db, wal_dir, flush_interval=3600, batch_rows=10**9)
    p.start()
    for i in range(3):
        p.submit_sync(rows(i * 10, 10), "metrics")
    p._simulate_crash()
    seg = sorted(wal_dir.glob("*.wal"))[0]
    data = bytearray(seg.read_bytes())
    # Flip a payload byte of the second record, and append a torn half-record at the end.
    first_len = HEADER.unpack_from(data, 0)[1]
    second = HEADER.size + first_len
    data[second + HEADER.size + 20] ^= 0xFF
    data += data[:HEADER.size + 5]
    seg.write_bytes(bytes(data))

    q = Pipeline(db, wal_dir, flush_interval=0.05)
    assert q.start() == 2
    assert "corrupt or torn record" in caplog.text
    q.flush()
    q.close()
    assert count(db) == (20, 20)
    assert q.metrics.wal_corrupt._value.get() >= 2


def test_full_queue_answers_backpressure_then_recovers(db: ChDBStorage, tmp_path: Path) -> None:
    p = Pipeline(db, tmp_path / "wal", max_queue_bytes=20_000, flush_interval=3600, batch_rows=10**9,
                 retry_after=2)
    p.start()
    accepted = 0
    with pytest.raises(Backpressure) as exc:
        for i in range(1000):
            p.submit_sync(rows(i * 100, 100), "metrics")
            accepted += 1
    assert exc.value.retry_after == 2
    assert 0 < accepted < 1000
    p.flush()  # drains the queue
    p.submit_sync(rows(10**6, 100), "metrics")
    p.close()
    assert count(db) == (accepted * 100 + 100, accepted * 100 + 100)


def test_closed_pipeline_refuses_and_close_flushes(db: ChDBStorage, tmp_path: Path) -> None:
    p = Pipeline(db, tmp_path / "wal", flush_interval=3600, batch_rows=10**9)
    p.start()
    p.submit_sync(rows(0, 50), "metrics")
    p.close()
    assert count(db) == (50, 50)
    with pytest.raises(PipelineClosed):
        p.submit_sync(rows(0, 1), "metrics")


async def test_async_submit(db: ChDBStorage, tmp_path: Path) -> None:
    p = Pipeline(db, tmp_path / "wal")
    p.start()
    seqs = await asyncio.gather(*(p.submit(rows(i, 1), "metrics") for i in range(50)))
    assert sorted(seqs) == list(range(1, 51))
    p.close()
    assert count(db) == (50, 50)


def test_flushed_segments_are_deleted(db: ChDBStorage, tmp_path: Path) -> None:
    wal = tmp_path / "wal"
    p = Pipeline(db, wal, flush_interval=0.01)
    p.wal.segment_bytes = 2000
    p.start()
    for i in range(30):
        p.submit_sync(rows(i * 20, 20), "metrics")
    p.flush()
    p.submit_sync(rows(10**6, 1), "metrics")
    p.flush()
    p.close()
    assert len(list(wal.glob("*.wal"))) <= 2


async def test_cancelled_waiter_does_not_kill_the_writer(db: ChDBStorage, tmp_path: Path) -> None:
    p = Pipeline(db, tmp_path / "wal")
    p.start()
    tasks = [asyncio.create_task(p.submit(rows(i, 1), "metrics")) for i in range(20)]
    await asyncio.sleep(0)
    for t in tasks[::2]:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    # The writer thread survived: later writes are still acknowledged.
    assert await asyncio.wait_for(p.submit(rows(1000, 1), "metrics"), 10) > 0
    assert all(t.is_alive() for t in p._threads)
    p.close()
    n, _ = count(db)
    assert n == 21, "cancelled waiters' writes were already submitted and are kept"


def test_flush_returns_under_sustained_load(db: ChDBStorage, tmp_path: Path) -> None:
    import threading

    p = Pipeline(db, tmp_path / "wal", flush_interval=0.05)
    p.start()
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            p.submit_sync(rows(10_000 + i, 1), "metrics")
            i += 1

    t = threading.Thread(target=load)
    t.start()
    try:
        p.submit_sync(rows(0, 1), "metrics")
        p.flush(timeout=10)  # must not wait for writes submitted after it was called
    finally:
        stop.set()
        t.join()
    p.close()


class _Announcing:
    """The real storage plus the `prefetch` hook the error queue's processor has: records what
    the pipeline announces and inserts; insert k waits for `release[k]`, if any (a backlog
    forms behind it)."""

    def __init__(self, db: ChDBStorage) -> None:
        import threading

        self.db, self.database = db, db.database
        self.announced: list[str] = []
        self.inserted: list[str] = []
        self.release = [threading.Event(), threading.Event()]

    def prefetch(self, table: str, tables: list[pa.Table], token: str) -> None:
        assert table == "metric_samples" and sum(t.num_rows for t in tables) > 0
        self.announced.append(token)

    def insert(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        if len(self.inserted) < len(self.release):
            self.release[len(self.inserted)].wait(10)
        self.inserted.append(dedup_token or "")
        self.db.insert(table, data, dedup_token)


def test_next_full_batch_is_announced_then_handed_over_as_announced(db: ChDBStorage, tmp_path: Path) -> None:
    """With a full batch waiting behind the one being handed over, a storage with `prefetch` is
    told that next batch (its token), and the next insert is exactly that batch."""
    store = _Announcing(db)
    p = Pipeline(store, tmp_path / "wal", flush_interval=0.05, batch_rows=200)  # type: ignore[arg-type]
    p.start()
    for i in range(2):  # one batch in the (held) insert
        p.submit_sync(rows(i * 100, 100), "metrics")
    while p._durable_rows:  # popped: its insert is held
        time.sleep(0.01)
    for i in range(2, 10):
        p.submit_sync(rows(i * 100, 100), "metrics")
    for e in store.release:
        e.set()
    p.flush(20)
    p.close()
    assert count(db) == (1000, 1000)  # every row once
    assert store.announced, "no batch was announced although full ones waited"
    for token in store.announced:  # each announced batch is the very next one inserted
        assert token in store.inserted
        assert store.inserted[store.inserted.index(token) - 1] != token
    order = [int(t.rsplit(":", 1)[1].split("-")[0]) for t in store.inserted]
    assert order == sorted(order) and len(set(store.inserted)) == len(store.inserted)


def test_announced_batch_left_at_a_stop_is_replayed_once(db: ChDBStorage, tmp_path: Path) -> None:
    """A batch popped for announcing and not yet handed over when the pipeline stops stays in the
    WAL: the next start inserts it, and everything else, exactly once."""
    import threading

    store = _Announcing(db)
    p = Pipeline(store, tmp_path / "wal", flush_interval=0.05, batch_rows=200)  # type: ignore[arg-type]
    p.start()
    for i in range(2):
        p.submit_sync(rows(i * 100, 100), "metrics")
    while p._durable_rows:  # batch 1 popped, its insert held
        time.sleep(0.01)
    for i in range(2, 8):  # batches 2, 3, 4 wait
        p.submit_sync(rows(i * 100, 100), "metrics")
    store.release[0].set()  # batch 2 is popped with batch 3 announced; batch 2's insert is held
    while not store.announced:
        time.sleep(0.01)
    stopper = threading.Thread(target=p.stop, kwargs={"timeout": 10})
    stopper.start()
    while not p._crashed:
        time.sleep(0.01)
    store.release[1].set()
    stopper.join()
    assert len(store.inserted) == 2 and store.announced[0] not in store.inserted  # not handed over
    p2 = Pipeline(db, tmp_path / "wal", flush_interval=0.05, batch_rows=200)
    p2.start()
    p2.flush(20)
    p2.close()
    assert count(db) == (800, 800)
