"""Behind the queue: raw envelopes become rows, issue counts and alerts, one batch at a time.

    queue batch (records a..b) ─▶ digest: decompress, parse, normalize, scrub, group, rows
                                  (errors.digest; in worker processes when the batch is big)
        ─▶ drop events whose id was counted before (SDK resends, a replayed batch)
        ─▶ insert rows, token "<queue token>/<table>"  (a replayed batch re-inserts nothing)
        ─▶ ONE control-store transaction: issue counters, seen event ids, user reports, and the
           watermark "counted through b" (a replayed batch counts nothing twice)
        ─▶ check-ins, alerts

Digesting is deterministic for a given record (the receive time, client IP and fallback event
id travel in the record), so a batch replayed after `kill -9` yields the same rows and finds
its events already counted. A record that turns out to be malformed here (bad JSON in an item)
is logged and counted in `heron_errors_items_total{outcome="invalid"}`; it never blocks the
batch.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from heron.errors.digest import (
    Context,
    Digest,
    Envelope1,
    Record,
    Spooled,
    digest,
    discard,
    load,
    watch_parent,
)
from heron.errors.issues import SEEN_WINDOW
from heron.errors.normalize import MAX_FUTURE
from heron.errors.projects import Project
from heron.exceptions import BadRequest
from heron.storage.base import qualified, settings_clause
from heron.storage.chdb import ChDBStorage

if TYPE_CHECKING:
    from heron.errors.ingest import ErrorTracking

log = logging.getLogger("heron.errors.process")
POOL_MIN = 32
"""Batches smaller than this are digested in the calling thread (a round trip to a worker
costs more than it saves, and tests stay free of worker start-up)."""
PIECE = 1000
"""Records per piece of a batch: pieces are stored while the workers digest the next ones, and
they are the unit of the insert tokens (so the size must never depend on the worker count).
Not smaller: chDB spends ~50% more CPU per event on 200-row inserts than on 1000-row ones."""
INSERT_PIECES = 6
"""Pieces stored per insert (the last insert of a batch takes what is left): with a batch of
6000, one insert per batch (the default batch, 3000: one insert of 3 pieces). chDB's CPU per
event falls with the part size, its background merges most (rows merged per row inserted over 60 000 events: 2.46 at 1000-row
parts, 1.22 at 3000). Measured with the bench, split mode, A/B 6 vs 3, load 2-3: server drain
0.171-0.179 -> 0.141-0.145 ms/event, all processes 0.85-0.87 -> 0.80-0.84; mixed mode end to end
1535-1612 -> 1604-1851 events/s. The cost: the workers idle during the batch's insert, so a
drain alone is slower (2388-2400 -> 1836-2254 events/s)."""
LATE = SEEN_WINDOW - 2 * MAX_FUTURE
"""Only events older than this (receive time minus event time) can be resends from beyond the
seen-id window: ids leave the window when an event received SEEN_WINDOW after them is counted,
so a resend missing from it arrives that much later, with its first timestamp (at most
MAX_FUTURE ahead of its first receive time). Fresh events, nearly all of them, skip the
storage look-up (a query over the event_id index of every stored row in their time range)."""
SPOOL = "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
"""Where workers leave their tables for the server (`digest.Spooled`): memory, not disk."""


class Processor:
    """What the envelope queue flushes into: it looks like a `Storage` to the queue's pipeline
    (its `insert` gets each batch with a replay-stable token) and does the processing."""

    database = ""

    def __init__(self, et: ErrorTracking, workers: int = 0) -> None:
        self.et = et
        self.workers = workers
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._spool = ""
        self._upcoming: tuple[str, list[pa.Table]] | None = None  # told by the pipeline
        self._ahead: _Ahead | None = None  # ...and handed to the workers

    def prefetch(self, table: str, tables: list[pa.Table], token: str) -> None:
        """The queue's pipeline tells the batch it hands over after the next one (only when a
        full one waits): its pieces go to the workers right behind the next batch's, so they
        digest it while that one is stored and counted, when they used to sit idle."""
        self._upcoming = (token, tables)

    # -- the Storage surface the pipeline uses ---------------------------------------------
    def insert(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        self.process(data, dedup_token or "")

    def execute(self, sql: str, params: Any = None, settings: Any = None) -> pa.Table:
        raise NotImplementedError("the envelope processor only takes inserts")

    def command(self, sql: str, params: Any = None) -> None:
        raise NotImplementedError("the envelope processor only takes inserts")

    def close(self) -> None:
        if self._ahead is not None:
            _drop(self._ahead.pending)
            self._ahead = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._spool:  # tables of digests that were never loaded (a failed insert, a stop)
            shutil.rmtree(self._spool, ignore_errors=True)
            self._spool = ""

    def spool_dir(self) -> str:
        """This process' directory for worker tables; those of dead processes are removed."""
        if not self._spool:
            for old in Path(SPOOL).glob("heron-errors-*"):
                try:
                    os.kill(int(old.name.split("-")[2]), 0)
                except ProcessLookupError:
                    shutil.rmtree(old, ignore_errors=True)
                except (ValueError, IndexError, OSError):
                    pass
            path = Path(SPOOL) / f"heron-errors-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            path.mkdir(mode=0o700)
            self._spool = str(path)
        return self._spool

    # -- processing --------------------------------------------------------------------------
    def context(self) -> Context:
        s = self.et.settings
        sc = s.scrubber
        return Context(sc.enabled, tuple(sc.fields), frozenset(sc.safe_fields), sc.scrub_ip_addresses,
                       s.attachments_max_bytes, frozenset(self.et.span_columns()))

    def digests(self, pieces: list[list[Record]], pending: list[list[Future[Digest]]] | None = None,
                then: tuple[str, str, list[pa.Table]] | None = None) -> Iterator[list[Digest]]:
        """The digests of each piece, in order. With workers, each piece is split among them and
        every piece is handed out at once: the workers digest the next piece while the caller
        stores the one before. `pending`: these pieces' futures, handed out before (`_Ahead`);
        `then` (owner token, token, tables): the batch after this one, handed out right behind
        this one's pieces and kept in `_ahead` for the call that processes it."""
        ctx = self.context()
        if pending is None and (self.workers <= 0 or sum(map(len, pieces)) < POOL_MIN):
            for piece in pieces:
                yield [digest(piece, ctx)]
            return
        pending = pending or []
        try:
            for k in range(len(pieces)):
                try:
                    if not pending:
                        pending = self._submit(pieces, ctx)
                    if then is not None:
                        owner, token, tables = then
                        then = None
                        ahead, outcomes, projects = self.pieces(pa.concat_tables(tables))
                        self._ahead = _Ahead(token, owner, ahead, outcomes, projects, self._submit(ahead, ctx))
                    out = [f.result() for f in pending[k]]
                except (concurrent.futures.process.BrokenProcessPool, RuntimeError) as exc:  # died / shut down
                    log.warning("error-processing workers unavailable (%s); digesting in-process", exc)
                    self._pool = None
                    for rest in pieces[k:]:
                        yield [digest(rest, ctx)]
                    return
                pending[k] = []
                yield out
        finally:
            _drop(pending)  # the caller stopped early (an insert failed): drop what is left

    def _submit(self, pieces: list[list[Record]], ctx: Context) -> list[list[Future[Digest]]]:
        """Hand every piece to the workers, each piece split among them."""
        if self._pool is None:
            # spawn: the server process has threads (and chDB) that a fork would copy mid-flight
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=watch_parent, initargs=(os.getpid(),))
        n = self.workers
        wctx = dataclasses.replace(ctx, spool=self.spool_dir())
        return [[self._pool.submit(digest, c, wctx) for c in
                 (p[i * len(p) // n:(i + 1) * len(p) // n] for i in range(n)) if c]
                for p in pieces]

    def pieces(self, data: pa.Table) -> tuple[list[list[Record]], Counter[tuple[str, str]],
                                              dict[int, Project | None]]:
        """A batch's records in pieces of PIECE rows (the unit of the insert tokens), less those
        of projects deleted since they were accepted (counted as invalid envelopes)."""
        projects: dict[int, Project | None] = {}
        outcomes: Counter[tuple[str, str]] = Counter()
        cols = {name: data.column(name).to_pylist() for name in data.column_names}
        pieces: list[list[Record]] = []
        for i in range(data.num_rows):
            if i % PIECE == 0:
                pieces.append([])
            pid = cols["project"][i]
            if pid not in projects:
                projects[pid] = self.et.projects.get(pid)
            project = projects[pid]
            if project is None:  # deleted since it was accepted
                outcomes["envelope", "invalid"] += 1
                continue
            pieces[-1].append((pid, project.slug, cols["kind"][i], cols["encoding"][i], cols["ip"][i],
                               cols["received"][i], cols["event_id"][i], cols["body"][i]))
        return pieces, outcomes, projects

    def _insert(self, name: str, parts: list[pa.Table | Spooled], token: str) -> None:
        """One insert of these tables. Spooled ones all alike are read by chDB from the workers'
        files (one UNION ALL insert: one part, one token): the server neither maps them nor
        writes them once more to the storage's own spool (~15 µs per 40 KB event)."""
        st = self.et.heron.storage
        try:
            if all(isinstance(p, Spooled) for p in parts) and isinstance(st, ChDBStorage):
                paths = [p.path for p in parts if isinstance(p, Spooled)]
                with pa.memory_map(paths[0]) as f:
                    names = pa.ipc.open_stream(f).schema.names
                cols = ", ".join(f"`{c}`" for c in names)
                select = " UNION ALL ".join(f"SELECT {cols} FROM file('{p}', 'ArrowStream')" for p in paths)
                st.command(f"INSERT INTO {qualified(st.database, name)} ({cols})"
                           f"{settings_clause({'insert_deduplication_token': token})} {select}")
            else:
                tables = [load(p) for p in parts]
                st.insert(name, pa.concat_tables(tables) if len(tables) > 1 else tables[0], token)
        finally:
            discard([Digest(tables={str(i): p for i, p in enumerate(parts)})])

    def stored_before(self, events: list[tuple[int, int, dict[str, Any]]]) -> set[str]:
        """Ids of these events already stored by an earlier request: SDK resends that come back
        after the seen-id window. A resend has the event's own timestamp (the day partitions
        narrow the look-up, the event_id bloom filter skips most granules) and a
        later receive time; a row with the same receive time is this very record stored
        before a crash, which the insert tokens deduplicate and which must still be counted."""
        if not events:
            return set()
        st = self.et.heron.storage
        mine = {ev["event_id"]: ev.get("received") or 0.0 for _, _, ev in events}
        found = []
        dated = [e for e in events if not e[2].get("_clamped")]
        if dated:
            found += st.execute(_stored_sql(st.database, dated)).to_pylist()
        clamped = [e for e in events if e[2].get("_clamped")]
        if clamped:  # stored with its first receive time, which can be any time before this one
            found += st.execute(_stored_sql(st.database, clamped, since=False)).to_pylist()
        return {r["event_id"] for r in found if abs(r["received"] - mine.get(r["event_id"], 0.0)) > 1e-6}

    def process(self, data: pa.Table, token: str) -> None:
        """One queue batch: digested in pieces of PIECE records, stored INSERT_PIECES pieces at a
        time as their digests come back (token "<batch token>/<first>-<last piece>/<table>", or
        "<batch token>/<table>" for a one-piece batch: the pieces follow the batch's record
        numbers, so a replay re-inserts nothing), then everything counted in one transaction."""
        et = self.et
        t1 = time.perf_counter()  # digest: from here to each piece's result; store: its inserts
        # Item outcomes are counted when the batch is (below): a retried or replayed batch
        # (counted before a crash) must not count them again.
        discarded: Counter[tuple[str, str]] = Counter()
        upcoming, self._upcoming = self._upcoming, None
        ahead, self._ahead = self._ahead, None
        pending: list[list[Future[Digest]]] | None = None
        if ahead is not None and ahead.token == token:  # handed out during the batch before
            pieces, outcomes, projects, pending = ahead.pieces, ahead.outcomes, ahead.projects, ahead.pending
        else:
            if ahead is not None:
                if ahead.owner == token:  # this is a retry of the batch it was handed out with
                    self._ahead = ahead
                else:  # the pipeline went another way (a replay re-formed its batches)
                    _drop(ahead.pending)
            pieces, outcomes, projects = self.pieces(data)
        then = (token, *upcoming) if upcoming is not None and upcoming[0] != token else None
        envelopes: list[Envelope1] = []
        seen: set[str] = set()
        wait = store = 0.0
        # the pieces not stored yet (at most INSERT_PIECES); spooled event tables stay files
        tables: dict[str, list[pa.Table | Spooled]] = {}
        by_file = isinstance(et.heron.storage, ChDBStorage)
        loaded: dict[str, list[pa.Table | Spooled]] = {}
        try:
            for k, ds in enumerate(self.digests(pieces, pending, then)):
                t2 = time.perf_counter()
                wait += t2 - t1
                loaded = {}
                for d in ds:  # first: spooled tables are unlinked as they are mapped
                    for name, t in d.tables.items():
                        keep_file = by_file and name == "error_events" and isinstance(t, Spooled)
                        loaded.setdefault(name, []).append(t if keep_file else load(t))
                for d in ds:
                    outcomes.update(d.outcomes)
                    discarded.update(d.discarded)
                    for w in d.warnings:
                        log.warning("%s", w)
                piece = [e for d in ds for e in d.envelopes]
                # Drop resent events (same id), within the batch and against what was counted before:
                # lately (the control store's seen ids), or longer ago (the stored rows).
                ids = [ev["event_id"] for e in piece for _, ev in e.events]
                seen |= et.issues.seen(ids)
                seen |= self.stored_before([(e.project, iid, ev) for e in piece for iid, ev in e.events
                                            if ev["event_id"] not in seen and (
                                                (ev.get("received") or 0.0) - ev["timestamp"] > LATE
                                                or ev.get("_clamped"))])
                repeats = False
                counted: set[str] = set()
                for e in piece:
                    keep = []
                    for iid, ev in e.events:
                        if ev["event_id"] in seen:
                            repeats = True
                            outcomes["event", "duplicate"] += 1
                        else:
                            seen.add(ev["event_id"])
                            counted.add(ev["event_id"])
                            keep.append((iid, ev))
                    e.events = keep
                envelopes += piece
                for name, parts in loaded.items():
                    if name == "error_events" and repeats:
                        parts = [_first_of(pa.concat_tables([load(t) for t in parts]), counted)]
                    tables.setdefault(name, []).extend(parts)
                if k % INSERT_PIECES == INSERT_PIECES - 1 or k == len(pieces) - 1:
                    first = k - k % INSERT_PIECES
                    for name, parts in tables.items():
                        self._insert(name, parts, f"{token}/{name}" if k == 0 else f"{token}/{first}-{k}/{name}")
                    tables = {}
                t1 = time.perf_counter()
                store += t1 - t2
        finally:  # a failure (an insert, a look-up): remove the files of what was not stored
            discard([Digest(tables={f"{n}/{i}": p for n, parts in (*tables.items(), *loaded.items())
                                    for i, p in enumerate(parts)})])
        batches = [(e.project, e.events) for e in envelopes if e.events]
        reports = [(e.project, r) for e in envelopes for r in e.reports]
        results = et.issues.record_batch(token, batches, reports)
        t3 = time.perf_counter()
        et.stage_seconds.labels("digest").inc(wait)
        et.stage_seconds.labels("store").inc(store)
        et.stage_seconds.labels("count").inc(t3 - t1)
        if results is None:  # a replayed batch that was counted before the crash
            log.info("queue batch %s was counted before; rows re-inserted idempotently", token)
            return
        for (kind, outcome), n in outcomes.items():
            et.items.labels(kind, outcome).inc(n)
        for (reason, category), n in discarded.items():
            et.discarded.labels(reason, category).inc(n)
        changes = iter(results)
        for e in envelopes:
            project = projects[e.project]
            assert project is not None
            for ci, received in e.check_ins:
                try:
                    et.crons.check_in(project.id, project.slug, ci, received)
                except BadRequest as exc:
                    et.items.labels("check_in", "invalid").inc()
                    log.warning("project %s: check-in dropped: %s", project.slug, exc)
            if e.events:
                ch = next(changes)
                if ch or et.settings.spikes:
                    et.alert(project, e.events, ch)
        et.processed.inc(sum(len(e.events) for e in envelopes))


@dataclasses.dataclass
class _Ahead:
    """A batch whose pieces were handed to the workers while the batch before it was stored."""
    token: str  # the pipeline's token for it: used only by the call that gets this token
    owner: str  # the batch it was handed out with (a retry of that one keeps it)
    pieces: list[list[Record]]
    outcomes: Counter[tuple[str, str]]
    projects: dict[int, Project | None]
    pending: list[list[Future[Digest]]]


def _drop(pending: list[list[Future[Digest]]]) -> None:
    for futs in pending:
        for f in futs:
            if not f.cancel():
                f.add_done_callback(_discard)


def _discard(f: concurrent.futures.Future[Digest]) -> None:
    if not f.cancelled() and f.exception() is None:
        discard([f.result()])


def _stored_sql(db: str, events: list[tuple[int, int, dict[str, Any]]], since: bool = True) -> str:
    # The ids first (bloom filter, then the small event_id column); data is read only for hits.
    # A (project, issue) tuple filter measured slower than none: the ts range prunes enough.
    projects = ",".join(str(int(p)) for p in sorted({p for p, _, _ in events}))
    ts = [int(ev["timestamp"] * 1000) for _, _, ev in events]
    ids = ",".join(f"'{ev['event_id']}'" for _, _, ev in events)  # normalized: 32 hex digits
    return (f"SELECT event_id, JSONExtractFloat(data, 'received') AS received FROM `{db}`.error_events "
            f"PREWHERE event_id IN ({ids}) WHERE project IN ({projects}) "
            + (f"AND ts >= fromUnixTimestamp64Milli({min(ts)}) " if since else "")
            + f"AND ts <= fromUnixTimestamp64Milli({max(ts)})")


def _first_of(table: pa.Table, ids: set[str]) -> pa.Table:
    """The rows of the events being counted now, once each (resends and repeats dropped)."""
    left = set(ids)
    mask = []
    for eid in table.column("event_id").to_pylist():
        mask.append(eid in left)
        left.discard(eid)
    return table.filter(pa.array(mask, pa.bool_()))
