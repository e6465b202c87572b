"""Ingest through the real ASGI stack: auth, encodings, item types, CORS, rate limits, issues."""

from __future__ import annotations

import gzip
import json
import time
import zlib
from typing import Any

import cramjam
import httpx

from heron.errors.ingest import tracking
from heron.server import Heron

from .helpers import auth, envelope, exc_event, new_project


async def _issues(client: httpx.AsyncClient, query: str = "", **params: Any) -> list[dict[str, Any]]:
    r = await client.get("/api/0/projects/heron/backend/issues/", params={"query": query, **params})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_auth_variants_and_errors(heron: Heron, client: httpx.AsyncClient) -> None:
    pid, key = new_project(heron)
    body = envelope(("event", exc_event()))
    url = f"/api/{pid}/envelope/"
    assert (await client.post(url, content=body, headers=auth(key))).status_code == 200
    assert (await client.post(url + f"?sentry_key={key}&sentry_version=7", content=body)).status_code == 200
    basic = httpx.BasicAuth(key, "")
    assert (await client.post(url, content=body, auth=basic)).status_code == 200
    dsn_env = envelope(("event", exc_event()), headers={"dsn": f"http://{key}@heron/{pid}"})
    assert (await client.post(url, content=dsn_env, headers={"Authorization": ""})).status_code == 200

    r = await client.post(url, content=body, headers={"Authorization": ""})
    assert r.status_code == 401 and "missing authorization" in r.json()["detail"]
    r = await client.post(url, content=body, headers=auth("0" * 32))
    assert r.status_code == 401 and r.json() == {"detail": "invalid api key"}
    other, _ = new_project(heron, "other")
    r = await client.post(f"/api/{other}/envelope/", content=body, headers=auth(key))
    assert r.status_code == 403 and "ProjectId" in r.json()["detail"]
    assert tracking(heron).projects.revoke_key(key)
    r = await client.post(url, content=body, headers=auth(key))
    assert r.status_code == 403 and r.json()["detail"] == "API key is disabled"


async def test_encodings_store_and_malformed(heron: Heron, client: httpx.AsyncClient) -> None:
    pid, key = new_project(heron)
    url = f"/api/{pid}/envelope/"
    for i, (enc, pack) in enumerate([("gzip", gzip.compress), ("deflate", zlib.compress),
                                     ("br", lambda b: bytes(cramjam.brotli.compress(b)))]):
        body = envelope(("event", exc_event(value=f"v{i}", func=f"f{enc}")))
        r = await client.post(url, content=pack(body), headers={**auth(key), "Content-Encoding": enc})
        assert r.status_code == 200, (enc, r.text)
    r = await client.post(f"/api/{pid}/store/", content=json.dumps(exc_event(func="via_store")),
                          headers={**auth(key), "Content-Type": "application/json"})
    assert r.status_code == 200 and len(r.json()["id"]) == 32
    # malformed: precise reasons, status 400, nothing stored
    bad = {
        b"not json\n": "envelope header at byte 0 is not valid JSON",
        b'{}\n{"type":"event","length":500}\n{}\n': "runs past the end",
        b'{}\n{"length":2}\n{}\n': "has no type",
        b'{}\n{"type":"event"}\n[1,2]\n': "must be a JSON object",
    }
    for body, reason in bad.items():
        r = await client.post(url, content=body, headers=auth(key))
        assert r.status_code == 400 and reason in r.json()["detail"], (body, r.text)
        assert r.headers["x-sentry-error"]
    r = await client.post(url, content=b"\x1f\x8b garbage", headers={**auth(key), "Content-Encoding": "gzip"})
    assert r.status_code == 400 and "cannot decompress gzip" in r.json()["detail"]
    tracking(heron).flush()
    titles = sorted(i["culprit"] for i in await _issues(client))
    assert titles == ["app.views in fbr", "app.views in fdeflate", "app.views in fgzip", "app.views in via_store"]


async def test_item_types_cors_and_unknown(heron: Heron, client: httpx.AsyncClient) -> None:
    pid, key = new_project(heron)
    ev = exc_event()
    now = time.time()
    body = envelope(
        ("event", ev),
        ("attachment", b"log line 1\nlog line 2"),
        ("attachment", b"x" * (2 << 20)),  # over the 1 MiB default: dropped, event kept
        ("session", {"sid": "s1", "did": "u1", "started": now, "status": "ok", "attrs": {"release": "1.0"}}),
        ("sessions", {"aggregates": [{"started": now, "exited": 3, "errored": 1}],
                      "attrs": {"release": "1.0", "environment": "prod"}}),
        ("client_report", {"discarded_events": [{"reason": "queue_overflow", "category": "error", "quantity": 4}]}),
        ("user_report", {"event_id": ev["event_id"], "name": "Ann", "email": "a@x.io", "comments": "it broke"}),
        ("brand_new_item", {"x": 1}),
        headers={"event_id": ev["event_id"]})
    r = await client.post(f"/api/{pid}/envelope/", content=body,
                          headers={**auth(key), "Origin": "http://app.example"})
    assert r.status_code == 200 and r.json() == {"id": ev["event_id"]}
    assert r.headers["access-control-allow-origin"] == "*"
    pre = await client.options(f"/api/{pid}/envelope/", headers={"Origin": "http://app.example",
                                                                 "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 200 and "x-sentry-auth" in pre.headers["access-control-allow-headers"]
    tracking(heron).flush()
    db = heron.storage.database
    att = heron.storage.execute(f"SELECT event_id, size FROM `{db}`.error_attachments").to_pylist()
    assert att == [{"event_id": ev["event_id"], "size": 21}]
    sess = heron.storage.execute(f"SELECT status, sum(quantity) AS n FROM `{db}`.error_sessions "
                                 "GROUP BY status ORDER BY status").to_pylist()
    assert sess == [{"status": "errored", "n": 1}, {"status": "exited", "n": 3}, {"status": "ok", "n": 1}]
    reports = heron.control.query("SELECT event_id, comments FROM error_user_reports")
    assert [tuple(r) for r in reports] == [(ev["event_id"], "it broke")]
    fb = (await client.get("/api/0/projects/heron/backend/user-feedback/")).json()
    assert [(f["eventID"], f["name"], f["comments"]) for f in fb] == [(ev["event_id"], "Ann", "it broke")]
    listed = (await client.get(f"/api/0/projects/heron/backend/events/{ev['event_id']}/attachments/")).json()
    assert [(a["name"], a["size"]) for a in listed] == [("attachment", 21)]
    got = await client.get(f"/api/0/projects/heron/backend/events/{ev['event_id']}/attachments/attachment/")
    assert got.status_code == 200 and got.content == b"log line 1\nlog line 2"
    et = tracking(heron)
    assert et.items.labels("unknown", "skipped")._value.get() == 1
    assert et.items.labels("attachment", "too_large")._value.get() == 1
    assert et.discarded.labels("queue_overflow", "error")._value.get() == 4


async def test_rate_limit_and_backpressure(heron: Heron, client: httpx.AsyncClient) -> None:
    pid, key = new_project(heron, rate_limit=3)
    url = f"/api/{pid}/envelope/"
    codes = [(await client.post(url, content=envelope(("event", exc_event())), headers=auth(key))).status_code
             for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = await client.post(url, content=envelope(("event", exc_event())), headers=auth(key))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.headers["x-sentry-rate-limits"].endswith(":error;transaction;default;security:project")
    # non-event items are not limited
    r = await client.post(url, content=envelope(("client_report", {"discarded_events": []})), headers=auth(key))
    assert r.status_code == 200
    # envelope-queue backpressure becomes a Sentry rate limit too
    pid2, key2 = new_project(heron, "busy")
    queue = tracking(heron).queue.pipeline
    queue.max_queue_bytes = 1
    queue._queued_bytes = 10  # what a full queue looks like
    try:
        r = await client.post(f"/api/{pid2}/envelope/", content=envelope(("event", exc_event())), headers=auth(key2))
    finally:
        queue._queued_bytes = 0
        queue.max_queue_bytes = 256 << 20
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert r.headers["x-sentry-rate-limits"] == "1::organization"


async def test_issue_lifecycle_and_alerts(heron: Heron, client: httpx.AsyncClient) -> None:
    got: list[dict[str, Any]] = []

    async def receiver(alerts: list[dict[str, Any]]) -> None:
        got.extend(alerts)

    heron.alert_receivers.append(receiver)
    pid, key = new_project(heron)
    url = f"/api/{pid}/envelope/"

    async def send(ev: dict[str, Any]) -> None:
        r = await client.post(url, content=envelope(("event", ev)), headers=auth(key))
        assert r.status_code == 200, r.text

    for i in range(3):
        await send(exc_event(release="1.0", user=f"u{i % 2}", env="prod" if i else "staging"))
    await send(exc_event("KeyError", "'k'", "other", release="1.0"))
    tracking(heron).flush()
    issues = await _issues(client, sort="freq")
    assert [(i["metadata"]["type"], i["count"], i["userCount"]) for i in issues] == [("ValueError", "3", 2),
                                                                                   ("KeyError", "1", 0)]
    iid = issues[0]["id"]
    assert [i["metadata"]["type"] for i in await _issues(client, "environment:staging")] == ["ValueError"]
    assert [i["metadata"]["type"] for i in await _issues(client, "KeyError")] == ["KeyError"]
    assert sum(n for _, n in issues[0]["stats"]["24h"]) == 3
    detail = (await client.get(f"/api/0/issues/{iid}/")).json()
    assert {e["value"]: e["count"] for e in detail["environments"]} == {"prod": 2, "staging": 1}
    assert any(t["key"] == "user" and t["totalValues"] == 3 for t in detail["tags"])
    await _wait(lambda: len(got) >= 2)
    assert sorted(a["labels"]["alertname"] for a in got) == ["NewIssue", "NewIssue"]
    assert got[0]["labels"]["project"] == "backend" and got[0]["endsAt"] and got[0]["generatorURL"]

    # resolve -> a new event is a regression: reopened, alerted
    r = await client.put(f"/api/0/issues/{iid}/", json={"status": "resolved"})
    assert r.status_code == 200 and r.json()["status"] == "resolved"
    assert [i["id"] for i in await _issues(client, "is:resolved")] == [iid]
    got.clear()
    await send(exc_event(release="1.1"))
    tracking(heron).flush()
    row = (await client.get(f"/api/0/issues/{iid}/")).json()
    assert (row["status"], row["substatus"], row["count"]) == ("unresolved", "regressed", "4")
    await _wait(lambda: len(got) >= 1)
    assert got[0]["labels"]["alertname"] == "IssueRegression" and got[0]["labels"]["release"] == "1.1"

    # resolved in next release: events from the current release keep it resolved
    r = await client.put(f"/api/0/issues/{iid}/", json={"status": "resolvedInNextRelease"})
    assert r.json()["statusDetails"] == {"inNextRelease": True, "inRelease": "1.1"}
    await send(exc_event(release="1.1"))
    tracking(heron).flush()
    assert (await client.get(f"/api/0/issues/{iid}/")).json()["status"] == "resolved"
    await send(exc_event(release="1.2"))
    tracking(heron).flush()
    assert (await client.get(f"/api/0/issues/{iid}/")).json()["status"] == "unresolved"

    # ignored until 2 more events
    r = await client.put(f"/api/0/issues/{iid}/", json={"status": "ignored", "statusDetails": {"ignoreCount": 2}})
    assert r.json()["status"] == "ignored"
    await send(exc_event())
    tracking(heron).flush()
    assert (await client.get(f"/api/0/issues/{iid}/")).json()["status"] == "ignored"
    await send(exc_event())
    tracking(heron).flush()
    row = (await client.get(f"/api/0/issues/{iid}/")).json()
    assert (row["status"], row["substatus"]) == ("unresolved", "escalating")
    r = await client.put(f"/api/0/issues/{iid}/", json={"status": "bogus"})
    assert r.status_code == 400 and "status must be one of" in r.json()["detail"]
    r = await client.put(f"/api/0/issues/{iid}/", json={"status": "ignored", "statusDetails": {"ignoreCount": -1}})
    assert r.status_code == 400

    events = (await client.get(f"/api/0/issues/{iid}/events/")).json()
    assert len(events) == 8 and all(len(e["eventID"]) == 32 for e in events)
    # unauthenticated web API
    r = await client.get(f"/api/0/issues/{iid}/", headers={"Authorization": ""})
    assert r.status_code == 401 and "detail" in r.json()


async def test_spike_alert(tmp_path: Any) -> None:
    from tests.conftest import ADMIN, make_config

    h = Heron(make_config(tmp_path, errors={"alerts": {"spike": [{"events": 3, "minutes": 1}],  # type: ignore[arg-type]
                                                       "new_issue": False}}))
    await h.start()
    got: list[dict[str, Any]] = []

    async def receiver(alerts: list[dict[str, Any]]) -> None:
        got.extend(alerts)

    h.alert_receivers.append(receiver)
    try:
        pid, key = new_project(h)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app()), base_url="http://h",
                                     headers=ADMIN) as c:
            for _ in range(4):
                r = await c.post(f"/api/{pid}/envelope/", content=envelope(("event", exc_event())), headers=auth(key))
                assert r.status_code == 200
        await _wait(lambda: bool(got))
        assert [a["labels"]["alertname"] for a in got] == ["IssueSpike"]
        assert got[0]["endsAt"] is None and "more than 3 events in 1 minutes (4)" in got[0]["annotations"]["description"]
    finally:
        await h.stop()


async def _wait(cond: Any, timeout: float = 5.0) -> None:
    import asyncio

    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
