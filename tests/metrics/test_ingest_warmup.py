"""Remote-write start-up warm-up: it runs the real decode path and leaves no trace."""

from __future__ import annotations

import asyncio
import platform
import time

import httpx
import pytest

from heron.metrics import ingest_warmup, remote_write, remote_write_pool
from heron.metrics.model import series_id
from heron.server import Heron
from tests.metrics.helpers import samples
from tests.metrics.test_remote_write import HEADERS, write_request


def test_exercise_takes_the_fast_path_and_leaves_the_label_cache_alone() -> None:
    body = ingest_warmup.synthetic_request(500)
    cached = len(remote_write._CACHE)
    decoded = remote_write.decode_write_request(body, "snappy", remote_write.LabelsCache())
    # The fast decoder (ids and label arrays), as a real sender's first request would take it.
    assert decoded.ids is not None and decoded.flat is not None
    assert decoded.ids.tolist() == [series_id(s) for s in decoded.series]
    assert ingest_warmup.exercise(body) > 500 * 100  # samples and series rows, as Arrow IPC
    assert len(remote_write._CACHE) == cached


def test_keep_malloc_memory_is_glibc_only_and_yields_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert ingest_warmup.keep_malloc_memory() == (platform.libc_ver()[0] == "glibc")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert not ingest_warmup.keep_malloc_memory()
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.setenv("HERON_INGEST_WARMUP", "0")
    assert not ingest_warmup.keep_malloc_memory()


async def test_decoding_threads_are_started_and_nothing_is_written(heron: Heron, client: httpx.AsyncClient) -> None:
    pool = remote_write_pool._thread_pool()
    deadline = time.monotonic() + 20
    while len(pool._threads) < remote_write_pool.THREADS and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    # Started before any request (the loop's default executor starts its threads on demand).
    assert len(pool._threads) == remote_write_pool.THREADS
    now = int(time.time() * 1000)
    r = await client.post("/api/v1/write", content=write_request([({"__name__": "wu_real", "job": "x"},
                                                                   [(now, 1.0)])]), headers=HEADERS)
    assert r.status_code == 204, r.text
    assert [row["metric"] for row in await samples(heron)] == ["wu_real"]
    n = (await asyncio.to_thread(heron.storage.execute,
         f"SELECT count() AS n FROM `{heron.storage.database}`.metric_series")).to_pylist()
    assert n == [{"n": 1}]
    r = await client.get("/api/v1/query", params={"query": 'count({job="heron-warmup"})'})
    assert r.status_code == 200 and r.json()["data"]["result"] == []
