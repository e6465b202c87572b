"""Queries from several threads while another thread inserts: none may fail. (chDB refuses every
statement while a streaming insert is open on the session; the insert path must never hold one,
or rule queries fail under ingest load with "Cannot run a query while a streaming insert is
active on this connection".)"""

from __future__ import annotations

import threading
import time

import pyarrow as pa

from heron.storage.chdb import ChDBStorage


def test_queries_run_while_another_thread_inserts(storage: ChDBStorage) -> None:
    storage.command(f"CREATE TABLE `{storage.database}`.s (id UInt64, v Float64) ENGINE = MergeTree ORDER BY id")
    batch, batches = 20_000, 30
    errors: list[BaseException] = []
    done = threading.Event()
    counts: list[int] = []

    def insert() -> None:
        try:
            for i in range(batches):
                ids = pa.array(range(i * batch, (i + 1) * batch), pa.uint64())
                storage.insert("s", pa.table({"id": ids, "v": pa.array([1.0] * batch)}))
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def query() -> None:
        try:
            while not done.is_set():
                t = storage.execute(f"SELECT count() AS n, sum(v) AS s FROM `{storage.database}`.s")
                counts.append(int(t.column("n")[0].as_py()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=insert)] + [threading.Thread(target=query) for _ in range(3)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert time.monotonic() - t0 < 120
    assert len(set(counts)) > 1  # the queries ran while rows were arriving
    final = storage.execute(f"SELECT count() AS n FROM `{storage.database}`.s").column("n")[0].as_py()
    assert final == batch * batches
