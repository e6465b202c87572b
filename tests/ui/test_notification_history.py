"""Notification history (heron.alerting.history): every send through the real alerting pipeline, to
a local webhook recorder and to one that fails, read back through /api/heron/notifications."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from heron.alerting import history
from heron.alerting.model import Alert
from heron.notify import Notification
from heron.server import Heron
from tests.conftest import ADMIN, make_config
from tests.notify.recorder import Recorder


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[Heron, httpx.AsyncClient, Recorder, Recorder]]:
    ok, bad = Recorder(), Recorder(status=400)  # 4xx: not retried, fails at once
    ok.__enter__()
    bad.__enter__()
    am = {"route": {"receiver": "hook", "group_by": ["alertname"], "group_wait": "50ms", "group_interval": "1s",
                    "routes": [{"matchers": ['team="db"'], "receiver": "broken"}]},
          "receivers": [{"name": "hook", "webhook_configs": [{"url": ok.url + "/hook"}]},
                        {"name": "broken", "webhook_configs": [{"url": bad.url + "/nope"}]}]}
    h = Heron(make_config(tmp_path, alertmanager=am))  # type: ignore[arg-type]
    await h.start()
    transport = httpx.ASGITransport(app=h.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://heron", headers=ADMIN) as c:
        yield h, c, ok, bad
    await h.stop()
    ok.__exit__()
    bad.__exit__()


async def _wait(c: httpx.AsyncClient, n: int, **params: str) -> dict:
    deadline = time.monotonic() + 20
    while True:
        body = (await c.get("/api/heron/notifications", params=params)).json()
        if len(body["items"]) >= n or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.05)


async def test_sent_and_failed_notifications_are_logged(env: tuple[Heron, httpx.AsyncClient, Recorder, Recorder]) -> None:
    _, c, ok, bad = env
    r = await c.post("/api/v2/alerts", json=[
        {"labels": {"alertname": "HighLatency", "job": "api", "instance": "a"}},
        {"labels": {"alertname": "HighLatency", "job": "api", "instance": "b"}},
        {"labels": {"alertname": "DiskFull", "team": "db"}}])
    assert r.status_code == 200
    body = await _wait(c, 2)
    assert len(ok.wait(1)) == 1 and len(bad.requests) >= 1
    by = {i["receiver"]: i for i in body["items"]}
    sent, failed = by["hook"], by["broken"]
    assert sent["outcome"] == "sent" and sent["kind"] == "webhook" and sent["attempts"] == 1
    assert sent["alerts"] == ["HighLatency"] and (sent["firing"], sent["resolved"]) == (2, 0)
    assert sent["status"] == "firing" and sent["error"] == "" and sent["duration_ms"] >= 0
    assert sent["integration"].startswith("hook/webhook") and "HighLatency" in sent["group_key"]
    assert failed["outcome"] == "failed" and failed["attempts"] == 1 and "400" in failed["error"]
    assert body["receivers"] == ["broken", "hook"]
    only = (await c.get("/api/heron/notifications", params={"outcome": "failed"})).json()
    assert [i["receiver"] for i in only["items"]] == ["broken"]
    only = (await c.get("/api/heron/notifications", params={"receiver": "hook"})).json()
    assert [i["outcome"] for i in only["items"]] == ["sent"]


async def test_pages_and_bounds(env: tuple[Heron, httpx.AsyncClient, Recorder, Recorder]) -> None:
    h, c, _, _ = env
    log = history.History(h.control, max_rows=7)
    now = time.time()
    for i in range(12):
        n = Notification(receiver="r", status="firing", alerts=[Alert(labels={"alertname": f"A{i}"}, starts_at=now)],
                         group_labels={}, common_labels={}, common_annotations={}, external_url="",
                         group_key=f"g{i}", now=now)
        log.record("r/webhook/0", "webhook", n, "sent", 1, 0.01)
    log.prune()
    first = (await c.get("/api/heron/notifications", params={"limit": "5", "receiver": "r"})).json()
    assert [i["group_key"] for i in first["items"]] == ["g11", "g10", "g9", "g8", "g7"]
    second = (await c.get("/api/heron/notifications",
                          params={"limit": "5", "receiver": "r", "before": str(first["next"])})).json()
    assert [i["group_key"] for i in second["items"]] == ["g6", "g5"]  # bounded: the oldest 5 are gone
    assert second["next"] is None
    for params, fragment in (({"limit": "0"}, "limit"), ({"limit": "501"}, "limit"), ({"before": "x"}, "before"),
                             ({"outcome": "maybe"}, "outcome")):
        r = await c.get("/api/heron/notifications", params=params)
        assert r.status_code == 400 and fragment in r.json()["error"], params
    anon = httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app()), base_url="http://heron")
    async with anon:
        assert (await anon.get("/api/heron/notifications")).status_code == 401
