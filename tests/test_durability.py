"""End to end through a real `heron up` process: kill -9 under load, and backpressure."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from heron.metrics.remote_write_client import REMOTE_WRITE_HEADERS, encode_write_request
from heron.testing import HeronProcess

NOW_MS = int(time.time() * 1000)  # inside retention (15d): older samples would expire via TTL


def one_sample(k: int) -> bytes:
    return encode_write_request([({"__name__": "durability_test", "req": str(k)}, [(NOW_MS + k, k)])])


def stored_values(data_dir: Path) -> dict[int, int]:
    """value -> number of stored samples, read with `heron sql` from the stopped instance."""
    sql = ("SELECT toInt64(value) AS v, count() AS n FROM {db}.metric_samples WHERE series_id IN "
           "(SELECT series_id FROM {db}.metric_series WHERE metric = 'durability_test') GROUP BY v")
    out = subprocess.run([sys.executable, "-m", "heron", "sql", "--data-dir", str(data_dir), sql],
                         capture_output=True, text=True, check=True, timeout=120)
    return {row["v"]: row["n"] for row in map(json.loads, out.stdout.splitlines())}


@pytest.mark.slow
def test_sigkill_during_sustained_ingest_loses_no_acknowledged_write(tmp_path: Path) -> None:
    heron = HeronProcess(tmp_path / "data", config={"pipeline": {"flush_interval": 0.2}}).start()
    acked: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()
    counter = iter(range(10**9))

    def writer() -> None:
        with httpx.Client(base_url=heron.url, headers={**heron.headers, **REMOTE_WRITE_HEADERS},
                          timeout=5) as c:
            while not stop.is_set():
                with lock:
                    k = next(counter)
                try:
                    r = c.post("/api/v1/write", content=one_sample(k))
                except httpx.HTTPError:
                    continue
                if r.status_code == 204:
                    with lock:
                        acked.append(k)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(2.5)
    heron.kill()
    before_kill = len(acked)
    stop.set()
    for t in threads:
        t.join()
    assert before_kill > 50, f"too few writes acknowledged before the kill: {before_kill}"

    restarted = HeronProcess(tmp_path / "data").start()
    assert restarted.stop() == 0
    stored = stored_values(tmp_path / "data")
    missing = sorted(set(acked) - set(stored))
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:10]}"
    dups = {v: n for v, n in stored.items() if n != 1}
    assert not dups, f"duplicated after replay: {list(dups.items())[:10]}"


@pytest.mark.slow
def test_full_queue_answers_429_with_retry_after_then_recovers(tmp_path: Path) -> None:
    cfg = {"pipeline": {"max_queue_bytes": 64, "flush_interval": 1.5, "retry_after": 3}}
    heron = HeronProcess(tmp_path / "data", config=cfg).start()
    acked, saw_429 = [], None
    with httpx.Client(base_url=heron.url, headers={**heron.headers, **REMOTE_WRITE_HEADERS}) as c:
        for k in range(20):
            r = c.post("/api/v1/write", content=one_sample(k))
            if r.status_code == 204:
                acked.append(k)
            elif r.status_code == 429:
                saw_429 = r
        assert saw_429 is not None, "the tiny queue never filled"
        assert saw_429.headers["Retry-After"] == "3"
        assert "queue is full" in saw_429.text
        # Recovery: once the flusher drains the queue, writes are accepted again.
        deadline = time.monotonic() + 15
        recovered = False
        k = 100
        while time.monotonic() < deadline and not recovered:
            r = c.post("/api/v1/write", content=one_sample(k))
            if r.status_code == 204:
                acked.append(k)
                recovered = True
            time.sleep(0.2)
        assert recovered
        metrics = c.get("/metrics").text
        assert 'heron_ingest_rejected_rows_total{reason="queue_full",signal="metrics"}' in metrics
    assert heron.stop() == 0
    stored = stored_values(tmp_path / "data")
    assert set(acked) <= set(stored)
    assert all(n == 1 for n in stored.values())


def test_bad_payloads_get_400_and_do_not_disturb(tmp_path: Path) -> None:
    with HeronProcess(tmp_path / "data") as heron, heron.client() as c:
        r = c.post("/api/v1/write", content=b"not snappy at all", headers=REMOTE_WRITE_HEADERS)
        assert r.status_code == 400 and "snappy" in r.text
        import cramjam

        junk = bytes(cramjam.snappy.compress_raw(b"\xff\xff\xff\xff garbage"))
        r = c.post("/api/v1/write", content=junk, headers=REMOTE_WRITE_HEADERS)
        assert r.status_code == 400 and "protobuf" in r.text
        r = httpx.post(heron.url + "/api/v1/write", content=one_sample(1), headers=REMOTE_WRITE_HEADERS)
        assert r.status_code == 401
        r = c.post("/api/v1/write", content=one_sample(7), headers=REMOTE_WRITE_HEADERS)
        assert r.status_code == 204
        assert c.get("/-/healthy").status_code == 200
    assert stored_values(tmp_path / "data") == {7: 1}


def test_clean_stop_after_loading_a_large_head(tmp_path: Path) -> None:
    """`heron up` exits 0 on SIGTERM after loading 6 000 series into the head (it crashed with
    SIGSEGV when the load's gc.freeze() kept chDB's objects from the interpreter's last collections)."""
    data = tmp_path / "data"
    body = encode_write_request([({"__name__": "stop_test", "i": str(i)}, [(NOW_MS - 60_000, 1.0), (NOW_MS, 2.0)])
                                 for i in range(6000)])
    with HeronProcess(data) as heron:
        r = httpx.post(heron.url + "/api/v1/write", content=body, headers={**heron.headers, **REMOTE_WRITE_HEADERS})
        assert r.status_code == 204, r.text
    heron = HeronProcess(data).start()
    try:
        assert "loaded 12000 samples of 6" in heron.log(), heron.log()[-2000:]
    finally:
        code = heron.stop()
    assert code == 0, heron.log()[-3000:]
