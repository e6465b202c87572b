"""Remote-write decoding off the event loop: in this module's threads (started and warmed up at
start, heron.metrics.ingest_warmup), or in worker processes (ARCHITECTURE.md's plan, off by default).

Decoding in a thread holds the GIL for its Python parts, so the event loop and the WAL writer
wait on it. A worker process decodes on another core and sends back the DecodedWrite pickled
(protocol 5: numpy arrays as buffers, repeated label strings memoized); unpickling new series
costs the server ~5x less CPU than decoding them. Each worker keeps its own label cache.
Enabled with HERON_DECODE_WORKERS=N (N processes); bench/remote_write.py --decode-workers 0 1
measures it side by side: on the shared 2-core machine it used more CPU in all (pickling, IPC)
and did not raise throughput, so it stays off (see docs/metrics-ingest.md).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import threading

from heron.metrics import ingest_warmup
from heron.metrics.remote_write import DecodedWrite, decode_write_request, decompress
from heron.metrics.remote_write_v2 import PROTO_V2, decode_v2

MIN_BODY = 16 << 10  # smaller requests decode faster than a round trip to a worker
THREADS = min(32, (os.cpu_count() or 1) + 4)  # as the event loop's default executor

_pool: concurrent.futures.ProcessPoolExecutor | None = None
_lock = threading.Lock()
# Decoding threads of their own (not the loop's default executor), so that they can be started
# and warmed up before the first request (heron.metrics.ingest_warmup).
_threads: concurrent.futures.ThreadPoolExecutor | None = None
_warmed = False


def _thread_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _threads
    with _lock:
        if _threads is None:
            _threads = concurrent.futures.ThreadPoolExecutor(THREADS, thread_name_prefix="heron-rw-decode")
        return _threads


def decode(body: bytes, encoding: str, proto: str) -> DecodedWrite:
    if proto == PROTO_V2:
        return decode_v2(decompress(body, encoding))
    return decode_write_request(body, encoding)


def _warm_worker(body: bytes | None) -> int:
    """A decode worker's first task: its imports and, with the warm-up on, what
    heron.metrics.ingest_warmup does in the server's decoding threads."""
    if body is None:
        return len(decode_write_request(b"", "identity").series)
    ingest_warmup.keep_malloc_memory()
    return ingest_warmup.exercise(body)


def workers() -> int:
    try:
        return max(0, int(os.environ.get("HERON_DECODE_WORKERS", "0")))
    except ValueError:
        return 0


def _get_pool(n: int) -> concurrent.futures.ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            # spawn: the server has threads (chDB, WAL), which fork would copy in a bad state.
            _pool = concurrent.futures.ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"))
            # Start the workers (imports take seconds) before the first request, and warm each up.
            body = ingest_warmup.synthetic_request() if ingest_warmup.enabled() else None
            for _ in range(n):
                _pool.submit(_warm_worker, body)
        return _pool


def start() -> None:
    """Start the workers now when enabled (called when the routes are built), and warm the
    decoding threads up (heron.metrics.ingest_warmup)."""
    if workers():
        _get_pool(workers())
    global _warmed
    with _lock:
        warm, _warmed = not _warmed, True
    if warm and ingest_warmup.enabled() and not inline():  # once per process (tests start many)
        ingest_warmup.keep_malloc_memory()
        ingest_warmup.warm_pool(_thread_pool(), THREADS)


def shutdown() -> None:
    global _pool
    with _lock:
        if _pool is not None:
            _pool.shutdown(wait=True, cancel_futures=True)
            _pool = None


def inline() -> bool:
    """HERON_DECODE_WORKERS=-1: decode on the event loop itself (measured by
    bench/remote_write.py --decode-workers 0 -1; no thread hand-offs, but the loop waits)."""
    return os.environ.get("HERON_DECODE_WORKERS", "").strip() == "-1"


async def decode_async(body: bytes, encoding: str, proto: str) -> DecodedWrite:
    """Decode off the event loop: in a worker process when enabled and the body is large, else
    in a thread."""
    if inline():
        return decode(body, encoding, proto)
    loop = asyncio.get_running_loop()
    n = workers()
    if n and len(body) >= MIN_BODY:
        return await loop.run_in_executor(_get_pool(n), decode, body, encoding, proto)
    return await loop.run_in_executor(_thread_pool(), decode, body, encoding, proto)
