"""Alert delivery: to Heron's own alerting (`heron.alert_receivers`) and to external
Alertmanagers listed under `alerting.alertmanagers` (Prometheus' config format, API v2).

Sends are fire-and-forget from the evaluator's point of view: a slow or dead Alertmanager never
delays rule evaluation. Prometheus' resend semantics live in `AlertingRule.alerts_to_send`
(firing alerts every `resend_delay`, resolved ones once more with their end time); here each
batch goes to every Alertmanager, as Prometheus' notifier does it:
- `alerting.alert_relabel_configs` rewrites or drops every alert (external labels already
  added), before any delivery, Heron's own alerting included;
- each Alertmanager set then applies its own `alert_relabel_configs` to what it sends;
- a set's `relabel_configs` rewrite or drop its targets (`__address__`, `__scheme__`,
  `__alerts_path__`), and its HTTP settings (`basic_auth`, `authorization`, `tls_config`,
  `proxy_url`, `follow_redirects`) apply to every request of the set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter

from heron.exceptions import ConfigError
from heron.metrics.relabel import RelabelError, RelabelRule, apply, parse_rules
from heron.notify import NotifyError
from heron.notify.http import client as http_client
from heron.templating.durations import parse_prom_duration
from heron.tls import tls_problem

log = logging.getLogger("heron.rules.notifier")

Receiver = Callable[[list[dict[str, Any]]], Awaitable[None]]
LineOf = Callable[[str], int | None]

_AM_FIELDS = {"static_configs", "scheme", "path_prefix", "timeout", "api_version", "basic_auth",
              "authorization", "follow_redirects", "enable_http2", "relabel_configs", "tls_config",
              "alert_relabel_configs", "proxy_url", "proxy_from_environment", "http_headers"}


@dataclass
class AlertmanagerSet:
    """One entry of `alerting.alertmanagers`: targets sharing HTTP settings and relabeling."""

    urls: list[str]
    timeout: float = 10.0
    relabel: list[RelabelRule] = field(default_factory=list)
    client: httpx.AsyncClient | None = None  # built from the entry's http settings
    server_name: str | None = None  # tls_config.server_name: SNI and certificate name


@dataclass
class AlertmanagerTarget:
    url: str  # full URL of /api/v2/alerts
    set: AlertmanagerSet


def _fail(msg: str, path: str, line_of: LineOf | None, file: str | None) -> ConfigError:
    return ConfigError(msg, file=file, line=line_of(path) if line_of else None, field=path)


def _relabel(raw: Any, path: str, line_of: LineOf | None, file: str | None) -> list[RelabelRule]:
    try:
        return parse_rules(raw)
    except RelabelError as e:
        where = f"{path}.{e.field}" if e.field else path
        raise _fail(str(e), where, line_of, file) from None


def parse_alert_relabel(alerting: dict[str, Any], line_of: LineOf | None = None,
                        file: str | None = None) -> list[RelabelRule]:
    """`alerting.alert_relabel_configs`: applied to every alert before it is sent anywhere."""
    return _relabel(alerting.get("alert_relabel_configs"), "alerting.alert_relabel_configs", line_of, file)


def _targets(am: dict[str, Any], path: str, scheme: str, prefix: str, relabel: list[RelabelRule],
             line_of: LineOf | None, file: str | None) -> list[str]:
    urls: list[str] = []
    for j, sc in enumerate(am.get("static_configs") or []):
        labels = {str(k): str(v) for k, v in ((sc or {}).get("labels") or {}).items()}
        for k, target in enumerate((sc or {}).get("targets") or []):
            if not isinstance(target, str) or ":" not in target:
                raise _fail(f"invalid target {target!r}: want host:port",
                            f"{path}.static_configs.{j}.targets.{k}", line_of, file)
            lb = apply(relabel, {**labels, "__address__": target, "__scheme__": scheme,
                                 "__alerts_path__": f"{prefix.rstrip('/')}/api/v2/alerts"})
            if lb is None or not lb.get("__address__"):
                continue  # dropped by relabel_configs, as Prometheus drops the target
            urls.append(f"{lb.get('__scheme__') or scheme}://{lb['__address__']}{lb.get('__alerts_path__', '')}")
    return urls


def parse_alertmanagers(alerting: dict[str, Any], line_of: LineOf | None = None, file: str | None = None,
                        base_dir: str | None = None) -> list[AlertmanagerTarget]:
    """`alerting.alertmanagers[*]` (static_configs, scheme, path_prefix, timeout, api_version,
    basic_auth, authorization, tls_config, relabel_configs, alert_relabel_configs); errors name
    the file, line and field. Certificate and password files are read here, so a missing one
    is a configuration error, not a failed send later."""
    out: list[AlertmanagerTarget] = []
    for i, am in enumerate(alerting.get("alertmanagers") or []):
        path = f"alerting.alertmanagers.{i}"
        if not isinstance(am, dict):
            raise _fail("must be a mapping", path, line_of, file)
        for k in am:
            if k not in _AM_FIELDS:
                raise _fail(f"field {k} not found in type config.AlertmanagerConfig", f"{path}.{k}", line_of, file)
        if am.get("api_version", "v2") != "v2":
            raise _fail("only api_version v2 is supported (v1 was removed from Alertmanager)",
                        f"{path}.api_version", line_of, file)
        scheme = am.get("scheme", "http")
        if scheme not in ("http", "https"):
            raise _fail(f"unknown scheme {scheme!r}", f"{path}.scheme", line_of, file)
        prefix = "/" + str(am.get("path_prefix") or "").strip("/")
        try:
            timeout = parse_prom_duration(str(am.get("timeout", "10s")))
        except ValueError as e:
            raise _fail(str(e), f"{path}.timeout", line_of, file) from None
        tls = am.get("tls_config") or {}
        if not isinstance(tls, dict):
            raise _fail("must be a mapping", f"{path}.tls_config", line_of, file)
        bad = tls_problem(tls)
        if bad:
            raise _fail(bad[1], f"{path}.tls_config.{bad[0]}", line_of, file)
        for k in ("basic_auth", "authorization"):
            if am.get(k) is not None and not isinstance(am.get(k), dict):
                raise _fail("must be a mapping", f"{path}.{k}", line_of, file)
        if am.get("basic_auth") and am.get("authorization"):
            raise _fail("at most one of basic_auth, authorization must be configured", path, line_of, file)
        tls = {k: (str(Path(base_dir) / v) if k.endswith("_file") and base_dir and not Path(str(v)).is_absolute()
                   else v) for k, v in tls.items()}
        for k in ("ca_file", "cert_file", "key_file"):
            if tls.get(k) and not Path(str(tls[k])).is_file():
                raise _fail(f"cannot read {k} {tls[k]}: no such file", f"{path}.tls_config.{k}", line_of, file)
        try:
            client = http_client({**am, "tls_config": tls}, base_dir, timeout)
        except (NotifyError, OSError, ValueError) as e:  # unreadable CA, key or password file
            what = f"{path}.tls_config" if tls else path
            raise _fail(f"invalid HTTP client settings: {e}", what, line_of, file) from None
        relabel = _relabel(am.get("relabel_configs"), f"{path}.relabel_configs", line_of, file)
        s = AlertmanagerSet([], timeout, _relabel(am.get("alert_relabel_configs"),
                                                  f"{path}.alert_relabel_configs", line_of, file),
                            client, str(tls["server_name"]) if tls.get("server_name") else None)
        s.urls = _targets(am, path, scheme, prefix, relabel, line_of, file)
        out.extend(AlertmanagerTarget(u, s) for u in s.urls)
    return out


def relabel_alerts(rules: list[RelabelRule], alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alerts with `rules` applied to their labels; dropped ones (or left without labels) go."""
    if not rules:
        return alerts
    out = []
    for a in alerts:
        labels = apply(rules, a["labels"])
        if labels:
            out.append({**a, "labels": labels})
    return out


class Notifier:
    """Delivers batches of API v2 alerts; counts what was sent, failed and dropped."""

    def __init__(self, receivers: Sequence[Receiver], targets: list[AlertmanagerTarget],
                 registry: CollectorRegistry | None = None, max_pending: int = 100,
                 relabel: list[RelabelRule] | None = None) -> None:
        self.receivers = receivers
        self.targets = targets
        self.relabel = relabel or []
        self.tasks: set[asyncio.Task[None]] = set()
        self.max_pending = max_pending
        reg = registry or CollectorRegistry()
        self.sent = Counter("heron_notifications_sent", "Alerts sent to Alertmanagers.", ["alertmanager"],
                            registry=reg)
        self.errors = Counter("heron_notifications_errors", "Failed sends to Alertmanagers.",
                              ["alertmanager"], registry=reg)
        self.dropped = Counter("heron_notifications_dropped", "Alert batches dropped (queue full).",
                               registry=reg)

    def reconfigure(self, targets: list[AlertmanagerTarget], relabel: list[RelabelRule]) -> None:
        """New Alertmanagers after a reload; the old sets' connections close in the background."""
        old = {id(t.set): t.set for t in self.targets}
        self.targets, self.relabel = targets, relabel
        for s in old.values():
            if s.client is not None:
                task = asyncio.get_running_loop().create_task(s.client.aclose())
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    def send(self, alerts: list[dict[str, Any]]) -> None:
        alerts = relabel_alerts(self.relabel, alerts)
        if not alerts:
            return
        if len(self.tasks) >= self.max_pending:
            self.dropped.inc()
            log.warning("alert queue full, dropping %d alerts", len(alerts))
            return
        task = asyncio.get_running_loop().create_task(self._deliver(alerts))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, alerts: list[dict[str, Any]]) -> None:
        jobs = [self._receive(r, alerts) for r in self.receivers]
        per_set: dict[int, list[dict[str, Any]]] = {}
        for t in self.targets:
            batch = per_set.get(id(t.set))
            if batch is None:
                batch = per_set[id(t.set)] = relabel_alerts(t.set.relabel, alerts)
            if batch:
                jobs.append(self._post(t, batch))
        await asyncio.gather(*jobs)

    async def _receive(self, receiver: Receiver, alerts: list[dict[str, Any]]) -> None:
        try:
            await receiver([dict(a) for a in alerts])
        except Exception:
            log.exception("built-in alert receiver failed")

    async def _post(self, t: AlertmanagerTarget, alerts: list[dict[str, Any]]) -> None:
        if t.set.client is None:
            t.set.client = http_client(None, None, t.set.timeout)
        ext = {"sni_hostname": t.set.server_name} if t.set.server_name else None
        try:
            r = await t.set.client.post(t.url, json=alerts, timeout=t.set.timeout, extensions=ext)
            if r.status_code // 100 != 2:
                raise httpx.HTTPStatusError(f"bad response status {r.status_code}", request=r.request, response=r)
            self.sent.labels(t.url).inc(len(alerts))
        except httpx.HTTPError as e:  # includes TLS failures (httpx.ConnectError)
            self.errors.labels(t.url).inc()
            log.warning("sending %d alerts to %s failed: %s: %s", len(alerts), t.url, type(e).__name__, e)

    async def close(self) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=5)
        for s in {id(t.set): t.set for t in self.targets}.values():
            if s.client is not None:
                await s.client.aclose()
