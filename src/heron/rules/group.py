"""A rule group: its rules evaluated in order at one timestamp, with Prometheus' staleness.

After each rule its samples are handed to `write`; before a rule that reads what an earlier rule
of the group wrote (rules/deps.py), `publish` makes everything written so far visible to
queries, so it sees it at the same evaluation (Prometheus semantics), while groups without such
chains are written in one batch. A series a rule returned last time but not now gets a stale
marker, as Prometheus writes, so queries stop seeing it at once instead of after 5 minutes.
Group offsets spread groups over the interval the way Prometheus does (a hash of the group).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import xxhash

from heron.metrics.model import STALE_NAN
from heron.rules.alerting import AlertingRule
from heron.rules.deps import flush_before, outputs
from heron.rules.recording import RecordingRule
from heron.rules.rule import HEALTH_ERR, HEALTH_OK, OutSample, QueryFn
from heron.rules.rulefmt import GroupDef

Rule = AlertingRule | RecordingRule
Writer = Callable[[list[OutSample]], None]
Publish = Callable[[list[str]], None]  # metric names written since the last publish


@dataclass
class RuleEvalError:
    rule: Rule
    ts_ms: int
    message: str


@dataclass
class Group:
    name: str
    file: str
    interval_ms: int
    rules: list[Rule]
    query_offset_ms: int = 0
    limit: int = 0
    last_evaluation_ms: int = 0
    evaluation_seconds: float = 0.0
    last_errors: list[RuleEvalError] = field(default_factory=list)
    _flush_before: frozenset[int] | None = field(default=None, repr=False)

    @classmethod
    def from_def(cls, g: GroupDef, default_interval_ms: int, default_query_offset_ms: int = 0,
                 external_labels: Mapping[str, str] | None = None, external_url: str = "") -> Group:
        rules: list[Rule] = []
        for r in g.rules:
            if r.kind == "recording":
                rules.append(RecordingRule.from_def(r, g.labels))
            else:
                rules.append(AlertingRule.from_def(r, g.labels, dict(external_labels or {}), external_url))
        return cls(g.name, g.file, g.interval_ms or default_interval_ms, rules,
                   g.query_offset_ms if g.query_offset_ms is not None else default_query_offset_ms, g.limit)

    @property
    def key(self) -> str:
        return f"{self.file};{self.name}"

    def offset_ms(self, interval_ms: int | None = None) -> int:
        """Prometheus' evaluation offset inside the interval (Group.EvalTimestamp): the hash of
        the labels {file, name} (labels.Hash: xxhash64 of `name 0xff value 0xff` in name order)
        modulo the interval in nanoseconds, so Heron evaluates a group when Prometheus would."""
        iv = interval_ms or self.interval_ms
        if not iv:
            return 0
        h = xxhash.xxh64_intdigest(b"file\xff" + self.file.encode() + b"\xffname\xff" + self.name.encode() + b"\xff")
        return (h % (iv * 1_000_000)) // 1_000_000

    @property
    def flush_before(self) -> frozenset[int]:
        """Indices of rules that read what an earlier rule of this group wrote."""
        if self._flush_before is None:
            self._flush_before = flush_before(self.rules)
        return self._flush_before

    def eval(self, ts_ms: int, query: QueryFn, write: Writer,
             publish: Publish | None = None) -> list[RuleEvalError]:
        """Evaluate every rule at `ts_ms`; returns the rules' errors (evaluation continues).
        `publish`, when given, is called before each rule that reads an earlier one's output."""
        t0 = time.perf_counter()
        errors: list[RuleEvalError] = []
        chained = self.flush_before if publish is not None else frozenset()
        written: list[str] = []
        for i, rule in enumerate(self.rules):
            if i in chained and publish is not None:
                publish(written)
                written = []
            err = self.eval_rule(rule, ts_ms, query, write)
            if err is not None:
                errors.append(err)
            written += outputs(rule)
        self.last_evaluation_ms = ts_ms
        self.evaluation_seconds = time.perf_counter() - t0
        self.last_errors = errors
        return errors

    def eval_rule(self, rule: Rule, ts_ms: int, query: QueryFn, write: Writer) -> RuleEvalError | None:
        """One rule at one time: its samples plus stale markers for series it no longer returns."""
        r0 = time.perf_counter()
        st = rule.state
        try:
            out = rule.eval(ts_ms, self.query_offset_ms, query, self.limit)
        except Exception as e:
            st.health, st.last_error = HEALTH_ERR, str(e)
            st.last_evaluation_ms, st.evaluation_seconds = ts_ms, time.perf_counter() - r0
            return RuleEvalError(rule, ts_ms, str(e))
        st.health, st.last_error = HEALTH_OK, ""
        st.last_evaluation_ms, st.evaluation_seconds = ts_ms, time.perf_counter() - r0
        returned = {s.labels for s in out}
        at = ts_ms - self.query_offset_ms
        stale = [OutSample(lb, at, STALE_NAN) for lb in st.series_returned - returned]
        st.series_returned = returned
        if out or stale:
            write(out + stale)
        return None

    def alerting_rules(self) -> Sequence[AlertingRule]:
        return [r for r in self.rules if isinstance(r, AlertingRule)]

    def copy_state_from(self, old: Group) -> None:
        """Keep alert state across a reload for rules that still exist (same name and query)."""
        by_key: dict[tuple[str, str], Any] = {(r.name, r.expr): r for r in old.rules}
        for r in self.rules:
            prev = by_key.get((r.name, r.expr))
            if isinstance(r, AlertingRule) and isinstance(prev, AlertingRule):
                r.active, r.restored = prev.active, prev.restored
            if prev is not None and type(prev) is type(r):
                r.state.series_returned = prev.state.series_returned
