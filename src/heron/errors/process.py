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
import logging
import multiprocessing
import os
import time
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from heron.errors.digest import Context, Digest, Record, digest, from_ipc, watch_parent
from heron.errors.projects import Project
from heron.exceptions import BadRequest

if TYPE_CHECKING:
    from heron.errors.ingest import ErrorTracking

log = logging.getLogger("heron.errors.process")
POOL_MIN = 32
"""Batches smaller than this are digested in the calling thread (a round trip to a worker
costs more than it saves, and tests stay free of worker start-up)."""


class Processor:
    """What the envelope queue flushes into: it looks like a `Storage` to the queue's pipeline
    (its `insert` gets each batch with a replay-stable token) and does the processing."""

    database = ""

    def __init__(self, et: ErrorTracking, workers: int = 0) -> None:
        self.et = et
        self.workers = workers
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    # -- the Storage surface the pipeline uses ---------------------------------------------
    def insert(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        self.process(data, dedup_token or "")

    def execute(self, sql: str, params: Any = None, settings: Any = None) -> pa.Table:
        raise NotImplementedError("the envelope processor only takes inserts")

    def command(self, sql: str, params: Any = None) -> None:
        raise NotImplementedError("the envelope processor only takes inserts")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    # -- processing --------------------------------------------------------------------------
    def context(self) -> Context:
        s = self.et.settings
        sc = s.scrubber
        return Context(sc.enabled, tuple(sc.fields), frozenset(sc.safe_fields), sc.scrub_ip_addresses,
                       s.attachments_max_bytes, frozenset(self.et.span_columns()))

    def digest(self, records: list[Record]) -> list[Digest]:
        ctx = self.context()
        if self.workers <= 0 or len(records) < POOL_MIN:
            return [digest(records, ctx)]
        if self._pool is None:
            # spawn: the server process has threads (and chDB) that a fork would copy mid-flight
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=watch_parent, initargs=(os.getpid(),))
        n = self.workers
        chunks = [records[i * len(records) // n:(i + 1) * len(records) // n] for i in range(n)]
        try:
            return list(self._pool.map(digest, [c for c in chunks if c], [ctx] * n))
        except (concurrent.futures.process.BrokenProcessPool, RuntimeError) as exc:  # died / shut down
            log.warning("error-processing workers unavailable (%s); digesting this batch in-process", exc)
            self._pool = None
            return [digest(records, ctx)]

    def process(self, data: pa.Table, token: str) -> None:
        et = self.et
        t0 = time.perf_counter()
        projects: dict[int, Project | None] = {}
        cols = {name: data.column(name).to_pylist() for name in data.column_names}
        records: list[Record] = []
        for i in range(data.num_rows):
            pid = cols["project"][i]
            if pid not in projects:
                projects[pid] = et.projects.get(pid)
            project = projects[pid]
            if project is None:  # deleted since it was accepted
                et.items.labels("envelope", "invalid").inc()
                continue
            records.append((pid, project.slug, cols["kind"][i], cols["encoding"][i], cols["ip"][i],
                            cols["received"][i], cols["event_id"][i], cols["body"][i]))
        digests = self.digest(records)
        t1 = time.perf_counter()
        envelopes = [e for d in digests for e in d.envelopes]
        for d in digests:
            for (kind, outcome), n in d.outcomes.items():
                et.items.labels(kind, outcome).inc(n)
            for (reason, category), n in d.discarded.items():
                et.discarded.labels(reason, category).inc(n)
            for w in d.warnings:
                log.warning("%s", w)
        # Drop resent events (same id), within the batch and against what was counted before.
        seen = et.issues.seen([ev["event_id"] for e in envelopes for _, ev in e.events])
        repeats = False
        for e in envelopes:
            keep = []
            for iid, ev in e.events:
                if ev["event_id"] in seen:
                    repeats = True
                    et.items.labels("event", "duplicate").inc()
                else:
                    seen.add(ev["event_id"])
                    keep.append((iid, ev))
            e.events = keep
        counted = {ev["event_id"] for e in envelopes for _, ev in e.events}
        tables: dict[str, list[pa.Table]] = {}
        for d in digests:
            for name, ipc in d.tables.items():
                tables.setdefault(name, []).append(from_ipc(ipc))
        for name, parts in tables.items():
            table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
            if name == "error_events" and repeats:
                table = _first_of(table, counted)
            et.heron.storage.insert(name, table, f"{token}/{name}")
        t2 = time.perf_counter()
        batches = [(e.project, e.events) for e in envelopes if e.events]
        reports = [(e.project, r) for e in envelopes for r in e.reports]
        results = et.issues.record_batch(token, batches, reports)
        t3 = time.perf_counter()
        if results is None:  # a replayed batch that was counted before the crash
            log.info("queue batch %s was counted before; rows re-inserted idempotently", token)
            return
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
        et.stage_seconds.labels("digest").inc(t1 - t0)
        et.stage_seconds.labels("store").inc(t2 - t1)
        et.stage_seconds.labels("count").inc(t3 - t2)


def _first_of(table: pa.Table, ids: set[str]) -> pa.Table:
    """The rows of the events being counted now, once each (resends and repeats dropped)."""
    left = set(ids)
    mask = []
    for eid in table.column("event_id").to_pylist():
        mask.append(eid in left)
        left.discard(eid)
    return table.filter(pa.array(mask, pa.bool_()))
