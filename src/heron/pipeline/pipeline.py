"""From a receiver's batch to rows in storage, acknowledged only once durable.

    submit() ──▶ pending ──writer thread──▶ WAL append + one fsync per group ──▶ ack
                                                   │
                                                   ▼
                                          flush queue (bounded, bytes)
                                                   │ flusher thread: every `flush_interval`
                                                   ▼ or `batch_rows`
                           checkpoint intent (a..b) ─▶ insert per table, token "table:a-b" ─▶ done b

Replay is idempotent: after a crash the records after `done` are inserted again, and the first
batch is re-formed exactly as the intent recorded, with the same dedup tokens, so a batch that
had reached storage before the crash is dropped by ClickHouse's insert deduplication.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from heron.exceptions import Backpressure, PipelineClosed, StorageError
from heron.pipeline.wal import WAL, Record, encode_payload, frame
from heron.selfmon import SelfMetrics
from heron.storage.base import Storage

log = logging.getLogger("heron.pipeline")

MAX_INSERT_ATTEMPTS = 8


class _Pending:
    __slots__ = ("future", "nbytes", "rows", "signal", "tables")

    def __init__(self, tables: dict[str, pa.Table], signal: str, nbytes: int) -> None:
        self.tables, self.signal, self.nbytes = tables, signal, nbytes
        self.rows = sum(t.num_rows for t in tables.values())
        self.future: concurrent.futures.Future[int] = concurrent.futures.Future()


class Pipeline:
    """Durable, bounded, batched ingest into one `Storage`."""

    def __init__(self, storage: Storage, wal_dir: str | Path, metrics: SelfMetrics | None = None, *,
                 max_queue_bytes: int = 256 << 20, batch_rows: int = 200_000,
                 flush_interval: float = 1.0, retry_after: int = 1) -> None:
        self.storage = storage
        self.wal = WAL(wal_dir)
        self.dir = Path(wal_dir)
        self.metrics = metrics or SelfMetrics()
        self.max_queue_bytes = max_queue_bytes
        self.batch_rows = batch_rows
        self.flush_interval = flush_interval
        self.retry_after = retry_after
        self.metrics.queue_limit_bytes.set(max_queue_bytes)

        self._cond = threading.Condition()
        self._pending: list[_Pending] = []      # submitted, not yet in the WAL
        self._durable: deque[tuple[Record, int]] = deque()  # in the WAL, not yet in storage
        self._durable_rows = 0
        self._queued_bytes = 0                  # pending + durable, what the limit bounds
        self._queued_rows = 0
        self._next_seq = 1
        self._done = 0
        self._forced_end: int | None = None     # replay: first batch must end exactly here
        self._forced_start: int | None = None
        self._closing = False
        self._flush_requested = False
        self._threads: list[threading.Thread] = []
        self._started = False
        self._epoch = ""
        self._crashed = False
        self.prefetch_rows = 0
        """Rows that must wait behind the batch handed over for a storage with `prefetch` to be
        told of them (0, or more than a batch: a full batch, `batch_rows`)."""

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> int:
        """Replay the WAL tail into the flush queue, then start the writer and flusher threads.

        Returns the number of records replayed."""
        ckpt = self._read_checkpoint()
        self._done = ckpt.get("done", 0)
        # The epoch keeps dedup tokens unique even if the WAL directory is ever wiped while
        # storage keeps its deduplication window.
        self._epoch = ckpt.get("epoch") or uuid.uuid4().hex[:12]
        intent = ckpt.get("intent")
        replayed, last = 0, self._done
        for rec in self.wal.read(self._done):
            nbytes = sum(t.nbytes for t in rec.tables.values())
            self._durable.append((rec, nbytes))
            self._durable_rows += rec.rows
            self._queued_bytes += nbytes
            self._queued_rows += rec.rows
            last = max(last, rec.seq)
            replayed += 1
        if self.wal.corrupt_records:
            self.metrics.wal_corrupt.inc(self.wal.corrupt_records)
        if intent and intent[0] > self._done:
            self._forced_end = intent[1]
            self._forced_start = intent[0]
        self._next_seq = last + 1
        if replayed:
            log.info("WAL replay: %d records (%d rows) after seq %d", replayed, self._queued_rows, self._done)
        self._update_gauges()
        for target, name in ((self._writer, "heron-wal-writer"), (self._flusher, "heron-flusher")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self._started = True
        return replayed

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new writes, make pending ones durable, flush everything to storage."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)
        self.wal.close()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop now, without draining: refuse new writes and stop both threads after the write
        and the batch in progress. What is queued stays in the WAL (the checkpoint as it is) and
        is replayed at the next start, as after a kill -9. True once both threads are gone
        (False: the batch in progress outlasted `timeout`; it finishes on its own)."""
        with self._cond:
            self._crashed = self._closing = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self.wal.close()
        return not any(t.is_alive() for t in self._threads)

    def _simulate_crash(self) -> None:
        """Tests: stop both threads at once, leaving WAL and checkpoint as a kill -9 would."""
        self.stop()

    @property
    def backlog_rows(self) -> int:
        """Rows accepted (submitted or durable) and not yet in storage."""
        return self._queued_rows

    # ---- submitting ------------------------------------------------------------------------
    def submit_nowait(self, tables: dict[str, pa.Table], signal: str) -> concurrent.futures.Future[int]:
        """Queue a write; the future resolves (to its WAL seq) once durable.

        Raises Backpressure at once when the queue is full, PipelineClosed when shutting down."""
        tables = {k: v for k, v in tables.items() if v.num_rows}
        nbytes = sum(t.nbytes for t in tables.values())
        item = _Pending(tables, signal, nbytes)
        # Running futures cannot be cancelled: a client that goes away (a cancelled request
        # handler) must not cancel a write that is already on its way to the WAL.
        item.future.set_running_or_notify_cancel()
        if not tables:
            item.future.set_result(0)
            return item.future
        with self._cond:
            if self._closing or not self._started:
                raise PipelineClosed("Heron is shutting down" if self._closing else "pipeline not started")
            if self._queued_bytes + nbytes > self.max_queue_bytes and self._queued_bytes > 0:
                self.metrics.ingest_rejected.labels(signal, "queue_full").inc(item.rows)
                raise Backpressure(
                    f"ingest queue is full ({self._queued_bytes} of {self.max_queue_bytes} bytes); "
                    f"retry after {self.retry_after}s", self.retry_after)
            self._queued_bytes += nbytes
            self._queued_rows += item.rows
            self._pending.append(item)
            self._cond.notify_all()
        return item.future

    async def submit(self, tables: dict[str, pa.Table], signal: str) -> int:
        """Async form of `submit_nowait` that returns once the write is durable."""
        return await asyncio.wrap_future(self.submit_nowait(tables, signal))

    def submit_sync(self, tables: dict[str, pa.Table], signal: str, timeout: float | None = None) -> int:
        return self.submit_nowait(tables, signal).result(timeout)

    def flush(self, timeout: float = 30.0) -> None:
        """Block until everything acknowledged so far is in storage (tests, shutdown, rules)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._next_seq - 1 + len(self._pending)
            self._flush_requested = True
            self._cond.notify_all()
            while self._done < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("pipeline flush timed out")
                self._flush_requested = True
                self._cond.notify_all()
                self._cond.wait(min(left, 0.05))
            # Served: a request left set would make the next lone write flush at once.
            self._flush_requested = False

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    # ---- writer: group commit --------------------------------------------------------------
    def _writer(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if self._crashed or (not self._pending and self._closing):
                    self._cond.notify_all()
                    return
                group, self._pending = self._pending, []
                first = self._next_seq
                self._next_seq += len(group)
            framed, failed = [], None
            try:
                framed = [frame(first + i, encode_payload(p.tables)) for i, p in enumerate(group)]
                t0 = time.perf_counter()
                self.wal.append(framed, first)
                self.metrics.wal_fsync.observe(time.perf_counter() - t0)
            except Exception as exc:  # disk full, I/O error: the writes are not durable
                log.exception("WAL append failed")
                failed = exc
            with self._cond:
                if failed is None:
                    for i, p in enumerate(group):
                        self._durable.append((Record(first + i, p.tables), p.nbytes))
                        self._durable_rows += p.rows
                else:
                    self._next_seq = first  # nothing of this group was acknowledged
                    for p in group:
                        self._queued_bytes -= p.nbytes
                        self._queued_rows -= p.rows
                self._update_gauges()
                self._cond.notify_all()
            for i, p in enumerate(group):
                if failed is None:
                    self.metrics.ingest_rows.labels(p.signal).inc(p.rows)
                    self.metrics.ingest_requests.labels(p.signal).inc()
                    p.future.set_result(first + i)
                else:
                    p.future.set_exception(StorageError(f"write-ahead log unavailable: {failed}"))

    # ---- flusher: batched inserts ----------------------------------------------------------
    def _flusher(self) -> None:
        # A storage with `prefetch` (the error queue's processor) is told the batch after the one
        # it is handed next, when a full one is already waiting: it starts digesting that batch
        # while it stores and counts this one. The batch is popped now and handed over exactly
        # as told (same records, same token), on the next turn.
        prefetch: Callable[[str, list[pa.Table], str], None] | None = getattr(self.storage, "prefetch", None)
        ahead: list[tuple[Record, int]] = []
        while True:
            with self._cond:
                if self._crashed:
                    return
                forced: tuple[int | None, int] | None = None
                if ahead:
                    batch, ahead = ahead, []
                else:
                    since = time.monotonic()  # the deadline follows flush_interval (a reload changes it)
                    while True:
                        if self._crashed:
                            return
                        rows = self._durable_rows
                        stop = self._closing and not self._pending
                        deadline = since + self.flush_interval
                        if self._durable and (rows >= self.batch_rows or self._flush_requested or stop
                                              or time.monotonic() >= deadline or self._forced_end):
                            break
                        if stop and not self._durable:
                            self._cond.notify_all()
                            return
                        self._cond.wait(max(0.0, min(deadline - time.monotonic(), 0.1)) or 0.05)
                        if not self._durable:
                            since = time.monotonic()
                    self._flush_requested = False
                    end = self._forced_end
                    batch = self._pop_batch(end)
                    forced = (self._forced_start, end) if end is not None else None
                    self._forced_end = self._forced_start = None
                if prefetch is not None and batch and forced is None and \
                        self._durable_rows >= min(self.prefetch_rows or self.batch_rows, self.batch_rows):
                    ahead = self._pop_batch(None)
            if ahead and prefetch is not None:
                tables: dict[str, list[pa.Table]] = {}
                for rec, _ in ahead:
                    for name, table in rec.tables.items():
                        tables.setdefault(name, []).append(table)
                a, b = ahead[0][0].seq, ahead[-1][0].seq
                for name, parts in tables.items():
                    prefetch(name, parts, f"{self._epoch}:{name}:{a}-{b}")
            if batch:
                self._flush_batch(batch, forced)

    def _pop_batch(self, end: int | None) -> list[tuple[Record, int]]:
        """The next batch off the durable queue (under the lock): up to `batch_rows` rows, or
        exactly through record `end` when a replay re-forms a recorded intent."""
        batch: list[tuple[Record, int]] = []
        n = 0
        while self._durable:
            rec, _nb = self._durable[0]
            if end is not None and rec.seq > end:
                break
            if end is None and batch and n + rec.rows > self.batch_rows:
                break
            batch.append(self._durable.popleft())
            self._durable_rows -= rec.rows
            n += rec.rows
        return batch

    def _flush_batch(self, batch: list[tuple[Record, int]],
                     forced: tuple[int | None, int] | None = None) -> None:
        a, b = batch[0][0].seq, batch[-1][0].seq
        if forced and forced[0] is not None:
            # Re-forming the batch of a pending intent: same range, hence the same dedup tokens,
            # even if a record of it was since found corrupt and skipped.
            a, b = forced[0], max(forced[1], b)
        self._write_checkpoint({"done": self._done, "intent": [a, b], "epoch": self._epoch})
        by_table: dict[str, list[pa.Table]] = {}
        for rec, _ in batch:
            for name, table in rec.tables.items():
                by_table.setdefault(name, []).append(table)
        for name, tables in by_table.items():
            self._insert_with_retry(name, tables, f"{self._epoch}:{name}:{a}-{b}")
        nbytes = sum(nb for _, nb in batch)
        rows = sum(r.rows for r, _ in batch)
        with self._cond:
            self._done = b
            self._write_checkpoint({"done": b, "intent": None, "epoch": self._epoch})
            self._queued_bytes -= nbytes
            self._queued_rows -= rows
            self._update_gauges()
            self._cond.notify_all()
        self.wal.drop_through(b)

    def _insert_with_retry(self, name: str, tables: list[pa.Table], token: str) -> None:
        try:
            # One contiguous, aligned chunk per column: chDB reads it faster, and buffers sliced out
            # of WAL records may be unaligned (Arrow's Acero warns on those).
            data = pa.concat_tables(tables, promote_options="default").combine_chunks()
        except pa.ArrowInvalid:
            data = None
        delay = 0.1
        for attempt in range(1, MAX_INSERT_ATTEMPTS + 1):
            t0 = time.perf_counter()
            try:
                if data is None:  # schemas differ: insert piecewise, each its own token
                    for i, t in enumerate(tables):
                        self.storage.insert(name, t, f"{token}/{i}")
                else:
                    self.storage.insert(name, data, token)
                self.metrics.insert_duration.labels(name).observe(time.perf_counter() - t0)
                self.metrics.insert_rows.labels(name).inc(sum(t.num_rows for t in tables))
                return
            except Exception as exc:
                self.metrics.storage_errors.labels("insert").inc()
                log.warning("insert into %s failed (attempt %d/%d): %s", name, attempt,
                            MAX_INSERT_ATTEMPTS, exc)
                if self._closing and attempt >= 3:
                    break
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._deadletter(name, tables, token)

    def _deadletter(self, name: str, tables: list[pa.Table], token: str) -> None:
        """Keep rows storage keeps refusing, so nothing acknowledged is silently lost."""
        ddir = self.dir / "deadletter"
        ddir.mkdir(exist_ok=True)
        path = ddir / f"{token.replace(':', '_').replace('/', '_')}.arrow"
        with pa.OSFile(str(path), "wb") as sink:
            table = tables[0]
            with pa.ipc.new_file(sink, table.schema) as writer:
                for t in tables:
                    if t.schema.equals(table.schema):
                        writer.write_table(t)
        rows = sum(t.num_rows for t in tables)
        self.metrics.deadletter_rows.labels(name).inc(rows)
        log.error("set aside %d rows for %s in %s after repeated insert failures", rows, name, path)

    # ---- checkpoint ------------------------------------------------------------------------
    @property
    def _ckpt_path(self) -> Path:
        return self.dir / "checkpoint.json"

    def _read_checkpoint(self) -> dict:
        try:
            data = json.loads(self._ckpt_path.read_text())
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("WAL checkpoint unreadable (%s); replaying the whole WAL (idempotent)", exc)
            return {}

    def _write_checkpoint(self, data: dict) -> None:
        tmp = self._ckpt_path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._ckpt_path)
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _update_gauges(self) -> None:
        self.metrics.queue_bytes.set(self._queued_bytes)
        self.metrics.queue_rows.set(self._queued_rows)
        try:
            self.metrics.wal_bytes.set(self.wal.size_bytes())
        except OSError:
            pass
