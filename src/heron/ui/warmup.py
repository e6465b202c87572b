"""Start-up warm-up, so that the first dashboard after a start is not slower than the next ones.

Measured (bench/ui_dashboard.py, /tmp/notes/s3-h4.md): the first burst of panel queries after a
start costs ~0.3-0.7 s more CPU than the same burst later, and nearly all of it is the kernel
faulting in fresh memory (50-60k minor faults against 10-20k later, many of them 2 MB huge pages
that numpy madvises for arrays >= 4 MB). glibc keeps freed memory in each thread's arena only
after a large free has raised its (dynamic) mmap threshold; until then every big temporary array
is a fresh mmap. So, in the background right after start:

- with a head of 1M samples or more, each query thread of the default executor allocates, touches and frees some memory once: the
  first large free raises glibc's mmap threshold, and the arena keeps the smaller blocks mapped
  (bounded by glibc's own trim threshold, twice that free: at most ~64 MB per thread);
- the head's label index catches up (it is built lazily on the first selector: ~30-100 ms);
- the page templates compile (Jinja compiles a template on its first render: ~20-40 ms);
- the panel queries browsers asked last before the stop are evaluated again (heron.ui.recent),
  newest first, one at a time and for at most `REPLAY_BUDGET` seconds: that fills the engine's
  step cache, so the first dashboard reads its rates instead of computing every window end.

None of it changes a result; a query arriving meanwhile waits on the same lock or runs beside it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from heron.ui import recent

if TYPE_CHECKING:
    from heron.server import Heron

log = logging.getLogger("heron.ui")
THREADS = min(32, (os.cpu_count() or 1) + 4)  # ThreadPoolExecutor's default, as the loop's executor
BIG = 24 << 20  # one free of this size raises glibc's mmap threshold (dynamic, capped at 32 MB)
ARENA = 40 << 20  # then this much in 1 MB blocks per thread stays in its arena (< 2 x BIG)
MIN_SAMPLES = 1_000_000  # a smaller head never makes arrays large enough to matter
REPLAY_BUDGET = 10.0  # seconds of replayed panel queries at most


def prefault(barrier: threading.Barrier | None) -> None:
    """In one executor thread: one big block, then ARENA bytes in 1 MB blocks, touched and freed."""
    if barrier is not None:
        try:  # hold the thread until every task has one: one task per executor thread
            barrier.wait(2)
        except threading.BrokenBarrierError:
            pass
    big = np.ones(BIG // 8)
    del big
    blocks = [np.ones((1 << 20) // 8) for _ in range(ARENA >> 20)]
    del blocks


def compile_templates() -> int:
    from heron.api.ui import templates

    env = templates.env
    names = [n for n in env.list_templates() if n.endswith(".html")]
    for name in names:
        env.get_template(name)
    return len(names)


async def warm(heron: Heron) -> None:
    t = time.perf_counter()
    loop = asyncio.get_running_loop()
    try:
        n = compile_templates()
        threads = 0
        if heron.head is not None:
            await loop.run_in_executor(None, heron.head.index.resolve, [[("__name__", "=", "up")]])
            if len(heron.head) >= MIN_SAMPLES:
                threads, barrier = THREADS, threading.Barrier(THREADS)
                await asyncio.gather(*[loop.run_in_executor(None, prefault, barrier) for _ in range(threads)])
        replayed = await loop.run_in_executor(None, replay, heron) if heron.query_engine.step_cache else 0
    except Exception:  # a warm-up must never take Heron down
        log.exception("ui warm-up failed")
        return
    log.info("ui warm-up: %d templates, head index, %d query threads, %d panel queries replayed in %.3f s",
             n, threads, replayed, time.perf_counter() - t)


def replay(heron: Heron) -> int:
    """Evaluate the recent panel queries (newest first) within REPLAY_BUDGET; how many ran."""
    deadline = time.monotonic() + REPLAY_BUDGET
    done = 0
    for query, start, end, step in recent.of(heron).replays(time.time()):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if heron.head is None or not heron.head.covers(int(start * 1000), int(end * 1000)):
            continue  # older than the head: nothing would be cached
        try:
            heron.query_engine.range(query, start, end, step, timeout=left)
            done += 1
        except Exception as exc:  # a bad or slow query is skipped, never fatal
            log.debug("warm-up replay of %r skipped: %s", query, exc)
    return done


def start(heron: Heron) -> asyncio.Task[None]:
    """Run `warm` in the background (start-up is not delayed by it)."""
    return asyncio.get_running_loop().create_task(warm(heron))
