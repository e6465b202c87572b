"""The next queue batch goes to the workers while this one is stored and counted (`prefetch`):
the same rows and counts as without it, each batch once, whatever fails in between."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from heron.errors.ingest import tracking
from heron.errors.queue import SCHEMA
from heron.server import Heron

from .helpers import envelope, exc_event, new_project


def _batch(pid: int, n: int, kind: str) -> pa.Table:
    rows = [(pid, "envelope", "", "", time.time(), "", envelope(("event", exc_event(etype=f"{kind}{i % 2}"))))
            for i in range(n)]
    return pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(zip(*rows, strict=True), SCHEMA, strict=True)],
                                schema=SCHEMA)


def _counts(heron: Heron) -> dict[str, int]:
    return {r["title"].split(":")[0]: r["times_seen"]
            for r in heron.control.query("SELECT title, times_seen FROM error_issues")}


def _stored(heron: Heron) -> tuple[int, int]:
    db = heron.storage.database
    row = heron.storage.execute(f"SELECT count() AS n, uniqExact(event_id) AS u FROM `{db}`.error_events").to_pylist()
    return row[0]["n"], row[0]["u"]


async def test_announced_batch_is_digested_ahead_and_counted_once(heron: Heron,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("heron.errors.process.PIECE", 60)
    pid, _ = new_project(heron)
    et = tracking(heron)
    proc = et.processor
    proc.workers = 2
    a, b, c, d = (_batch(pid, 100, k) for k in "ABCD")
    built: list[int] = []
    real_pieces = proc.pieces

    def pieces(data: pa.Table) -> Any:
        built.append(data.num_rows)
        return real_pieces(data)

    monkeypatch.setattr(proc, "pieces", pieces)
    real_count = et.issues.record_batch

    def fail_once(*args: Any, **kw: Any) -> Any:
        et.issues.record_batch = real_count  # type: ignore[method-assign]
        raise RuntimeError("control store went away")

    et.issues.record_batch = fail_once  # type: ignore[method-assign]
    try:
        proc.prefetch("error_envelopes", [b], "e1:error_envelopes:2-2")
        with pytest.raises(RuntimeError):  # batch 1 fails after B went to the workers...
            proc.process(a, "e1:error_envelopes:1-1")
        assert proc._ahead is not None and proc._ahead.token == "e1:error_envelopes:2-2"
        proc.process(a, "e1:error_envelopes:1-1")  # ...its retry keeps B's digests
        assert proc._ahead is not None
        built.clear()
        proc.prefetch("error_envelopes", [c], "e1:error_envelopes:3-3")
        proc.process(b, "e1:error_envelopes:2-2")
        assert built == [100], "B was split again instead of using the pieces handed out ahead"
        # the pipeline went another way (a replay re-formed its batches): C's digests are dropped
        proc.process(d, "e2:error_envelopes:1-1")
        assert proc._ahead is None
        assert _counts(heron) == {"A0": 50, "A1": 50, "B0": 50, "B1": 50, "D0": 50, "D1": 50}
        assert _stored(heron) == (300, 300)
        spool = proc._spool
        deadline = time.monotonic() + 10  # C's digests finish in the workers, then their files go
        while list(Path(spool).iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not list(Path(spool).iterdir())
        assert et.items.labels("event", "accepted")._value.get() == 300
    finally:
        proc.close()


@pytest.mark.parametrize("prefetch_rows", [40, 0])
def test_a_piece_waiting_is_announced_not_only_a_full_batch(tmp_path: Path, prefetch_rows: int) -> None:
    """The error queue announces the next batch as soon as `prefetch_rows` (a piece) wait behind
    the one handed over, so the workers never sit idle while there is work; 0: a full batch."""
    import threading

    from heron.pipeline import Pipeline

    class Recorder:  # the storage surface the queue's processor presents to its pipeline
        def __init__(self) -> None:
            self.told: list[tuple[int, str]] = []
            self.inserted: list[tuple[int, str]] = []
            self.gate = threading.Event()

        def prefetch(self, table: str, tables: list[pa.Table], token: str) -> None:
            self.told.append((sum(t.num_rows for t in tables), token.split(":", 1)[1]))

        def insert(self, table: str, data: pa.Table, token: str) -> None:
            assert self.gate.wait(10)
            self.inserted.append((data.num_rows, token.split(":", 1)[1]))

    rec = Recorder()
    p = Pipeline(rec, tmp_path, batch_rows=100, flush_interval=0.01)  # type: ignore[arg-type]
    p.prefetch_rows = prefetch_rows
    p.start()
    rows = pa.table({"x": list(range(50))})
    try:
        p.submit_sync({"t": rows}, "errors")  # batch 1: handed over, its insert waits at the gate
        deadline = time.monotonic() + 5
        while p._durable and time.monotonic() < deadline:
            time.sleep(0.005)
        for _ in range(3):  # batch 2 (two records, 100 rows) and 50 rows behind it
            p.submit_sync({"t": rows}, "errors")
        rec.gate.set()
        p.flush(10)
    finally:
        p.close()
    assert rec.inserted == [(50, "t:1-1"), (100, "t:2-3"), (50, "t:4-4")]
    assert rec.told == ([(50, "t:4-4")] if prefetch_rows else [])
