"""Scrape manager end to end: a prometheus_client app scraped by an in-process Heron.

Values are read back from storage. Checks target labels, honor_labels, metric relabeling,
synthetic series, counter resets, staleness when a series disappears and when the target dies,
/api/v1/targets, reload through POST /-/reload, file_sd changes, sample_limit.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, make_wsgi_app

from heron.metrics.model import STALE_NAN_BITS
from heron.server import Heron
from tests.conftest import ADMIN, make_config
from tests.metrics.helpers import instant, samples, serve_wsgi


class SwappableApp:
    """A WSGI app serving whichever registry is current (to simulate a process restart)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.status = "200 OK"

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self.status != "200 OK":
            start_response(self.status, [("Content-Type", "text/plain")])
            return [b"no\n"]
        return make_wsgi_app(self.registry)(environ, start_response)


async def wait_for(check: Callable[[], Any], timeout: float = 20.0, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check() if asyncio.iscoroutinefunction(check) else check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(every)


async def start_heron(tmp_path: Path, scrape_configs: list[dict[str, Any]], **extra: Any) -> Heron:
    config = make_config(tmp_path, scrape_configs=scrape_configs, self_scrape=False,  # type: ignore[arg-type]
                         **extra)
    heron = Heron(config)  # type: ignore[arg-type]
    await heron.start()
    return heron


@pytest.fixture
async def app_target() -> AsyncIterator[tuple[SwappableApp, str, dict[str, Any]]]:
    reg = CollectorRegistry()
    metrics = {
        "requests": Counter("app_requests", "Requests.", ["path"], registry=reg),
        "queue": Gauge("app_queue", "Queue depth.", ["queue"], registry=reg),
        "clash": Gauge("app_clash", "Has a job label.", ["job"], registry=reg),
        "noisy": Gauge("app_noisy", "Dropped by metric_relabel_configs.", registry=reg),
    }
    metrics["requests"].labels("/a").inc(5)
    metrics["queue"].labels("q1").set(3)
    metrics["queue"].labels("q2").set(7)
    metrics["clash"].labels("inner").set(1)
    metrics["noisy"].set(1)
    app = SwappableApp(reg)
    with serve_wsgi(app) as address:
        yield app, address, metrics


def _series(rows: list[dict[str, Any]], name: str, **labels: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["metric"] == name and all(r["labels"].get(k) == v for k, v in labels.items())]


async def test_scrape_labels_staleness_resets_and_down(tmp_path: Path, app_target: Any) -> None:
    app, address, m = app_target
    heron = await start_heron(tmp_path, [{
        "job_name": "app", "scrape_interval": "1s", "scrape_timeout": "1s",
        "static_configs": [{"targets": [address], "labels": {"env": "test"}}],
        "metric_relabel_configs": [{"source_labels": ["__name__"], "regex": "app_noisy", "action": "drop"}],
    }])
    try:
        async def four_scrapes() -> bool:
            return len(_series(await samples(heron), "up")) >= 4
        await wait_for(four_scrapes)
        rows = await samples(heron)
        ups = _series(rows, "up", job="app", instance=address, env="test")
        assert ups and all(r["value"] == 1.0 for r in ups)
        req = _series(rows, "app_requests_total", path="/a")
        assert req and req[0]["labels"] == {"__name__": "app_requests_total", "path": "/a", "job": "app",
                                             "instance": address, "env": "test"}
        assert req[-1]["value"] == 5.0
        # honor_labels: false -> the scraped job label is kept as exported_job.
        clash = _series(rows, "app_clash")
        assert clash[0]["labels"]["job"] == "app" and clash[0]["labels"]["exported_job"] == "inner"
        assert not _series(rows, "app_noisy")
        scraped = _series(rows, "scrape_samples_scraped")[-1]["value"]
        post = _series(rows, "scrape_samples_post_metric_relabeling")[-1]["value"]
        assert scraped == post + 1
        assert _series(rows, "scrape_series_added")[0]["value"] == post
        assert 0 < _series(rows, "scrape_duration_seconds")[-1]["value"] < 1.0
        # Scrape timestamps are the scrape's start time on a 1s grid (median: a loaded machine may
        # wake a scrape late now and then).
        ts = [r["ts"] for r in ups]
        gaps = sorted(b - a for a, b in itertools.pairwise(ts))
        assert gaps and gaps[0] > 0 and 900 <= gaps[len(gaps) // 2] <= 1200

        # A series disappears: one stale marker at the next scrape, then nothing.
        m["queue"].remove("q2")
        m["requests"].labels("/a").inc(2)

        async def q2_stale() -> Any:
            rows = await samples(heron)
            q2 = _series(rows, "app_queue", queue="q2")
            return rows if q2 and q2[-1]["bits"] == STALE_NAN_BITS else None
        rows = await wait_for(q2_stale)
        assert _series(rows, "app_requests_total")[-1]["value"] == 7.0

        # Counter reset: the process restarts with a fresh registry.
        reg2 = CollectorRegistry()
        Counter("app_requests", "Requests.", ["path"], registry=reg2).labels("/a").inc(1)
        app.registry = reg2

        async def reset_seen() -> Any:
            vals = [r["value"] for r in _series(await samples(heron), "app_requests_total")]
            return vals if vals[-1] == 1.0 else None
        vals = await wait_for(reset_seen)
        assert 7.0 in vals  # the old value is kept; rate() sees the reset

        # Target answers 500: up 0 with the error, all its series stale.
        app.status = "500 Internal Server Error"

        async def down() -> Any:
            rows = await samples(heron)
            return rows if _series(rows, "up")[-1]["value"] == 0.0 else None
        rows = await wait_for(down)
        last_up = _series(rows, "up")[-1]
        stale = [r for r in rows if r["ts"] == last_up["ts"] and r["bits"] == STALE_NAN_BITS]
        # app_queue/app_clash went stale when the restarted process stopped exposing them.
        assert {r["metric"] for r in stale} == {"app_requests_total", "app_requests_created"}
        assert _series(rows, "app_clash")[-1]["bits"] == STALE_NAN_BITS
        assert len([r for r in _series(rows, "app_queue", queue="q2") if r["bits"] == STALE_NAN_BITS]) == 1
        transport = httpx.ASGITransport(app=heron.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://h", headers=ADMIN) as client:
            body = (await client.get("/api/v1/targets")).json()
        [t] = body["data"]["activeTargets"]
        assert t["health"] == "down" and "500" in t["lastError"]
        assert t["labels"] == {"job": "app", "instance": address, "env": "test"}
        assert t["scrapeUrl"] == f"http://{address}/metrics" and t["scrapeInterval"] == "1s"
        async with httpx.AsyncClient(transport=transport, base_url="http://h", headers=ADMIN) as client:
            meta = (await client.get("/api/v1/targets/metadata", params={"match_target": '{job="app"}'})).json()
            bad = await client.get("/api/v1/targets/metadata", params={"match_target": "job=app"})
        assert {"target": t["labels"], "metric": "app_requests", "type": "counter", "help": "Requests.",
                "unit": ""} in meta["data"]
        assert bad.status_code == 400 and bad.json()["errorType"] == "bad_data"
        # End to end through the query API: up is 0 and the stale series are gone from instant queries.
        [up] = await instant(heron, 'up{job="app"}')
        assert up["value"][1] == "0"
        assert await instant(heron, 'app_requests_total{job="app"}') == []
    finally:
        await heron.stop()


async def test_honor_labels_timestamps_and_sample_limit(tmp_path: Path) -> None:
    own_ts = (int(time.time()) - 60) * 1000
    payload = [f'# TYPE t gauge\nt{{job="inner",x="1"}} 4 {own_ts}\nu 2\n']

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4")])
        return [payload[0].encode()]

    with serve_wsgi(app) as address:
        heron = await start_heron(tmp_path, [
            {"job_name": "honor", "scrape_interval": "1s", "honor_labels": True,
             "static_configs": [{"targets": [address]}]},
            {"job_name": "limited", "scrape_interval": "1s", "sample_limit": 1,
             "static_configs": [{"targets": [address]}]},
            {"job_name": "toomany", "scrape_interval": "1s", "target_limit": 1,
             "static_configs": [{"targets": [address, address.replace("127.0.0.1", "localhost")]}]},
        ])
        try:
            async def both() -> Any:
                rows = await samples(heron)
                return rows if {r["labels"].get("job") for r in _series(rows, "up")} >= {"honor", "limited"} \
                    else None
            rows = await wait_for(both)
            t = _series(rows, "t", x="1")
            assert t[0]["labels"]["job"] == "inner" and t[0]["ts"] == own_ts and t[0]["value"] == 4
            assert _series(rows, "u", job="honor")
            # sample_limit 1 < 2 samples: the scrape fails, nothing but the report series.
            limited = _series(rows, "up", job="limited")
            assert limited[0]["value"] == 0.0
            assert not _series(rows, "u", job="limited")
            assert _series(rows, "scrape_samples_scraped", job="limited")[0]["value"] == 2
            manager = next(s for s in heron.services if s.name == "scrape")
            health = next(lp.health for _, lp in manager.targets() if lp.target.job == "limited")
            assert "sample limit exceeded" in health.last_error
            text = (await asyncio.to_thread(heron.metrics.exposition))[0].decode()
            assert 'heron_scrapes_total{job="limited",result="sample_limit"}' in text
            assert 'heron_scrape_samples_lost_total{job="limited",reason="sample_limit"}' in text
            # target_limit 1 < 2 targets: every target of the job fails, as in Prometheus.
            async def toomany_down() -> Any:
                rows = await samples(heron)
                ups = [r for r in rows if r["metric"] == "up" and r["labels"]["job"] == "toomany"]
                return ups if len({r["labels"]["instance"] for r in ups}) == 2 else None
            assert {r["value"] for r in await wait_for(toomany_down)} == {0.0}
            errs = {lp.health.last_error for c, lp in manager.targets() if c.job_name == "toomany"}
            assert errs == {"target_limit exceeded (number of targets: 2, limit: 1)"}
        finally:
            await heron.stop()


async def test_reload_and_file_sd(tmp_path: Path, app_target: Any) -> None:
    _, address, _ = app_target
    sd = tmp_path / "targets.json"
    sd.write_text(json.dumps([{"targets": [address], "labels": {"team": "a"}}]))
    cfg_path = tmp_path / "heron.yml"
    base = {"storage": {"data_dir": str(tmp_path / "data")}}
    heron = await start_heron(tmp_path, [{"job_name": "sd", "scrape_interval": "1s",
                                          "file_sd_configs": [{"files": [str(sd)]}]}])
    heron.config.source = str(cfg_path)
    manager = next(s for s in heron.services if s.name == "scrape")
    try:
        assert [lp.target.labels["team"] for _, lp in manager.targets()] == ["a"]

        async def scraped_a() -> Any:
            return _series(await samples(heron), "up", team="a")
        # A target retired before its first scrape has nothing to mark stale: let it scrape once.
        assert await wait_for(scraped_a)
        # file_sd: the file changes, the target's labels follow within a couple of seconds.
        sd.write_text(json.dumps([{"targets": [address], "labels": {"team": "b"}}]))
        await wait_for(lambda: [lp.target.labels["team"] for _, lp in manager.targets()] == ["b"])

        async def stale_a() -> Any:
            rows = await samples(heron)
            up_a = _series(rows, "up", team="a")
            return up_a if up_a and up_a[-1]["bits"] == STALE_NAN_BITS else None
        assert await wait_for(stale_a)

        # Reload through the API: a bad config is refused and the running one kept.
        data = dict(base, storage={**heron.config.storage.model_dump()}, auth={"admin_token": "test-admin-token"},
                    self_scrape=False,
                    scrape_configs=[{"job_name": "static", "scrape_interval": "2s", "scrape_timeout": "5s",
                                     "static_configs": [{"targets": [address]}]}])
        cfg_path.write_text(yaml.safe_dump(data))
        transport = httpx.ASGITransport(app=heron.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://h", headers=ADMIN) as client:
            r = await client.post("/-/reload")
            assert r.status_code == 500
            assert "heron.yml:" in r.text and "scrape timeout greater than scrape interval" in r.text
            assert [c.job_name for c, _ in manager.targets()] == ["sd"]
            data["scrape_configs"][0]["scrape_timeout"] = "1s"
            cfg_path.write_text(yaml.safe_dump(data))
            assert (await client.post("/-/reload")).status_code == 200
            assert [c.job_name for c, _ in manager.targets()] == ["static"]
            assert (await client.post("/-/reload", headers={"Authorization": "Bearer nope"})).status_code == 401
    finally:
        await heron.stop()


async def test_self_scrape_ignores_another_process_on_its_address(tmp_path: Path, app_target: Any) -> None:
    """Until this instance serves HTTP, whatever answers at `server.listen` is not scraped as Heron."""
    _, address, _ = app_target
    config = make_config(tmp_path, server={"listen": address, "otlp_listen": None},  # type: ignore[arg-type]
                         **{"global": {"scrape_interval": "1s"}})
    heron = Heron(config)  # type: ignore[arg-type]
    await heron.start()
    try:
        manager = next(s for s in heron.services if s.name == "scrape")
        [(sc, loop)] = manager.targets()
        assert sc.job_name == "heron" and loop.target.labels == {"job": "heron", "instance": address}
        await wait_for(lambda: loop.health.last_error == "another process answers at this address")
        assert not [r for r in await samples(heron) if r["labels"].get("job") == "heron"]
        from heron.metrics.exposition import parse

        assert manager._is_me(parse(heron.metrics.exposition()[0]))  # its own payload is recognised
    finally:
        await heron.stop()


async def test_reload_with_changed_job_keeps_staleness(tmp_path: Path, app_target: Any) -> None:
    """A job's config changes on reload: the new loop continues the old one, so a series the new
    config drops gets its stale marker (as Prometheus, which hands its scrape cache over)."""
    _, address, _ = app_target
    job = {"job_name": "r", "scrape_interval": "1s", "static_configs": [{"targets": [address]}]}
    heron = await start_heron(tmp_path, [job])
    try:
        async def q1_seen() -> Any:
            return _series(await samples(heron), "app_queue", queue="q1")
        await wait_for(q1_seen)
        changed = {**job, "metric_relabel_configs": [{"source_labels": ["__name__"], "regex": "app_queue",
                                                      "action": "drop"}]}
        await heron.reload(heron.config.model_copy(update={"scrape_configs": [changed]}))

        async def q1_stale() -> Any:
            q1 = _series(await samples(heron), "app_queue", queue="q1")
            return q1 if q1[-1]["bits"] == STALE_NAN_BITS else None
        q1 = await wait_for(q1_stale)
        assert sum(r["bits"] == STALE_NAN_BITS for r in q1) == 1
        ups = _series(await samples(heron), "up", job="r")
        assert all(r["value"] == 1.0 for r in ups) and not any(r["bits"] == STALE_NAN_BITS for r in ups)
    finally:
        await heron.stop()
