"""The envelope queue: where a Sentry request is acknowledged, as Relay does it.

    request ─▶ auth, size, envelope framing, rate limit ─▶ append the raw (still compressed)
    body to this queue's WAL, one fsync per group commit ─▶ 200 {"id"}
                                        │
                                        ▼ batches of records a..b, every `flush_interval`
                               errors.process.Processor (decompress, normalize, scrub, group,
                               rows, issue counters) — behind the acknowledgement

It is a `heron.pipeline.Pipeline` of its own (own directory, own bound, its own replay) whose
"storage" is the processor: the pipeline's checkpoint/intent machinery hands a replayed batch
over again with the same token after `kill -9`, and the processor is idempotent for it.
A record holds the requests of one event-loop iteration, as they came (a 40 KB event is ~3-10
KB of gzip in the WAL instead of its decoded rows).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from heron.errors.process import PIECE
from heron.pipeline import Pipeline
from heron.selfmon import SelfMetrics

if TYPE_CHECKING:
    from heron.errors.process import Processor

log = logging.getLogger("heron.errors.queue")
TABLE = "error_envelopes"
MAX_GROUP = 1024
"""Requests per WAL record at most: a bigger group is submitted without waiting for the one in
flight (bounds a record's size and what one Backpressure refusal answers at once)."""
COMMIT_DELAY = 0.002
"""When requests keep arriving (the one before came less than this ago), a group waits until
its first request is this old before it is written, as PostgreSQL's `commit_delay`: at a steady
2 000 requests/s a write + fsync takes ~0.2 ms here, so groups held 1-2 requests and each paid a
WAL record, an fsync, two thread hand-offs and the gauges (~0.1 ms of server CPU per event).
A lone request (idle traffic) is written at once; the cost is at most this much ack latency."""
SCHEMA = pa.schema([("project", pa.int64()), ("kind", pa.string()), ("encoding", pa.string()),
                    ("ip", pa.string()), ("received", pa.float64()), ("event_id", pa.string()),
                    ("body", pa.binary())])


class EnvelopeQueue:
    def __init__(self, processor: Processor, directory: Path, *, max_bytes: int, retry_after: int,
                 batch: int = 1000, flush_interval: float = 0.2) -> None:
        # The queue's own SelfMetrics: its gauges would otherwise overwrite the main pipeline's.
        # Error tracking exports the backlog as heron_errors_queue_* instead.
        self.metrics = SelfMetrics()
        self.pipeline = Pipeline(processor, directory, self.metrics, max_queue_bytes=max_bytes,
                                 batch_rows=batch, flush_interval=flush_interval, retry_after=retry_after)
        # The next batch goes to the workers as soon as a piece of it waits (not a full batch):
        # at a steady rate the workers otherwise sat idle while each batch was stored and counted.
        self.pipeline.prefetch_rows = PIECE
        self._batch: list[tuple[Any, ...]] = []
        self._inflight = False  # a group is on its way to the WAL: new requests wait for it
        self._closed = False  # stopping: a group in flight may never resolve; submit (and hear 503)
        self._last = 0.0  # arrival of the request before (loop time)
        self._first = 0.0  # arrival of the first request of the group being formed
        self._timer: asyncio.TimerHandle | None = None  # the group's delayed submit

    def start(self) -> int:
        """Replay what was acknowledged but not processed before a crash; returns records replayed."""
        return self.pipeline.start()

    async def put(self, project: int, kind: str, body: bytes, encoding: str | None, ip: str | None,
                  event_id: str | None, received: float | None = None) -> None:
        """Append one request durably; raises Backpressure (429) / PipelineClosed (503).

        Requests share WAL records: those arriving while the previous group is being written
        and fsynced form the next group (one Arrow table and one submit for all of them; each
        request still returns only once its group is fsynced). The WAL writer would commit them
        together anyway, so the wait is the same, and the per-group work is paid once per
        group instead of once per event-loop iteration."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        now = loop.time()
        busy, self._last = now - self._last < COMMIT_DELAY, now
        self._batch.append((project, kind, encoding or "", ip or "",
                            time.time() if received is None else received, event_id or "", body, fut))
        if len(self._batch) == 1:
            self._first = now
            if not self._inflight:
                if busy:
                    self._timer = loop.call_later(COMMIT_DELAY, self._submit, loop)
                else:
                    loop.call_soon(self._submit, loop)
        if len(self._batch) >= MAX_GROUP or self._closed:
            loop.call_soon(self._submit, loop)
        await fut

    def _submit(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._batch = self._batch, []
        if not batch:  # submitted already (a full group, then the scheduled call)
            return
        futs = [b[7] for b in batch]
        cols = list(zip(*(b[:7] for b in batch), strict=True))
        table = pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(cols, SCHEMA, strict=True)],
                                     schema=SCHEMA)
        try:
            done = self.pipeline.submit_nowait({TABLE: table}, "errors")
        except Exception as exc:  # Backpressure, PipelineClosed: every request of the group hears it
            for f in futs:
                if not f.done():
                    f.set_exception(exc)
            return
        self._inflight = True

        def resolve(cf: concurrent.futures.Future[int]) -> None:
            exc = cf.exception()
            for f in futs:
                if not f.done():
                    f.set_exception(exc) if exc else f.set_result(None)
            self._inflight = False
            if self._batch and self._timer is None:  # what arrived meanwhile: the next group,
                wait = self._first + COMMIT_DELAY - loop.time()  # once its first is old enough
                if wait > 0 and not self._closed and len(self._batch) < MAX_GROUP:
                    self._timer = loop.call_later(wait, self._submit, loop)
                else:
                    self._submit(loop)

        done.add_done_callback(lambda cf: loop.call_soon_threadsafe(resolve, cf))

    def flush(self, timeout: float = 60.0) -> None:
        """Block until everything acknowledged so far is processed (tests, shutdown)."""
        self.pipeline.flush(timeout)

    def close(self, drain: float = 10.0) -> None:
        """Stop: process what is queued for up to `drain` seconds, then stop after the batch in
        progress. What is left stays in the queue's WAL and is processed after the next start."""
        self._closed = True
        try:
            self.pipeline.flush(drain)
        except TimeoutError:
            log.warning("envelope queue: %d envelopes left for the next start", self.backlog)
        if self.pipeline.stop():  # stop now; what is left stays in the WAL for the next start
            self.pipeline.storage.close()  # the processor: its worker processes

    @property
    def backlog(self) -> int:
        """Records acknowledged and not yet processed."""
        return self.pipeline.backlog_rows

    @property
    def backlog_bytes(self) -> int:
        return self.pipeline.queued_bytes
