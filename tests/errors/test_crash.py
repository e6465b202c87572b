"""Nothing acknowledged is lost, nothing is counted twice: the envelope queue across failures.

- in process: the issue-count transaction fails after the batch's rows were inserted (what a
  crash between the two leaves); the retried batch re-inserts nothing and counts once;
- `heron up` killed with SIGKILL while its queue is being processed, then restarted on the same
  data directory: every acknowledged event is stored exactly once and the counters are exact;
- SDK resends (same event id) are stored and counted once.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from heron.errors.ingest import tracking
from heron.server import Heron
from heron.testing import HeronProcess

from .conftest import create_project
from .helpers import auth, envelope, exc_event, new_project


def _stored(heron_storage: Any, db: str) -> tuple[int, int]:
    row = heron_storage.execute(f"SELECT count() AS n, uniqExact(event_id) AS u FROM `{db}`.error_events").to_pylist()
    return row[0]["n"], row[0]["u"]


async def test_count_failure_after_insert_retries_idempotently(heron: Heron, client: httpx.AsyncClient) -> None:
    pid, key = new_project(heron)
    et = tracking(heron)
    real = et.issues.record_batch
    calls: list[str] = []

    def flaky(token: str, *a: Any, **kw: Any) -> Any:
        calls.append(token)
        if len(calls) == 1:
            raise RuntimeError("control store went away")  # rows are in storage, counts are not
        return real(token, *a, **kw)

    et.issues.record_batch = flaky  # type: ignore[method-assign]
    for i in range(5):
        r = await client.post(f"/api/{pid}/envelope/", headers=auth(key),
                              content=envelope(("event", exc_event(user=f"u{i % 2}"))))
        assert r.status_code == 200
    et.flush()
    assert len(calls) >= 2 and calls[0] == calls[1]  # the same batch, the same token, retried
    assert _stored(heron.storage, heron.storage.database) == (5, 5)
    [issue] = heron.control.query("SELECT times_seen, user_count FROM error_issues")
    assert (issue["times_seen"], issue["user_count"]) == (5, 2)


async def test_batch_in_pieces_on_workers_stores_and_counts_once(heron: Heron, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch bigger than a piece is digested by worker processes piece by piece and stored as
    the pieces come back; a resend in a later piece is still dropped. When counting fails after
    every piece was stored, the retried batch re-inserts nothing (per-piece tokens) and counts
    once; handed over once more (a replay), it changes nothing."""
    from heron.errors.queue import SCHEMA

    PIECE = 150
    monkeypatch.setattr("heron.errors.process.PIECE", PIECE)
    pid, _ = new_project(heron)
    et = tracking(heron)
    et.processor.workers = 2
    n = 2 * PIECE + 50
    events = [exc_event(etype=f"E{i % 3}", user=f"u{i % 4}") for i in range(n)]
    for i in range(PIECE + 10, PIECE + 20):  # resends of piece 0's events, in piece 1
        events[i]["event_id"] = events[i - PIECE]["event_id"]
    rows = [(pid, "envelope", "", "", time.time(), "", envelope(("event", ev))) for ev in events]
    table = pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(zip(*rows, strict=True), SCHEMA, strict=True)],
                                 schema=SCHEMA)
    real = et.issues.record_batch

    def fail_once(*a: Any, **kw: Any) -> Any:
        et.issues.record_batch = real  # type: ignore[method-assign]
        raise RuntimeError("control store went away")  # every piece is stored, nothing counted

    et.issues.record_batch = fail_once  # type: ignore[method-assign]
    try:
        with pytest.raises(RuntimeError):
            et.processor.process(table, "e1:error_envelopes:1-1")
        for _ in range(2):  # the retry (same token: the pieces' inserts are deduplicated), a replay
            et.processor.process(table, "e1:error_envelopes:1-1")
            assert _stored(heron.storage, heron.storage.database) == (n - 10, n - 10)
            counts = heron.control.query("SELECT times_seen, user_count FROM error_issues ORDER BY title")
            kept = [i for i in range(n) if not PIECE + 10 <= i < PIECE + 20]
            assert [(c["times_seen"], c["user_count"]) for c in counts] == [
                (sum(1 for i in kept if i % 3 == t), 4) for t in range(3)]
        assert et.processor._pool is not None  # it did run on workers
        # item outcomes counted once, not on the failed attempt, the retry and the replay each
        assert et.items.labels("event", "accepted")._value.get() == n
        assert et.items.labels("event", "duplicate")._value.get() == 10
        spool = et.processor._spool  # the workers' tables came through it, and none is left
        assert spool and Path(spool).is_dir() and not list(Path(spool).iterdir())
    finally:
        et.processor.close()
    assert not Path(spool).exists()


def test_worker_tables_go_through_the_spool_and_leave_nothing(tmp_path: Path) -> None:
    """A worker's tables come back as spooled Arrow files: the same table as in memory, the file
    unlinked once loaded (or discarded); a dead process' spool directory is removed."""
    import dataclasses

    from heron.errors import digest as dg
    from heron.errors import process as pr
    from heron.errors.scrub import DEFAULT_FIELDS

    ctx = dg.Context(True, DEFAULT_FIELDS, frozenset(), False, 1 << 20, frozenset())
    recs = [(1, "p", "envelope", "", "", 1_700_000_000.0 + i, "", envelope(("event", exc_event(etype=f"E{i}"))))
            for i in range(5)]
    want = dg.digest(recs, ctx).tables["error_events"]
    assert isinstance(want, pa.Table) and want.num_rows == 5
    spooled = dg.digest(recs, dataclasses.replace(ctx, spool=str(tmp_path))).tables["error_events"]
    assert isinstance(spooled, dg.Spooled) and Path(spooled.path).parent == tmp_path
    assert dg.load(spooled).equals(want)
    assert not list(tmp_path.iterdir())
    dg.discard([dg.digest(recs, dataclasses.replace(ctx, spool=str(tmp_path)))])
    assert not list(tmp_path.iterdir())
    dead = Path(pr.SPOOL) / "heron-errors-999999999-deadbeef"  # above any pid_max
    dead.mkdir(exist_ok=True)
    (dead / "x.arrows").write_bytes(b"x")
    proc = pr.Processor(None, workers=0)  # type: ignore[arg-type]
    mine = Path(proc.spool_dir())
    try:
        assert mine.is_dir() and not dead.exists()
    finally:
        proc.close()
    assert not mine.exists()


async def test_resent_event_is_stored_and_counted_once(heron: Heron, client: httpx.AsyncClient) -> None:
    pid, key = new_project(heron)
    ev = exc_event()
    for _ in range(3):  # an SDK retrying after a timeout sends the same event id again
        r = await client.post(f"/api/{pid}/envelope/", headers=auth(key), content=envelope(("event", ev)))
        assert r.status_code == 200 and r.json() == {"id": ev["event_id"]}
        tracking(heron).flush()
    assert _stored(heron.storage, heron.storage.database) == (1, 1)
    assert [r[0] for r in heron.control.query("SELECT times_seen FROM error_issues")] == [1]
    assert tracking(heron).items.labels("event", "duplicate")._value.get() == 2


async def test_resent_after_the_seen_window_is_not_counted_again(heron: Heron, client: httpx.AsyncClient) -> None:
    """Past the 15-minute seen-id window (pruned here), the stored rows still know the event. A
    resend that late carries a timestamp older than the window: only such events are looked up
    in storage, fresh ones are not."""
    pid, key = new_project(heron)
    ev, other, fresh = exc_event(), exc_event(), exc_event()
    ev["timestamp"] = time.time() - 1000  # it happened 16 minutes before its resend
    lookups: list[str] = []
    execute = heron.storage.execute

    def counting(sql: str, *a: Any, **kw: Any) -> Any:
        if "JSONExtractFloat(data, 'received')" in sql:
            lookups.append(sql)
        return execute(sql, *a, **kw)

    heron.storage.execute = counting  # type: ignore[method-assign]
    r = await client.post(f"/api/{pid}/envelope/", headers=auth(key), content=envelope(("event", ev)))
    assert r.status_code == 200
    tracking(heron).flush()
    heron.control.execute("DELETE FROM error_seen_events")  # what the window leaves 15 minutes later
    for body in (ev, other):  # the old event resent, and a new one in the same batch
        r = await client.post(f"/api/{pid}/envelope/", headers=auth(key), content=envelope(("event", body)))
        assert r.status_code == 200
    tracking(heron).flush()
    assert _stored(heron.storage, heron.storage.database) == (2, 2)
    assert [r[0] for r in heron.control.query("SELECT times_seen FROM error_issues")] == [2]
    assert tracking(heron).items.labels("event", "duplicate")._value.get() == 1
    n = len(lookups)
    assert n >= 1 and all(other["event_id"] not in sql for sql in lookups)
    r = await client.post(f"/api/{pid}/envelope/", headers=auth(key), content=envelope(("event", fresh)))
    tracking(heron).flush()
    assert len(lookups) == n  # a fresh event cannot be a late resend: no storage look-up
    assert [r[0] for r in heron.control.query("SELECT times_seen FROM error_issues")] == [3]


@pytest.mark.parametrize("when", [time.time() + 86400, None])
async def test_resent_clamped_event_after_the_seen_window_is_not_counted_again(
        heron: Heron, client: httpx.AsyncClient, when: float | None) -> None:
    """An event whose timestamp is unusable (a day ahead here, or none) is stored at its receive
    time; resent past the seen-id window it gets another one, and storage still knows its id."""
    pid, key = new_project(heron)
    ev = exc_event()
    ev["timestamp"] = when
    for _ in range(2):
        r = await client.post(f"/api/{pid}/envelope/", headers=auth(key), content=envelope(("event", ev)))
        assert r.status_code == 200
        tracking(heron).flush()
        heron.control.execute("DELETE FROM error_seen_events")  # the window has passed
        time.sleep(0.01)  # a later receive time
    assert _stored(heron.storage, heron.storage.database) == (1, 1)
    assert [r[0] for r in heron.control.query("SELECT times_seen FROM error_issues")] == [1]
    assert tracking(heron).items.labels("event", "duplicate")._value.get() == 1


async def test_the_answered_id_is_the_stored_id(heron: Heron, client: httpx.AsyncClient) -> None:
    """An event without a usable id gets one in the request path; it travels in the queue record,
    so the stored event (and a replay of it) carries the id the SDK heard back."""
    pid, key = new_project(heron)
    ids = []
    for ev_id, header in (("not-an-id", {}), (None, {}), (None, {"event_id": "AB" * 16})):
        ev = exc_event()
        if ev_id is None:
            del ev["event_id"]
        else:
            ev["event_id"] = ev_id
        r = await client.post(f"/api/{pid}/envelope/", headers=auth(key), content=envelope(("event", ev), headers=header))
        assert r.status_code == 200 and re.fullmatch("[0-9a-f]{32}", r.json()["id"])
        ids.append(r.json()["id"])
    assert ids[2] == "ab" * 16
    tracking(heron).flush()
    db = heron.storage.database
    stored = heron.storage.execute(f"SELECT event_id FROM `{db}`.error_events").column("event_id").to_pylist()
    assert sorted(stored) == sorted(ids)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def _metric(text: str, name: str) -> float:
    m = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


@pytest.mark.timeout(240)
def test_kill_9_mid_processing_loses_nothing_and_counts_once(tmp_path: Any) -> None:
    # Batches big enough for the worker process, small enough that the kill lands between them.
    cfg = {"errors": {"queue": {"batch": 64, "flush_interval": "50ms", "workers": 1}}}
    proc = HeronProcess(tmp_path / "data", config=cfg).start()
    try:
        dsn = create_project(proc, "crashy")
        key, pid = dsn.split("//")[1].split("@")[0], dsn.rsplit("/", 1)[1]
        url = f"{proc.url}/api/{pid}/envelope/"
        n, kinds = 600, 6
        sent = [exc_event(f"Crash{i % kinds}Error", f"n{i}", user=f"u{i % 7}",
                          event_id=uuid.uuid4().hex) for i in range(n)]
        # big events (like real ones): processing is slower than acknowledging
        for ev in sent:
            ev["extra"] = {"blob": "x" * 20_000}

        with httpx.Client(timeout=30) as c:
            def post(ev: dict[str, Any]) -> int:
                return c.post(url, content=envelope(("event", ev)), headers=auth(key)).status_code

            with ThreadPoolExecutor(16) as pool:
                codes = list(pool.map(post, sent))
            assert codes == [200] * n  # all acknowledged: durable from here on
            m = proc.client().get("/metrics").text
        backlog, processed = _metric(m, "heron_errors_queue_envelopes"), _metric(m, "heron_errors_processed_events_total")
        assert proc.proc is not None
        workers = _children(proc.proc.pid)
        proc.kill()
        assert backlog > 0, "the queue was drained before the kill; the test did not crash mid-processing"
        assert processed < n
        assert workers, "big batches are digested in a worker process"
        deadline = time.monotonic() + 15  # orphaned workers notice their parent is gone and exit
        while any(Path(f"/proc/{w}").exists() and "Z" not in _state(w) for w in workers):
            assert time.monotonic() < deadline, f"worker processes {workers} outlived the kill"
            time.sleep(0.2)
    finally:
        proc.kill()

    proc = HeronProcess(tmp_path / "data", config=cfg).start()  # replays the queue
    try:
        with proc.client() as c:
            deadline = time.monotonic() + 120
            while True:
                issues = c.get("/api/0/projects/heron/crashy/issues/", params={"limit": 100}).json()
                total = sum(int(i["count"]) for i in issues)
                if total >= n or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
        by_type = {i["metadata"]["type"]: (int(i["count"]), i["userCount"]) for i in issues}
        assert by_type == {f"Crash{k}Error": (n // kinds, 7) for k in range(kinds)}, by_type
    finally:
        assert proc.stop() == 0
    out = subprocess.run([sys.executable, "-m", "heron", "sql", "--config", str(proc.data_dir / "heron.yml"),
                          "SELECT count() AS n, uniqExact(event_id) AS u, groupArray(event_id) AS ids "
                          "FROM {db}.error_events"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert (row["n"], row["u"]) == (n, n)  # every acknowledged event exactly once
    assert set(row["ids"]) == {ev["event_id"] for ev in sent}


@pytest.mark.parametrize("status,details", [("resolved", {}), ("resolvedInNextRelease", {}),
                                            ("ignored", {"ignoreCount": 2}), ("unresolved", {})])
async def test_batch_counting_equals_event_by_event(heron: Heron, status: str, details: dict[str, Any]) -> None:
    """A batch counts each issue with one read and one write; the outcome (counters, lifecycle,
    users, facets, the changes reported) must be what counting its events one by one gives."""
    pid, _ = new_project(heron)
    issues = tracking(heron).issues
    base = 1_700_000_000.0

    def ev(i: int, release: str, user: str, env: str = "production") -> dict[str, Any]:
        return {"event_id": uuid.uuid4().hex, "timestamp": base + i * 100_000, "received": base, "level": "error",
                "platform": "python", "type": "error", "title": "T", "metadata": {}, "release": release,
                "environment": env, "_user_key": user}

    seq = [ev(1, "1.0", "u1"), ev(2, "", "u2", "staging"), ev(3, "1.1", "u1"), ev(4, "1.1", "u3"), ev(5, "", "")]
    results = []
    for iid, one_by_one in ((11, True), (12, False)):
        issues.record(pid, [(iid, ev(0, "1.0", "u0"))])
        if status != "unresolved":
            issues.set_status(iid, status, details)
        if one_by_one:
            changes = [c.kind for e in seq for c in issues.record(pid, [(iid, {**e})])]
        else:
            changes = [c.kind for c in issues.record(pid, [(iid, {**e}) for e in seq])]
        row = dict(heron.control.query("SELECT * FROM error_issues WHERE id = ?", (iid,))[0])
        for k in ("id", "short_id", "last_event_id"):
            row.pop(k)
        facets = [tuple(r)[1:] for r in heron.control.query(
            "SELECT * FROM error_issue_facets WHERE issue_id = ? ORDER BY kind, value", (iid,))]
        results.append((changes, row, facets))
    assert results[0] == results[1]
    assert results[1][1]["times_seen"] == 6 and results[1][1]["user_count"] == 4


async def test_a_shorter_flush_interval_applies_to_what_is_waiting(heron: Heron, client: httpx.AsyncClient) -> None:
    """A reload that shortens `errors.queue.flush_interval` (from a long hold) processes what is
    already waiting, without a new request to wake the queue."""
    pid, key = new_project(heron)
    q = tracking(heron).queue
    q.pipeline.flush_interval, q.pipeline.batch_rows = 3600.0, 100_000
    r = await client.post(f"/api/{pid}/envelope/", headers=auth(key), content=envelope(("event", exc_event())))
    assert r.status_code == 200
    time.sleep(0.5)
    assert q.backlog == 1  # held
    q.pipeline.flush_interval = 0.05
    deadline = time.monotonic() + 5
    while q.backlog and time.monotonic() < deadline:
        time.sleep(0.05)
    assert q.backlog == 0
