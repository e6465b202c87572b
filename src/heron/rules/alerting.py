"""Alerting rules: the state machine inactive -> pending -> firing -> resolved (Prometheus').

Each evaluation turns the expression's vector into alerts keyed by their label set: new ones
start pending, a pending one fires once it has been active for `for`, one that disappears is
resolved (kept 15 minutes so it is re-sent as resolved), unless `keep_firing_for` holds it.
Every active alert is written as `ALERTS{alertstate=...} 1` and `ALERTS_FOR_STATE` (its
active-since time), which is what restores the `for` clock after a restart.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from heron.metrics.model import Labels, labels_from
from heron.rules.rule import OutSample, QueryFn, RuleError, RuleState
from heron.rules.rulefmt import RuleDef
from heron.templating import alert_template_data, expand_alert

PENDING, FIRING, INACTIVE = "pending", "firing", "inactive"
RESOLVED_RETENTION_MS = 15 * 60 * 1000


@dataclass
class Alert:
    labels: dict[str, str]
    annotations: dict[str, str]
    state: str
    active_at_ms: int
    value: float
    fired_at_ms: int = 0
    resolved_at_ms: int = 0
    last_sent_at_ms: int = 0
    valid_until_ms: int = 0
    keep_firing_since_ms: int = 0

    def needs_sending(self, ts_ms: int, resend_delay_ms: int) -> bool:
        if self.state == PENDING:
            return False
        if self.resolved_at_ms > self.last_sent_at_ms:
            return True
        return self.last_sent_at_ms + resend_delay_ms < ts_ms


@dataclass
class AlertingRule:
    name: str
    expr: str
    for_ms: int = 0
    keep_firing_for_ms: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    external_labels: dict[str, str] = field(default_factory=dict)
    external_url: str = ""
    funcs: Mapping[str, Callable[..., Any]] | None = None  # template functions (query bound per eval)
    active: dict[Labels, Alert] = field(default_factory=dict)
    restored: bool = False
    state: RuleState = field(default_factory=RuleState)
    kind: str = "alerting"
    _templated: bool | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_def(cls, d: RuleDef, group_labels: dict[str, str] | None = None,
                 external_labels: dict[str, str] | None = None, external_url: str = "") -> AlertingRule:
        return cls(d.name, d.expr, d.for_ms, d.keep_firing_for_ms, {**(group_labels or {}), **d.labels},
                   dict(d.annotations), dict(external_labels or {}), external_url)

    @property
    def templated(self) -> bool:
        """Whether labels or annotations hold templates (else they are copied, not rendered)."""
        if self._templated is None:
            self._templated = any("{{" in v for v in (*self.labels.values(), *self.annotations.values()))
        return self._templated

    def _funcs(self, query: QueryFn, at_ms: int) -> Mapping[str, Callable[..., Any]]:
        from heron.templating import QuerySample as TSample
        from heron.templating import prometheus_funcs

        def q(expr: str) -> list[TSample]:
            return [TSample(dict(s.labels), s.value) for s in query(expr, at_ms / 1000)]

        return prometheus_funcs(query=q, external_url=self.external_url)

    def eval(self, ts_ms: int, query_offset_ms: int, query: QueryFn, limit: int = 0) -> list[OutSample]:
        at = ts_ms - query_offset_ms
        vector = query(self.expr, at / 1000)
        funcs = None
        new: dict[Labels, Alert] = {}
        templated = self.templated
        for s in vector:
            lb = {k: v for k, v in s.labels.items() if k != "__name__"}
            if templated:
                if funcs is None:
                    funcs = self._funcs(query, at)
                data = alert_template_data(s.labels, self.external_labels, self.external_url, s.value)
                for k, v in self.labels.items():
                    lb[k] = expand_alert(v, self.name, data, funcs)
                annotations = {k: expand_alert(v, self.name, data, funcs) for k, v in self.annotations.items()}
            else:
                lb.update(self.labels)
                annotations = dict(self.annotations)
            lb["alertname"] = self.name
            key = labels_from(lb)
            if key in new:
                raise RuleError("vector contains metrics with the same labelset after applying alert labels")
            new[key] = Alert(dict(key), annotations, PENDING, ts_ms, s.value)
        for key, a in new.items():
            old = self.active.get(key)
            if old is not None and old.state != INACTIVE:
                old.value, old.annotations = a.value, a.annotations
                continue
            self.active[key] = a
        out: list[OutSample] = []
        n_active = 0
        for key, a in list(self.active.items()):
            if key not in new:
                keep = False
                if a.state == FIRING and self.keep_firing_for_ms > 0:
                    if not a.keep_firing_since_ms:
                        a.keep_firing_since_ms = ts_ms
                    keep = ts_ms - a.keep_firing_since_ms < self.keep_firing_for_ms
                if a.state == PENDING or (a.resolved_at_ms and ts_ms - a.resolved_at_ms > RESOLVED_RETENTION_MS):
                    del self.active[key]
                if a.state != INACTIVE and not keep:
                    a.state, a.resolved_at_ms = INACTIVE, ts_ms
                if not keep:
                    continue
            else:
                a.keep_firing_since_ms = 0
            n_active += 1
            if a.state == PENDING and ts_ms - a.active_at_ms >= self.for_ms:
                a.state, a.fired_at_ms = FIRING, ts_ms
            if self.restored:
                base = dict(key)
                out.append(OutSample(labels_from({**base, "__name__": "ALERTS", "alertstate": a.state}), at, 1.0))
                out.append(OutSample(labels_from({**base, "__name__": "ALERTS_FOR_STATE"}), at,
                                     float(a.active_at_ms // 1000)))
        if limit > 0 and n_active > limit:
            self.active = {}
            raise RuleError(f"exceeded limit of {limit} with {n_active} alerts")
        return out

    def firing(self) -> list[Alert]:
        return [a for a in self.active.values() if a.state == FIRING]

    def alerts_to_send(self, ts_ms: int, resend_delay_ms: int, interval_ms: int) -> list[Alert]:
        """Prometheus' sendAlerts: firing alerts due for (re)sending and newly resolved ones."""
        out = []
        for a in self.active.values():
            if a.needs_sending(ts_ms, resend_delay_ms):
                a.last_sent_at_ms = ts_ms
                a.valid_until_ms = ts_ms + 4 * max(resend_delay_ms, interval_ms)
                out.append(Alert(**{**a.__dict__, "labels": dict(a.labels)}))
        return out

    def generator_url(self, base: str) -> str:
        return f"{base.rstrip('/')}/graph?g0.expr={urllib.parse.quote_plus(self.expr)}&g0.tab=1"


def rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def to_api_alert(a: Alert, generator_url: str, external_labels: Mapping[str, str]) -> dict[str, Any]:
    """Alertmanager API v2 shape ({labels, annotations, startsAt, endsAt, generatorURL})."""
    labels = {**external_labels, **a.labels}
    ends = a.resolved_at_ms or a.valid_until_ms
    return {"labels": labels, "annotations": dict(a.annotations), "startsAt": rfc3339(a.fired_at_ms),
            "endsAt": rfc3339(ends), "generatorURL": generator_url}
