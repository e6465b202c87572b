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
One record is one request, so a 40 KB event costs ~10 KB of WAL instead of its decoded rows.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from heron.pipeline import Pipeline
from heron.selfmon import SelfMetrics

if TYPE_CHECKING:
    from heron.errors.process import Processor

TABLE = "error_envelopes"
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

    def start(self) -> int:
        """Replay what was acknowledged but not processed before a crash; returns records replayed."""
        return self.pipeline.start()

    async def put(self, project: int, kind: str, body: bytes, encoding: str | None, ip: str | None,
                  event_id: str | None, received: float | None = None) -> None:
        """Append one request durably; raises Backpressure (429) / PipelineClosed (503)."""
        rec = pa.RecordBatch.from_arrays(
            [pa.array([project], pa.int64()), pa.array([kind]), pa.array([encoding or ""]),
             pa.array([ip or ""]), pa.array([time.time() if received is None else received], pa.float64()),
             pa.array([event_id or ""]), pa.array([body], pa.binary())], schema=SCHEMA)
        await self.pipeline.submit({TABLE: pa.Table.from_batches([rec])}, "errors")

    def flush(self, timeout: float = 60.0) -> None:
        """Block until everything acknowledged so far is processed (tests, shutdown)."""
        self.pipeline.flush(timeout)

    def close(self) -> None:
        self.pipeline.close()

    @property
    def backlog(self) -> int:
        """Records acknowledged and not yet processed."""
        return int(self.metrics.registry.get_sample_value("heron_pipeline_queue_rows") or 0)

    @property
    def backlog_bytes(self) -> int:
        return self.pipeline.queued_bytes
