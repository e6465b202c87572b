"""Start-up warm-up of remote-write ingest, so that the first burst after a start is not slower
than the next ones.

Real senders hit a fresh receiver hard: after a restart, Prometheus' queue manager replays its
backlog at full concurrency. Measured on a fresh `heron up` (sequential 2000-series requests,
/tmp/notes/s5-h1.md): the first request of new series cost ~2x the next ones (decode 14 against
8 ms, Arrow IPC 2.4 against 0.6), nearly all of it memory the process touched for the first
time, and glibc returning freed memory to the kernel between requests:

- glibc maps every block over its mmap threshold (128 KiB until a large free raises it) freshly
  and unmaps it on free, and trims each arena's top above 128 KiB: a request's temporaries (the
  body, its uint8 view, field arrays of ~12k entries) are zeroed pages from the kernel again and
  again until the thresholds have grown. `keep_malloc_memory` fixes them at 32 MiB (mmap) and
  64 MiB (trim) with `mallopt`, as `MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_` would:
  a thread's arena keeps what it used, at most its peak plus 64 MiB.
- Decoding runs in its own thread pool (remote_write_pool), whose threads are started now, each
  decoding one synthetic request (generic series, a throwaway label cache) and building its
  tables and WAL payload in memory: the threads exist and their arenas are grown before the
  first request. Nothing reaches the WAL, storage, the head, the label cache or the limits.

`HERON_INGEST_WARMUP=0` turns both off (bench/remote_write.py `--variant` measures it side by
side); glibc's own environment variables, when set, win over `keep_malloc_memory`.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import logging
import os
import platform
import threading
import time

import cramjam
import numpy as np
import pyarrow as pa

from heron.metrics.proto import remote_pb2
from heron.metrics.remote_write import LabelsCache, decode_write_request
from heron.metrics.writer import SAMPLES_SCHEMA
from heron.pipeline.wal import encode_payload

log = logging.getLogger("heron.metrics")

M_TRIM_THRESHOLD = -1  # glibc malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's ceiling for the dynamic threshold (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 64 << 20
SERIES = 2000  # Prometheus' default max_samples_per_send


def enabled() -> bool:
    return os.environ.get("HERON_INGEST_WARMUP", "1").strip() != "0"


def keep_malloc_memory() -> bool:
    """Fix glibc's mmap and trim thresholds (see the module doc); False when not glibc, turned
    off, or already set by the environment."""
    if not enabled() or platform.libc_ver()[0] != "glibc":
        return False
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def synthetic_request(n: int = SERIES) -> bytes:
    """A snappy WriteRequest of `n` generic series (one sample each, now), shaped like an
    exporter's: a few metric names, instances and label values."""
    ts_ms = int(time.time() * 1000)
    req = remote_pb2.WriteRequest()
    for i in range(n):
        t = req.timeseries.add()
        for k, v in (("__name__", f"heron_warmup_metric_{i % 97}"), ("instance", f"warmup-{i % 31}:9100"),
                     ("job", "heron-warmup"), ("le", f"{i % 13}.5"), ("series", f"w{i}")):
            t.labels.add(name=k, value=v)
        t.samples.add(timestamp=ts_ms, value=float(i))
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))


def exercise(body: bytes) -> int:
    """Decode `body` with a throwaway label cache and build its tables and WAL payload in memory
    (the per-request path less everything with state); returns the payload size."""
    decoded = decode_write_request(body, "snappy", LabelsCache())
    if decoded.ids is None:
        return 0
    tables = {"metric_samples": pa.table([pa.array(np.repeat(decoded.ids, decoded.counts), pa.uint64()),
                                          pa.array(decoded.ts, pa.int64()),
                                          pa.array(decoded.values, pa.float64())], schema=SAMPLES_SCHEMA)}
    if decoded.flat is not None:
        tables["metric_series"] = decoded.flat.table(np.arange(len(decoded.series)), decoded.ids)
    return len(encode_payload(tables))


def warm_pool(pool: concurrent.futures.ThreadPoolExecutor, threads: int) -> None:
    """Start `threads` threads of `pool` and run `exercise` once in each (in the background)."""
    def run() -> None:
        t0 = time.perf_counter()
        body = synthetic_request()
        barrier = threading.Barrier(threads)

        def one() -> int:
            try:
                barrier.wait(5)  # every task in its own thread
            except threading.BrokenBarrierError:
                pass
            return exercise(body)

        try:
            for f in [pool.submit(one) for _ in range(threads)]:
                f.result()
        except Exception:  # a warm-up must never stop the server
            log.exception("remote-write warm-up failed")
            return
        log.debug("remote-write warm-up: %d threads in %.0f ms", threads, (time.perf_counter() - t0) * 1000)

    threading.Thread(target=run, name="heron-ingest-warmup", daemon=True).start()
