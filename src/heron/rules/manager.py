"""The rules service: loads `rule_files`, evaluates each group on its own schedule, writes
results through the pipeline and hands alerts to the notifier.

Groups start at Prometheus' offsets (its hash of file and name spreads groups over the
interval) and run on a thread pool of their own. A tick that comes too late counts as missed iterations; a group slower than its
interval shows in `heron_rule_group_last_duration_seconds`. The first evaluation after start
restores each alert's `for` clock from `ALERTS_FOR_STATE` (Prometheus' RestoreForState).
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import Counter, Gauge

from heron.config import HeronConfig
from heron.exceptions import ConfigError
from heron.promql import Engine
from heron.rules.alerting import AlertingRule, to_api_alert
from heron.rules.deps import reads
from heron.rules.group import Group
from heron.rules.notifier import Notifier, parse_alert_relabel, parse_alertmanagers
from heron.rules.rule import OutSample, QuerySample, RuleError
from heron.rules.rulefmt import RuleFileError, parse_rule_file
from heron.templating.durations import parse_prom_duration_ms

log = logging.getLogger("heron.rules")

RESEND_DELAY_MS = 60_000
OUTAGE_TOLERANCE_MS = 3_600_000


def _ms(cfg: dict[str, Any], key: str, default: int, config: HeronConfig) -> int:
    value = cfg.get(key)
    if value is None:
        return default
    try:
        return parse_prom_duration_ms(str(value))
    except ValueError as e:
        raise ConfigError(str(e), file=config.source, line=config.line_of(f"global.{key}"),
                          field=f"global.{key}") from None


def load_groups(config: HeronConfig) -> list[Group]:
    """Every group of every file matched by `rule_files` (globs relative to the config file)."""
    g = config.global_
    interval = _ms(g, "evaluation_interval", 60_000, config)
    offset = _ms(g, "rule_query_offset", 0, config)
    external = {str(k): str(v) for k, v in (g.get("external_labels") or {}).items()}
    url = config.server.external_url or f"http://{config.server.listen}"
    groups: list[Group] = []
    errors: list[str] = []
    for i, pattern in enumerate(config.rule_files):
        path = str(config.resolve_path(pattern))
        files = sorted(glob.glob(path)) if any(c in path for c in "*?[") else [path]
        for f in files:
            if not Path(f).exists():
                raise ConfigError(f"rule file {f} does not exist", file=config.source,
                                  line=config.line_of(f"rule_files.{i}"), field=f"rule_files.{i}")
            try:
                defs = parse_rule_file(f)
            except RuleFileError as e:
                errors.extend(e.errors)
                continue
            groups.extend(Group.from_def(d, interval, offset, external, url) for d in defs)
    if errors:
        raise ConfigError("invalid rule files:\n" + "\n".join(errors), file=config.source)
    return groups


class _ReadCache:
    """Storage wrapper for rule evaluation: identical reads (same SQL, so same selector and time
    window) within `max_age` seconds are answered once. Rules of one evaluation round share
    selectors all the time (warning/critical pairs, recording + alert on the same data). The
    short age bounds how late a brand-new series becomes visible to rules. Ranges the in-memory
    head covers issue no SQL at all, so this only serves older ranges (`[1d]` selectors, a head
    still loading) - measured in bench/rules.py: 0 statements per round once the head is on,
    ~250 (of 1000 queries' worth) without it."""

    def __init__(self, inner: Any, size: int = 512, max_age: float = 2.0) -> None:
        self.inner = inner
        self.database = inner.database
        self.size, self.max_age = size, max_age
        self._cache: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._flights: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.reads = self.misses = 0  # statements asked / sent to storage (bench/rules.py)

    def execute(self, sql: str, params: Any = None, settings: Any = None) -> Any:
        if params or settings:
            return self.inner.execute(sql, params, settings)
        with self._lock:
            self.reads += 1
            hit = self._cache.get(sql)
            if hit is not None and time.monotonic() - hit[0] <= self.max_age:
                self._cache.move_to_end(sql)
                return hit[1]
            flight = self._flights.get(sql)
            leader = flight is None
            if leader:
                flight = self._flights[sql] = threading.Event()
        assert flight is not None
        if not leader:  # the same read is running in another thread: wait for its answer
            flight.wait(60)
            with self._lock:
                hit = self._cache.get(sql)
            if hit is not None:
                return hit[1]
            return self.inner.execute(sql)
        try:
            table = self.inner.execute(sql)
            with self._lock:
                self.misses += 1
                self._cache[sql] = (time.monotonic(), table)
                self._cache.move_to_end(sql)
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
        finally:
            with self._lock:
                self._flights.pop(sql, None)
            flight.set()
        return table

    def invalidate(self) -> None:
        """Forget every cached read (rules just made new samples visible)."""
        with self._lock:
            self._cache.clear()

    def command(self, sql: str, params: Any = None) -> None:
        self.inner.command(sql, params)

    def insert(self, table: str, data: Any, dedup_token: str | None = None) -> None:
        self.inner.insert(table, data, dedup_token)

    def close(self) -> None:
        """The wrapped storage belongs to Heron; closing it is not the rules' business."""


@dataclass
class GroupRun:
    """What one evaluation of a group produced and where its time went (seconds, wall clock in
    the evaluating thread): `query` inside PromQL, `write` handing samples to the pipeline, and
    the rest of `total` is the rule loop itself (state machine, templates, labels)."""

    out: list[OutSample] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)
    started: float = 0.0  # perf_counter when a pool thread took the group (queueing excluded)
    total: float = 0.0
    query: float = 0.0
    write: float = 0.0
    queries: int = 0  # asked by rules and templates
    executed: int = 0  # run by the engine (the rest repeated an expression at the same time)
    publishes: int = 0

    @property
    def overhead(self) -> float:
        return max(0.0, self.total - self.query - self.write)


def default_workers() -> int:
    """Threads evaluating groups: chDB runs each query on every core already, so more threads
    than cores (+1 for the Python side) only queue; a pool of our own keeps rules from taking
    the default executor's threads away from ingest and API handlers."""
    return max(2, min(4, (os.cpu_count() or 2) + 1))


class RuleManager:
    """The `rules` service (see module docstring)."""

    name = "rules"

    def __init__(self, heron: Any, groups: list[Group], workers: int | None = None) -> None:
        self.heron = heron
        self.groups = groups
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.workers = workers or default_workers()
        self.executor = ThreadPoolExecutor(self.workers, thread_name_prefix="heron-rules")
        self.last_runs: dict[str, GroupRun] = {}
        cfg = heron.config
        self.for_grace_ms = _ms(cfg.global_, "rule_for_grace_period", 600_000, cfg)
        self.resend_delay_ms = _ms(cfg.global_, "rule_resend_delay", RESEND_DELAY_MS, cfg)
        self.external_labels = {str(k): str(v) for k, v in (cfg.global_.get("external_labels") or {}).items()}
        self.external_url = cfg.server.external_url or f"http://{cfg.server.listen}"
        qe = heron.query_engine
        self.cache = _ReadCache(heron.storage)
        self.engine = Engine(self.cache, lookback=qe.lookback_ms / 1000,
                             max_samples=qe.max_samples, timeout=qe.timeout,
                             subquery_step=_ms(cfg.global_, "evaluation_interval", 60_000, cfg) / 1000,
                             head=qe.head)  # recent ranges from memory: no SQL, no cache needed
        reg = heron.metrics.registry
        self.notifier = Notifier(heron.alert_receivers, self._targets(cfg), reg,
                                 relabel=parse_alert_relabel(cfg.alerting or {}, cfg.line_of, cfg.source))
        self.m_duration = Gauge("heron_rule_group_last_duration_seconds",
                                "Duration of the last evaluation of the group.", ["rule_group"], registry=reg)
        self.m_interval = Gauge("heron_rule_group_interval_seconds", "Evaluation interval of the group.",
                                ["rule_group"], registry=reg)
        self.m_last = Gauge("heron_rule_group_last_evaluation_timestamp_seconds",
                            "Time of the group's last evaluation.", ["rule_group"], registry=reg)
        self.m_iterations = Counter("heron_rule_group_iterations", "Scheduled evaluations of the group.",
                                    ["rule_group"], registry=reg)
        self.m_missed = Counter("heron_rule_group_iterations_missed",
                                "Evaluations skipped because the previous one ran too long.",
                                ["rule_group"], registry=reg)
        self.m_failures = Counter("heron_rule_evaluation_failures", "Rule evaluations that failed.",
                                  ["rule_group"], registry=reg)
        self.m_samples = Gauge("heron_rule_group_last_samples", "Samples written by the last evaluation.",
                               ["rule_group"], registry=reg)

    def _targets(self, cfg: HeronConfig) -> list[Any]:
        return parse_alertmanagers(cfg.alerting or {}, cfg.line_of, cfg.source, str(cfg.resolve_path(".")))

    async def start(self) -> None:
        self.heron.reload_hooks.append(self.reload)
        for g in self.groups:
            self._spawn(g)

    def _spawn(self, g: Group) -> None:
        self.tasks[g.key] = asyncio.get_running_loop().create_task(self._loop(g), name=f"rules:{g.key}")

    async def stop(self) -> None:
        for t in self.tasks.values():
            t.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        self.tasks.clear()
        await self.notifier.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def reload(self, config: HeronConfig) -> None:
        try:
            new = load_groups(config)
            relabel = parse_alert_relabel(config.alerting or {}, config.line_of, config.source)
            targets = self._targets(config)
        except ConfigError as e:
            log.error("rule reload failed, keeping the running rules: %s", e)
            return
        old = {g.key: g for g in self.groups}
        await self.stop_groups()
        for g in new:
            if g.key in old:
                g.copy_state_from(old[g.key])
        self.groups = new
        self.notifier.reconfigure(targets, relabel)
        for g in new:
            self._spawn(g)

    async def stop_groups(self) -> None:
        for t in self.tasks.values():
            t.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        self.tasks.clear()

    # ---- evaluation
    def _query(self, expr: str, t: float) -> list[QuerySample]:
        res = self.engine.instant(expr, t)
        if res.type == "vector":
            return [QuerySample(s.labels, s.value) for s in res.vector]
        if res.type == "scalar" and res.scalar is not None:
            return [QuerySample({}, res.scalar[1])]
        raise RuleError("rule result is not a vector or scalar")

    async def _loop(self, g: Group) -> None:
        iv = g.interval_ms
        self.m_interval.labels(g.key).set(iv / 1000)
        self.m_missed.labels(g.key)  # export the zero
        self.m_failures.labels(g.key)
        now = int(time.time() * 1000)
        off = g.offset_ms()
        base = now - off
        next_ts = base - base % iv + off
        if next_ts < now:
            next_ts += iv
        first = True
        while True:
            await asyncio.sleep(max(0.0, (next_ts - time.time() * 1000) / 1000))
            now = int(time.time() * 1000)
            missed = (now - next_ts) // iv
            if missed > 0:
                self.m_missed.labels(g.key).inc(missed)
                next_ts += missed * iv
            self.m_iterations.labels(g.key).inc()
            try:
                await self.evaluate(g, next_ts, restore=first)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("evaluating rule group %s failed", g.key)
            first = False
            next_ts += iv

    async def evaluate(self, g: Group, ts_ms: int, restore: bool = False) -> GroupRun:
        """One evaluation of a group at `ts_ms`: rules, writes, for-state restore, notifications."""
        loop = asyncio.get_running_loop()
        run = await loop.run_in_executor(self.executor, self._run, g, ts_ms, restore)
        n = len(run.out)
        if run.out:  # one pipeline submit for the group's samples (chained ones went already)
            w0 = time.perf_counter()
            await self.write(run.out)
            run.write += time.perf_counter() - w0
        run.total = time.perf_counter() - run.started
        self.last_runs[g.key] = run
        self.m_duration.labels(g.key).set(run.total)
        self.m_last.labels(g.key).set(ts_ms / 1000)
        self.m_samples.labels(g.key).set(n)
        if run.errors:
            self.m_failures.labels(g.key).inc(len(run.errors))
            for e in run.errors:
                log.warning("rule %s in group %s failed: %s", e.rule.name, g.key, e.message)
        batch: list[dict[str, Any]] = []
        for r in g.alerting_rules():
            url = r.generator_url(self.external_url)
            batch += [to_api_alert(a, url, self.external_labels)
                      for a in r.alerts_to_send(ts_ms, self.resend_delay_ms, g.interval_ms)]
        self.notifier.send(batch)
        return run

    def _run(self, g: Group, ts_ms: int, restore: bool) -> GroupRun:
        """The rules of `g` in an evaluation thread, timed; returns the samples still to write."""
        run = GroupRun(started=time.perf_counter())
        # Rules of a group often repeat an expression at the same time (a warning and a critical
        # alert differing in `for` or labels, a recording rule and the alert on it): the answer
        # cannot differ until the group writes something a later rule reads, so it runs once.
        answers: dict[tuple[str, float], list[QuerySample]] = {}

        def query(expr: str, t: float) -> list[QuerySample]:
            run.queries += 1
            hit = answers.get((expr, t))
            if hit is not None:
                return hit
            q0 = time.perf_counter()
            try:
                answers[(expr, t)] = result = self._query(expr, t)
                run.executed += 1
                return result
            finally:
                run.query += time.perf_counter() - q0

        def publish(names: list[str]) -> None:
            for key in [k for k in answers if reads(k[0], names)]:
                del answers[key]  # may read what is about to become visible
            if run.out:
                w0 = time.perf_counter()
                self._write_visible(run.out)
                run.out.clear()
                run.publishes += 1
                run.write += time.perf_counter() - w0

        run.errors = g.eval(ts_ms, query, run.out.extend, publish)
        if restore:
            self.restore_for_state(g, ts_ms)
        return run

    def _write_visible(self, out: list[OutSample]) -> None:
        """Write `out` now and wait until queries see it: a later rule of the group reads it."""
        ts = np.array([s.ts_ms for s in out], np.int64)
        try:
            self.heron.metrics_writer.write_sync([s.labels for s in out], np.ones(len(out), np.int64), ts,
                                                 np.array([s.value for s in out], np.float64))
            head = getattr(self.engine, "head", None)
            cover = head.coverage_start if head is not None else None
            if cover is None or int(ts.min()) < cover:  # not read from the head: wait for storage
                self.heron.pipeline.flush()
        except Exception as e:  # Backpressure / PipelineClosed / flush timeout
            log.warning("writing %d rule samples failed: %s", len(out), e)
        self.cache.invalidate()

    async def write(self, out: list[OutSample]) -> None:
        series = [s.labels for s in out]
        try:
            await self.heron.metrics_writer.write(series, np.ones(len(out), np.int64),
                                                  np.array([s.ts_ms for s in out], np.int64),
                                                  np.array([s.value for s in out], np.float64))
        except Exception as e:  # Backpressure / PipelineClosed: the next evaluation writes again
            log.warning("writing %d rule samples failed: %s", len(out), e)

    def restore_for_state(self, g: Group, ts_ms: int) -> None:
        """Prometheus' RestoreForState: shift each active alert's clock by the downtime."""
        for r in g.alerting_rules():
            self._restore_rule(r, ts_ms)
            r.restored = True

    def _restore_rule(self, r: AlertingRule, ts_ms: int) -> None:
        if not r.active or r.for_ms <= 0 or r.for_ms < self.for_grace_ms:
            return
        name = r.name.replace("\\", "\\\\").replace('"', '\\"')
        try:
            res = self.heron.query_engine.instant(
                f'ALERTS_FOR_STATE{{alertname="{name}"}}[{OUTAGE_TOLERANCE_MS // 1000}s]', ts_ms / 1000)
        except Exception as e:
            log.warning("restoring for-state of %s failed: %s", r.name, e)
            return
        last: dict[tuple[tuple[str, str], ...], tuple[float, float]] = {}
        for s in res.matrix:
            if s.points:
                key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "__name__"))
                last[key] = s.points[-1]
        for key, a in r.active.items():
            found = last.get(key)
            if found is None:
                continue
            down_at_ms = int(found[0] * 1000)
            active_at_ms = int(found[1]) * 1000
            spent = down_at_ms - active_at_ms
            remaining = r.for_ms - spent
            if remaining <= 0:
                pass  # it was firing: keep the old start so the next evaluation fires at once
            elif remaining < self.for_grace_ms:
                active_at_ms = ts_ms + self.for_grace_ms - r.for_ms
            else:
                active_at_ms += ts_ms - down_at_ms
            a.active_at_ms = active_at_ms

    def alerting_rules(self) -> list[AlertingRule]:
        return [r for g in self.groups for r in g.alerting_rules()]


def validate(config: HeronConfig) -> None:
    """`heron check config` and reloads: rule files parse, alert relabeling and Alertmanager
    settings (certificate and password files included) are valid; raises ConfigError."""
    load_groups(config)
    parse_alert_relabel(config.alerting or {}, config.line_of, config.source)
    parse_alertmanagers(config.alerting or {}, config.line_of, config.source, str(config.resolve_path(".")))


def factory(heron: Any) -> RuleManager:
    """Service factory. Runs even without rule files, so a reload can add some later."""
    manager = RuleManager(heron, load_groups(heron.config))
    heron.rules = manager
    return manager
