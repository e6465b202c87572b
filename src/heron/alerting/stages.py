"""The notification pipeline one group flush goes through, in Alertmanager's order.

inhibit -> active time intervals -> mute time intervals -> silences -> per integration:
dedup against the notification log -> send with retries (exponential backoff until the group
interval runs out) -> log what was sent. A flush succeeds only if every integration did.
Every failure is counted (`heron_alertmanager_notifications_failed_total`) and logged.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING

from heron.alerting.model import Alert
from heron.alerting.nflog import Entry
from heron.alerting.timeinterval import active
from heron.notify import Notification, NotifyError

if TYPE_CHECKING:
    from heron.alerting.dispatch import AggrGroup
    from heron.alerting.service import Alerting, IntegrationRuntime

log = logging.getLogger("heron.alerting")

BACKOFF_INITIAL, BACKOFF_FACTOR, BACKOFF_MAX = 0.5, 1.5, 60.0


def needs_update(entry: Entry | None, firing: set[int], resolved: set[int], repeat: float,
                 send_resolved: bool, now: float) -> bool:
    """Alertmanager's DedupStage decision."""
    if entry is None:
        return bool(firing)
    if not firing <= entry.firing:
        return True
    if not firing:
        # All resolved: tell the receiver only if it was told about firing alerts before.
        return bool(entry.firing)
    if send_resolved and not resolved <= entry.resolved:
        return True
    return entry.ts < now - repeat


async def run_pipeline(am: Alerting, group: AggrGroup, alerts: list[Alert]) -> bool:
    now = time.time()
    route = group.route
    alerts = [a for a in alerts if not am.inhibitor.mutes(a.labels, now)]
    if not alerts:
        return True
    if route.active_time_intervals and not any(
            active(am.config.time_intervals.get(n, []), now) for n in route.active_time_intervals):
        return True
    if route.mute_time_intervals and any(
            active(am.config.time_intervals.get(n, []), now) for n in route.mute_time_intervals):
        return True
    alerts = [a for a in alerts if not am.silences.mutes(a.labels, now)]
    if not alerts:
        return True
    integrations = am.integrations.get(route.receiver, [])
    if not integrations:
        return True
    results = await asyncio.gather(*(_integration(am, group, rt, alerts, now) for rt in integrations))
    return all(results)


async def _integration(am: Alerting, group: AggrGroup, rt: IntegrationRuntime, alerts: list[Alert],
                       now: float) -> bool:
    route = group.route
    firing = {a.fp for a in alerts if not a.resolved_at(now)}
    resolved = {a.fp for a in alerts if a.resolved_at(now)}
    entry = am.nflog.query(rt.key, group.key)
    if not needs_update(entry, firing, resolved, route.repeat_interval, rt.send_resolved, now):
        return True
    sent = alerts if rt.send_resolved else [a for a in alerts if not a.resolved_at(now)]
    if sent:
        if rt.waiting >= rt.max_pending:
            am.metrics.failed.labels(rt.kind).inc()
            am.metrics.dropped.labels(rt.kind).inc()
            log.error("notify %s: queue full (%d pending), notification for group %s dropped", rt.key,
                      rt.waiting, group.key)
            await am.history.record_async(rt.key, rt.kind, am.notification(route.receiver, group, sent, now),
                                          "dropped", 0, 0.0, f"queue full ({rt.waiting} pending)")
            return False
        notification = am.notification(route.receiver, group, sent, now)
        deadline = time.monotonic() + max(route.group_interval, 1.0)
        if not await _send_with_retry(am, rt, notification, deadline):
            return False
    try:
        await am.nflog.log_async(rt.key, group.key, firing, resolved, expiry=2 * route.repeat_interval)
    except Exception:
        # Sent, but not durably logged: a restart may send it again. Counted, never silent.
        am.metrics.nflog_errors.inc()
        log.exception("notification log write failed for %s %s", rt.key, group.key)
    return True


async def _send_with_retry(am: Alerting, rt: IntegrationRuntime, n: Notification, deadline: float) -> bool:
    rt.waiting += 1
    try:
        await rt.queue.acquire()
    finally:
        rt.waiting -= 1
    try:
        attempt, delay, first = 0, BACKOFF_INITIAL, time.monotonic()
        while True:
            attempt += 1
            am.metrics.requests.labels(rt.kind).inc()
            started = time.monotonic()
            try:
                await rt.notifier.notify(n)
            except NotifyError as exc:
                am.metrics.requests_failed.labels(rt.kind).inc()
                wait = delay * (0.5 + random.random())
                if not exc.retry or time.monotonic() + wait > deadline:
                    am.metrics.failed.labels(rt.kind).inc()
                    log.error("notify %s for group %s failed after %d attempt(s): %s", rt.key,
                              n.group_key, attempt, exc)
                    await am.history.record_async(rt.key, rt.kind, n, "failed", attempt, time.monotonic() - first,
                                                  str(exc))
                    return False
                log.warning("notify %s attempt %d failed, retrying in %.1fs: %s", rt.key, attempt, wait, exc)
                await asyncio.sleep(wait)
                delay = min(delay * BACKOFF_FACTOR, BACKOFF_MAX)
                continue
            except Exception as exc:  # a bug in a notifier must not kill the group
                am.metrics.failed.labels(rt.kind).inc()
                log.exception("notify %s crashed: %s", rt.key, exc)
                await am.history.record_async(rt.key, rt.kind, n, "failed", attempt, time.monotonic() - first,
                                              f"{type(exc).__name__}: {exc}")
                return False
            am.metrics.latency.labels(rt.kind).observe(time.monotonic() - started)
            am.metrics.sent.labels(rt.kind).inc()
            await am.history.record_async(rt.key, rt.kind, n, "sent", attempt, time.monotonic() - first)
            return True
    finally:
        rt.queue.release()
