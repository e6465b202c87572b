"""The alerting service: Alertmanager inside Heron.

Owns the alert store, silences, notification log, inhibitor, dispatcher and one runtime per
receiver integration; takes alerts from the API v2 and from `heron.alert_receivers` (rules,
error tracking, synthetics); reloads with the rest of the configuration.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from heron.alerting.config import AlertmanagerConfig, from_heron, parse_config
from heron.alerting.dispatch import AggrGroup, Dispatcher
from heron.alerting.history import History
from heron.alerting.inhibit import Inhibitor
from heron.alerting.matchers import LABEL_NAME
from heron.alerting.model import Alert, parse_time
from heron.alerting.nflog import NotificationLog
from heron.alerting.route import Route
from heron.alerting.silence import Silences
from heron.alerting.stages import run_pipeline
from heron.alerting.store import AlertStore
from heron.alerting.templates import Templates
from heron.notify import Notification, Notifier, NotifyError, build

if TYPE_CHECKING:
    from heron.config import HeronConfig
    from heron.server import Heron

log = logging.getLogger("heron.alerting")
_INSTANCES: weakref.WeakKeyDictionary[Any, Alerting] = weakref.WeakKeyDictionary()
MAINTENANCE_INTERVAL = 15.0
DEFAULT_CONFIG = {"route": {"receiver": "default"}, "receivers": [{"name": "default"}]}


class AlertMetrics:
    def __init__(self, r: CollectorRegistry) -> None:
        self.received = Counter("alertmanager_alerts_received", "Alerts received.", ["status"], registry=r)
        self.invalid = Counter("alertmanager_alerts_invalid", "Alerts rejected as invalid.", registry=r)
        self.sent = Counter("alertmanager_notifications", "Notifications sent.", ["integration"], registry=r)
        self.failed = Counter("alertmanager_notifications_failed", "Notifications that failed for good.",
                              ["integration"], registry=r)
        self.requests = Counter("alertmanager_notification_requests", "Notification attempts.",
                                ["integration"], registry=r)
        self.requests_failed = Counter("alertmanager_notification_requests_failed", "Failed attempts.",
                                       ["integration"], registry=r)
        self.dropped = Counter("heron_alertmanager_notifications_dropped",
                               "Notifications refused because the receiver queue was full.",
                               ["integration"], registry=r)
        self.latency = Histogram("alertmanager_notification_latency_seconds", "Latency of sending.",
                                 ["integration"], registry=r, buckets=(.01, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.groups = Gauge("alertmanager_dispatcher_aggregation_groups", "Aggregation groups.", registry=r)
        self.alerts = Gauge("alertmanager_alerts", "Alerts in the store.", registry=r)
        self.nflog_errors = Counter("heron_alertmanager_nflog_write_errors",
                                    "Notification log entries that could not be persisted.", registry=r)


@dataclass
class IntegrationRuntime:
    key: str          # nflog receiver key: 'name/kind/index'
    kind: str
    send_resolved: bool
    notifier: Notifier
    queue: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(16))  # concurrent sends
    waiting: int = 0
    max_pending: int = 1000


class UnsupportedNotifier:
    """Stands in for a receiver kind Heron validates but cannot send to: every send fails loudly."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def notify(self, n: Notification) -> None:
        raise NotifyError(self.reason, retry=False)

    async def close(self) -> None:
        return None


class Alerting:
    name = "alerting"

    def __init__(self, config: AlertmanagerConfig, control: Any, registry: CollectorRegistry | None = None,
                 external_url: str = "http://localhost:9090", base_dir: str | None = None) -> None:
        self.config = config
        self.external_url = external_url.rstrip("/")
        self.base_dir = base_dir
        self.metrics = AlertMetrics(registry or CollectorRegistry())
        self.store = AlertStore()
        self.silences = Silences(control)
        self.nflog = NotificationLog(control)
        self.history = History(control)  # every send, for the UI (the nflog keeps the latest)
        self.started_at = time.time()
        self._apply(config)
        self._task: asyncio.Task[None] | None = None

    def _apply(self, config: AlertmanagerConfig) -> None:
        self.config = config
        self.route = Route.build(config.route)
        self.inhibitor = Inhibitor(config.inhibit_rules)
        self.templates = Templates(config.templates, self.base_dir)
        self.integrations: dict[str, list[IntegrationRuntime]] = {}
        for rec in config.receivers.values():
            rts = []
            for integ in rec.integrations:
                notifier: Notifier
                try:
                    notifier = build(integ.kind, integ.settings, self)
                except NotifyError as exc:
                    log.error("receiver %s: %s", rec.name, exc)
                    notifier = UnsupportedNotifier(str(exc))
                rts.append(IntegrationRuntime(f"{rec.name}/{integ.kind}/{integ.index}", integ.kind,
                                              integ.send_resolved, notifier))
            self.integrations[rec.name] = rts
        self.dispatcher = Dispatcher(self.route, self._flush)

    async def _flush(self, group: AggrGroup, alerts: list[Alert]) -> bool:
        return await run_pipeline(self, group, alerts)

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._maintain())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.dispatcher.stop()
        await self._close_notifiers()

    async def _close_notifiers(self) -> None:
        for rts in self.integrations.values():
            for rt in rts:
                try:
                    await rt.notifier.close()
                except Exception:
                    log.exception("closing %s", rt.key)

    async def reload(self, config: AlertmanagerConfig) -> None:
        old = self.dispatcher
        olds = self.integrations
        self._apply(config)
        await old.stop()
        for rts in olds.values():
            for rt in rts:
                await rt.notifier.close()
        for a in self.store:
            self.inhibitor.observe(a)
            self.dispatcher.process(a)

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL)
            try:
                self.maintenance()
                await self.dispatcher.maintenance()
            except Exception:
                log.exception("alerting maintenance failed")

    def maintenance(self) -> None:
        for fp in self.store.gc():
            self.inhibitor.forget(fp)
        self.silences.gc()
        self.nflog.gc()
        self.metrics.groups.set(len(self.dispatcher.groups))
        self.metrics.alerts.set(len(self.store))

    # -- ingest ----------------------------------------------------------------------------------
    def put_alerts(self, raw: list[dict[str, Any]], now: float | None = None) -> list[str]:
        """Validate and take API v2 postable alerts; returns one message per invalid alert."""
        now = time.time() if now is None else now
        errors = []
        resolve = self.config.resolve_timeout
        counts = {"firing": 0, "resolved": 0}
        for item in raw:
            try:
                alert = alert_from_api(item, now, resolve)
            except ValueError as exc:
                errors.append(str(exc))
                continue
            counts[alert.status(now)] += 1
            stored = self.store.put(alert)
            self.inhibitor.observe(stored)
            self.dispatcher.process(stored)
        for status, n in counts.items():
            if n:
                self.metrics.received.labels(status).inc(n)
        if errors:
            self.metrics.invalid.inc(len(errors))
        return errors

    async def receive(self, alerts: list[dict[str, Any]]) -> None:
        """`heron.alert_receivers` entry point (rules, error tracking, synthetics)."""
        errors = self.put_alerts(alerts)
        for e in errors:
            log.error("alert rejected: %s", e)

    # -- notification data -----------------------------------------------------------------------
    def notification(self, receiver: str, group: AggrGroup, alerts: list[Alert], now: float) -> Notification:
        common_l = dict(alerts[0].labels) if alerts else {}
        common_a = dict(alerts[0].annotations) if alerts else {}
        for a in alerts[1:]:
            common_l = {k: v for k, v in common_l.items() if a.labels.get(k) == v}
            common_a = {k: v for k, v in common_a.items() if a.annotations.get(k) == v}
        status = "firing" if any(not a.resolved_at(now) for a in alerts) else "resolved"
        return Notification(receiver, status, alerts, dict(group.labels), common_l, common_a,
                            self.external_url, group.key, now)

    def receivers_of(self, labels: dict[str, str]) -> list[str]:
        """Receiver of each matching route, in order (repeats kept, as Alertmanager 0.25 lists them)."""
        return [r.receiver for r in self.route.match(labels)]


def alert_from_api(item: Any, now: float, resolve_timeout: float) -> Alert:
    if not isinstance(item, dict):
        raise ValueError("an alert must be a JSON object")
    labels = item.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise ValueError("at least one label pair required")
    labels = {str(k): str(v) for k, v in labels.items()}
    for k in labels:
        if not LABEL_NAME.match(k):
            raise ValueError(f"invalid label set: invalid name {k!r}")
    ann = item.get("annotations") or {}
    if not isinstance(ann, dict):
        raise ValueError("annotations must be an object")
    ann = {str(k): str(v) for k, v in ann.items()}
    try:
        starts, ends = parse_time(item.get("startsAt")), parse_time(item.get("endsAt"))
    except ValueError as exc:
        raise ValueError(f"{_lset(labels)}: {exc}") from None
    timeout = False
    if not starts:
        starts = ends if ends else now  # Alertmanager: a resolved-only alert starts when it ends
    if not ends:
        ends, timeout = now + resolve_timeout, True
    if ends < starts:
        raise ValueError(f"{_lset(labels)}: start time must be before end time")
    return Alert(labels, ann, starts, ends, str(item.get("generatorURL") or ""), now, timeout)


def _lset(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{labels[k]}"' for k in sorted(labels)) + "}"


def get(heron: Heron) -> Alerting:
    """The alerting service of a Heron instance, created on first use."""
    am = _INSTANCES.get(heron)
    if am is None:
        cfg = from_heron(heron.config) or parse_config(DEFAULT_CONFIG, filename="<default alertmanager>")
        listen = heron.config.server.listen
        host, _, port = listen.rpartition(":")
        external = heron.config.server.external_url or \
            f"http://{'localhost' if host in ('0.0.0.0', '127.0.0.1', '') else host}:{port}"
        am = Alerting(cfg, heron.control, heron.metrics.registry, external,
                      str(heron.config.resolve_path(".")))
        _INSTANCES[heron] = am
        heron.alert_receivers.append(am.receive)

        async def on_reload(config: HeronConfig) -> None:
            new = from_heron(config) or parse_config(DEFAULT_CONFIG, filename="<default alertmanager>")
            await am.reload(new)

        heron.reload_hooks.append(on_reload)
    return am


def service(heron: Heron) -> Alerting:
    """SERVICE_FACTORIES entry."""
    return get(heron)
