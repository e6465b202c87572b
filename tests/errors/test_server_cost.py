"""What the server process spends per event: the lean ingest endpoint answers exactly as the
Starlette one did, several pieces go into one insert (a replay re-inserts nothing), and the
events table merges with a wider base."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pyarrow as pa
import pytest
from starlette.responses import JSONResponse

from heron.api.sentry import CORS
from heron.errors.ingest import tracking
from heron.server import Heron

from .helpers import auth, envelope, exc_event, new_project


async def test_ingest_replies_byte_for_byte_as_a_json_response(heron: Heron, client: httpx.AsyncClient) -> None:
    pid, key = new_project(heron)
    ev = exc_event()
    r = await client.post(f"/api/{pid}/envelope/", headers={**auth(key), "Origin": "https://shop.example"},
                          content=envelope(("event", ev)))
    assert r.status_code == 200
    want = JSONResponse({"id": ev["event_id"]}, 200, headers=CORS)
    assert r.content == want.body == b'{"id":"%s"}' % ev["event_id"].encode()
    assert [(k.lower(), v) for k, v in r.headers.raw] == want.raw_headers
    # an envelope with nothing to count answers {} (as before), the auth error its detail
    r = await client.post(f"/api/{pid}/envelope/", headers=auth(key), content=b"{}\n")
    assert (r.status_code, r.content) == (200, b"{}")
    r = await client.post(f"/api/{pid}/store/", headers=auth("0" * 32), content=b"{}")
    assert r.status_code == 401 and r.json() == {"detail": "invalid api key"}
    assert r.headers["access-control-allow-origin"] == "*" and r.headers["x-sentry-error"] == "invalid api key"
    # the key as a query parameter, the first of repeated auth headers, a body sent in chunks
    r = await client.post(f"/api/{pid}/store/?sentry_key={key}", content=b'{"message": "q"}')
    assert r.status_code == 200
    hdrs = [("X-Sentry-Auth", auth(key)["X-Sentry-Auth"]), ("X-Sentry-Auth", "Sentry sentry_key=" + "1" * 32)]
    r = await client.post(f"/api/{pid}/store/", headers=hdrs, content=b'{"message": "h"}')
    assert r.status_code == 200

    async def chunks() -> Any:
        body = envelope(("event", exc_event()))
        for i in range(0, len(body), 100):
            yield body[i:i + 100]

    r = await client.post(f"/api/{pid}/envelope/", headers=auth(key), content=chunks())
    assert r.status_code == 200
    r = await client.post("/api/x/envelope/", headers=auth(key), content=b"{}\n")
    assert r.status_code == 404 and r.json() == {"detail": "unknown project"}
    tracking(heron).flush()
    assert heron.storage.execute(
        f"SELECT count() AS n FROM `{heron.storage.database}`.error_events").to_pylist()[0]["n"] == 4


async def test_pieces_are_stored_in_groups_and_a_replay_reinserts_nothing(
        heron: Heron, monkeypatch: pytest.MonkeyPatch) -> None:
    from heron.errors.process import INSERT_PIECES
    from heron.errors.queue import SCHEMA

    assert INSERT_PIECES == 6
    monkeypatch.setattr("heron.errors.process.PIECE", 10)
    monkeypatch.setattr("heron.errors.process.INSERT_PIECES", 3)  # more groups from fewer events
    pid, _ = new_project(heron)
    et = tracking(heron)
    et.processor.workers = 0  # in process: the grouping is the same, without worker start-up
    n = 75  # 8 pieces: stored as 0-2, 3-5 and 6-7
    rows = [(pid, "envelope", "", "", time.time(), "", envelope(("event", exc_event(etype=f"E{i % 3}"))))
            for i in range(n)]
    table = pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(zip(*rows, strict=True), SCHEMA, strict=True)],
                                 schema=SCHEMA)
    inserts: list[tuple[str, int, str]] = []
    real = heron.storage.insert

    def spy(name: str, data: pa.Table, token: str | None = None) -> None:
        inserts.append((name, data.num_rows, token or ""))
        real(name, data, token)

    monkeypatch.setattr(heron.storage, "insert", spy)
    for _ in range(2):  # the batch, then the same batch replayed
        et.processor.process(table, "e1:error_envelopes:1-8")
    assert inserts[:3] == [("error_events", 30, "e1:error_envelopes:1-8/0-2/error_events"),
                           ("error_events", 30, "e1:error_envelopes:1-8/3-5/error_events"),
                           ("error_events", 15, "e1:error_envelopes:1-8/6-7/error_events")]
    # the replay: its events were counted, so their rows are dropped before the (same) tokens
    assert [(n, t) for _, n, t in inserts[3:]] == [(0, t) for _, _, t in inserts[:3]]
    db = heron.storage.database
    assert heron.storage.execute(f"SELECT count() AS n FROM `{db}`.error_events").to_pylist()[0]["n"] == n
    [issues] = heron.control.query("SELECT sum(times_seen) AS n FROM error_issues")
    assert issues["n"] == n
    # a one-piece batch keeps its token of before (a batch replayed across an upgrade)
    inserts.clear()
    et.processor.process(table.slice(0, 5), "e1:error_envelopes:9-9")
    assert [t for _, _, t in inserts] == ["e1:error_envelopes:9-9/error_events"]


def test_events_table_merges_with_a_wider_base(storage: Any) -> None:
    from heron.storage.schema import migrate

    migrate(storage)
    [row] = storage.execute(f"SELECT create_table_query AS q FROM system.tables WHERE database = "
                            f"'{storage.database}' AND name = 'error_events'").to_pylist()
    assert "merge_selector_base = 10" in row["q"]


async def test_requests_arriving_during_a_wal_write_share_the_next_record(
        heron: Heron, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    pid, _ = new_project(heron)
    q = tracking(heron).queue
    real = q.pipeline.wal.append

    def slow_disk(*a: Any) -> None:  # a 10 ms fsync: requests keep arriving meanwhile
        time.sleep(0.01)
        real(*a)

    monkeypatch.setattr(q.pipeline.wal, "append", slow_disk)
    seq0 = q.pipeline._next_seq
    bodies = [envelope(("event", exc_event())) for _ in range(60)]

    async def one(i: int) -> None:
        await asyncio.sleep(0.0005 * i)  # each in an event-loop iteration of its own
        await q.put(pid, "envelope", bodies[i], None, "10.0.0.1", None)

    await asyncio.gather(*(one(i) for i in range(60)))
    records = q.pipeline._next_seq - seq0
    assert 1 <= records <= 15  # one per event-loop iteration: ~40-60 here
    assert not q._inflight and not q._batch
    tracking(heron).flush()
    assert heron.storage.execute(
        f"SELECT count() AS n FROM `{heron.storage.database}`.error_events").to_pylist()[0]["n"] == 60


async def test_worker_files_go_to_chdb_as_they_are(heron: Heron, monkeypatch: pytest.MonkeyPatch) -> None:
    """Event tables the workers spooled are inserted from their files (one insert per group of
    pieces, nothing written twice); a failed insert leaves no file behind, and its retry (which
    inserts the first group again, under the same token) and a replay store every event once."""
    from pathlib import Path

    from heron.errors.queue import SCHEMA

    monkeypatch.setattr("heron.errors.process.PIECE", 40)
    monkeypatch.setattr("heron.errors.process.INSERT_PIECES", 3)
    pid, _ = new_project(heron)
    et = tracking(heron)
    et.processor.workers = 2
    n = 130  # 4 pieces: two inserts (0-2, 3)
    rows = [(pid, "envelope", "", "", time.time(), "", envelope(("event", exc_event(etype=f"E{i % 3}"))))
            for i in range(n)]
    table = pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(zip(*rows, strict=True), SCHEMA, strict=True)],
                                 schema=SCHEMA)
    st = heron.storage
    real_command, real_insert = st.command, st.insert
    commands: list[str] = []
    fail = [True]

    def command(sql: str, params: Any = None) -> None:
        if "error_events" in sql:
            commands.append(sql)
            assert sql.count("file('") == 2 * (3 if "/0-2/" in sql else 1)  # 2 workers, 1 file per piece each
            if fail[0] and "/3-3/" in sql:  # after the first group was stored
                fail[0] = False
                raise RuntimeError("storage went away")
        real_command(sql, params)

    def insert(name: str, data: pa.Table, token: str | None = None) -> None:
        # the replay's events were counted: their rows are dropped (an empty table) before the insert
        assert name != "error_events" or data.num_rows == 0, "the spooled events went through a second spool"
        real_insert(name, data, token)

    monkeypatch.setattr(st, "command", command)
    monkeypatch.setattr(st, "insert", insert)
    try:
        with pytest.raises(RuntimeError):
            et.processor.process(table, "e1:error_envelopes:1-4")
        spool = Path(et.processor._spool)
        assert not list(spool.iterdir())  # the failed insert's files, and the digests never stored
        for _ in range(2):  # the retry, then a replay
            et.processor.process(table, "e1:error_envelopes:1-4")
            assert not list(spool.iterdir())
    finally:
        et.processor.close()
    # stored, failed; the retry's two (the first deduplicated by its token); the replay's rows dropped
    assert len(commands) == 4
    assert [c.count("e1:error_envelopes:1-4/0-2/error_events") for c in commands] == [1, 0, 1, 0]
    assert [c.count("e1:error_envelopes:1-4/3-3/error_events") for c in commands] == [0, 1, 0, 1]
    db = st.database
    assert st.execute(f"SELECT count() AS n, uniqExact(event_id) AS u FROM `{db}`.error_events").to_pylist() == [
        {"n": n, "u": n}]
    [issues] = heron.control.query("SELECT sum(times_seen) AS n FROM error_issues")
    assert issues["n"] == n


async def test_ingest_posts_skip_the_middleware_stack(heron: Heron) -> None:
    """POSTs to the ingest endpoints are answered ahead of Starlette's middleware and routes (the
    app's own POST routes removed, they still work); preflights and other paths go through."""
    from starlette.routing import Route

    pid, key = new_project(heron)
    app = heron.app()
    app.router.routes = [r for r in app.router.routes
                         if not (isinstance(r, Route) and r.methods and "POST" in r.methods and "{project_id}" in r.path)]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://heron") as c:
        r = await c.post(f"/api/{pid}/envelope/", headers=auth(key), content=envelope(("event", exc_event())))
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
        r = await c.post(f"/api/{pid}/store/", headers=auth(key), content=b'{"message": "m"}')
        assert r.status_code == 200
        r = await c.post("/api/abc/store/", headers=auth(key), content=b"{}")
        assert r.status_code == 404 and r.json() == {"detail": "unknown project"}
        r = await c.options(f"/api/{pid}/envelope/")
        assert r.status_code == 200 and r.headers["access-control-max-age"] == "3600"
        r = await c.post(f"/api/{pid}/envelope", headers=auth(key), content=b"{}\n")  # no slash: the router's
        assert r.status_code in (307, 404, 405)


async def test_oversized_body_is_refused_without_buffering_it(heron: Heron, client: httpx.AsyncClient,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A body over the limit is answered 413 as soon as the limit is passed: the rest is never
    read into memory (before, the whole body was buffered first, valid key or not)."""
    monkeypatch.setattr("heron.api.sentry.MAX_REQUEST", 1000)
    pid, key = new_project(heron)
    sent = 0

    async def chunks() -> Any:
        nonlocal sent
        for _ in range(100):
            sent += 1
            yield b"x" * 400

    r = await client.post(f"/api/{pid}/envelope/", headers=auth(key), content=chunks())
    assert r.status_code == 413 and "larger than 1000 bytes" in r.json()["detail"]
    assert sent <= 4, f"{sent} chunks of 400 bytes read for a 1000-byte limit"
    assert tracking(heron).queue.backlog == 0  # nothing of it was queued


async def test_steady_requests_wait_for_the_commit_window(heron: Heron, monkeypatch: pytest.MonkeyPatch) -> None:
    """At a steady arrival rate (one request per ms) a group waits until its first request is
    COMMIT_DELAY old: a few requests per WAL record. Without the window, a write that takes less
    than the gap between requests (here: the fsync left out) gives each request its own record."""
    import asyncio

    from heron.errors import queue as queue_mod
    from heron.pipeline import wal as wal_mod

    pid, _ = new_project(heron)
    q = tracking(heron).queue
    monkeypatch.setattr(wal_mod.os, "fsync", lambda fd: None)  # a write far shorter than 1 ms
    bodies = [envelope(("event", exc_event())) for _ in range(60)]  # new event ids each

    async def run() -> int:
        seq0, todo = q.pipeline._next_seq, [bodies.pop() for _ in range(30)]

        async def one(i: int) -> None:
            await asyncio.sleep(0.001 * i)
            await q.put(pid, "envelope", todo[i], None, "10.0.0.1", None)

        await asyncio.gather(*(one(i) for i in range(30)))
        await asyncio.sleep(0.05)
        return q.pipeline._next_seq - seq0

    with_window = await run()
    monkeypatch.setattr(queue_mod, "COMMIT_DELAY", 0.0)
    without = await run()
    assert 1 <= with_window <= 20 and with_window < without  # here: 11 against 26-29
    assert not q._inflight and not q._batch and q._timer is None
    tracking(heron).flush()
    assert heron.storage.execute(
        f"SELECT count() AS n FROM `{heron.storage.database}`.error_events").to_pylist()[0]["n"] == 60


async def test_a_lone_request_is_written_at_once(heron: Heron) -> None:
    """No request came within the window before it: no wait for company."""
    import asyncio

    from heron.errors.queue import COMMIT_DELAY

    pid, _ = new_project(heron)
    q = tracking(heron).queue
    body = envelope(("event", exc_event()))
    for _ in range(2):
        await asyncio.sleep(COMMIT_DELAY * 3)
        task = asyncio.create_task(q.put(pid, "envelope", body, None, "10.0.0.1", None))
        await asyncio.sleep(0)  # put() ran: the group is submitted on the next iteration, no timer
        assert q._timer is None and len(q._batch) == 1
        await asyncio.sleep(0)
        assert q._inflight and not q._batch
        await task
