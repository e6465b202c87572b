"""Panel queries asked before a stop are evaluated again by the next start's warm-up
(heron.ui.recent), so the first dashboard after a restart reads the engine's step cache."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import numpy as np

from heron.metrics.model import labels_from
from heron.server import Heron
from heron.ui import recent
from heron.ui.provision import Provisioner
from tests.conftest import ADMIN, make_config


def test_replays_move_relative_ranges_and_keep_fixed_ones(tmp_path: Path) -> None:
    r = recent.Recent()
    now = 1_800_000_000.0
    r.note("sum(rate(a[1m]))", now - 3600, now - 30, 60, now)  # "Last 1 hour", end aligned
    r.note("rate(b[5m])", now - 7200, now - 3600, 120, now)  # a fixed range
    r.note("sum(rate(a[1m]))", now - 3600, now - 30, 60, now)  # asked again: one entry
    later = now + 900
    got = r.replays(later)
    end = math.floor(later / 60) * 60
    assert got == [("sum(rate(a[1m]))", end - 3570, end, 60),  # newest first, moved to end now
                   ("rate(b[5m])", now - 7200, now - 3600, 120)]
    for i in range(recent.KEEP + 5):
        r.note(f"q{i}", 0, 60, 15, now)
    assert len(r.items) == recent.KEEP and ("q4", 15.0) not in r.items
    path = tmp_path / "ui" / recent.FILE
    r.save(path)
    assert recent.Recent.load(path).items == r.items
    path.write_text("{not json")
    assert recent.Recent.load(path).items == {}  # a damaged file is ignored (with a warning)
    path.write_text(json.dumps([{"query": "x", "step": -1, "start": 0, "end": 1, "asked": 0}]))
    assert recent.Recent.load(path).items == {}


async def _warmed(h: Heron) -> None:
    for service in h.services:
        if isinstance(service, Provisioner) and service._warm is not None:
            await service._warm


async def test_the_next_start_replays_the_panel_queries(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    now = int(time.time())
    ts = np.arange((now - 1800) * 1000, now * 1000, 15_000, dtype=np.int64)
    series = [labels_from({"__name__": "req_total", "job": f"j{i}"}) for i in range(3)]
    fixed = {"query": "sum by (job) (rate(req_total[2m]))", "start": str(now // 60 * 60 - 1500),
             "end": str(now // 60 * 60 - 600), "step": "60"}
    h = Heron(cfg)  # type: ignore[arg-type]
    await h.start()
    try:
        await h.metrics_writer.write(series, np.array([len(ts)] * 3), np.tile(ts, 3),
                                     np.concatenate([np.cumsum(np.full(len(ts), 1.0 + i)) for i in range(3)]))
        h.pipeline.flush()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app()), base_url="http://heron",
                                     headers=ADMIN) as c:
            r = await c.get("/api/v1/query_range?" + urlencode(fixed))
            assert r.status_code == 200 and r.json()["data"]["result"]
    finally:
        await h.stop()
    saved_file = Path(cfg.storage.data_dir) / "ui" / recent.FILE  # type: ignore[attr-defined]
    saved = json.loads(saved_file.read_text())
    assert [row["query"] for row in saved] == [fixed["query"]]

    h2 = Heron(cfg)  # type: ignore[arg-type]
    await h2.start()
    try:
        await _warmed(h2)
        cache = h2.query_engine.step_cache
        assert cache is not None and cache.misses == 16  # the warm-up evaluated the 16 steps
        res = h2.query_engine.range(fixed["query"], float(fixed["start"]), float(fixed["end"]), 60)
        assert cache.misses == 16 and cache.hits == 16  # the first "viewer" only read them
        assert len(res.matrix) == 3
    finally:
        await h2.stop()
    # the list carries over: the second run saved it again although nobody asked anything
    assert json.loads(saved_file.read_text())[0]["query"] == fixed["query"]
