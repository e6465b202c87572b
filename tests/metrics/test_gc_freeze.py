"""`heron up` freezes the runtime's objects out of the garbage collector's reach once it serves
(full collections during new-series ingest no longer walk them), and still stops cleanly: an
earlier freeze kept chDB's objects from the interpreter's last collections and crashed the stop."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import httpx
import pytest

from heron.metrics.head import Head
from heron.metrics.remote_write_client import REMOTE_WRITE_HEADERS, encode_write_request
from heron.testing import HeronProcess


def test_freeze_until_close_and_the_switch_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert gc.get_freeze_count() == 0
    head = Head(60_000)
    try:
        head.freeze_gc()
        assert gc.get_freeze_count() > 1000
    finally:
        head.close()
    assert gc.get_freeze_count() == 0  # close() hands them back
    monkeypatch.setenv("HERON_GC_FREEZE", "0")
    head = Head(60_000)
    head.freeze_gc()
    assert gc.get_freeze_count() == 0
    head.close()


def test_heron_up_freezes_once_serving_and_stops_cleanly(tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    heron = HeronProcess(tmp_path / "data").start()
    try:
        deadline = time.monotonic() + 10  # ready is answered from the moment it listens
        while "objects frozen" not in heron.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "objects frozen" in heron.log(), heron.log()[-2000:]
        for part in range(2):  # new series after the freeze, as a sender's first writes
            body = encode_write_request([({"__name__": "freeze_test", "i": str(part * 3000 + i)}, [(now, 1.0)])
                                         for i in range(3000)])
            r = httpx.post(heron.url + "/api/v1/write", content=body,
                           headers={**heron.headers, **REMOTE_WRITE_HEADERS}, timeout=60)
            assert r.status_code == 204, r.text
        r = httpx.get(heron.url + "/api/v1/query", params={"query": "count(freeze_test)"}, headers=heron.headers)
        assert r.json()["data"]["result"][0]["value"][1] == "6000"
    finally:
        code = heron.stop()
    assert code == 0, heron.log()[-3000:]
