"""The `errors:` section of heron.yml, validated with file:line: field errors.

    errors:
      rate_limit: 0                # events per minute per project (0: unlimited); per project too
      attachments_max_bytes: 1MiB  # larger attachments are dropped (counted), the event kept
      scrubbing: {enabled: true, fields: [], safe_fields: [], scrub_ip_addresses: false}
      queue:                       # the envelope queue between acknowledgement and processing
        batch: 3000                # envelopes processed per batch (one control-store transaction)
        flush_interval: 200ms      # how long an accepted envelope may wait for its batch
        workers: auto              # processes that digest big batches (auto: one per core, up to 4; 0: none)
      alerts:
        new_issue: true
        regression: true
        spike: [{events: 100, minutes: 5}]   # more than N events of one issue in M minutes
        cron: true                            # missed / failed check-ins
        hold: 5m                              # how long a one-shot alert (new, regression) stays firing
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from heron.config import HeronConfig, parse_duration, parse_size
from heron.errors.scrub import Scrubber, from_config
from heron.exceptions import ConfigError

_KEYS = {"rate_limit", "attachments_max_bytes", "scrubbing", "alerts", "queue"}
_ALERT_KEYS = {"new_issue", "regression", "spike", "cron", "hold"}
_SCRUB_KEYS = {"enabled", "fields", "safe_fields", "scrub_ip_addresses"}


@dataclass(frozen=True)
class Spike:
    events: int
    minutes: float


@dataclass
class ErrorsSettings:
    rate_limit: int = 0
    attachments_max_bytes: int = 1 << 20
    scrubber: Scrubber = field(default_factory=Scrubber)
    new_issue: bool = True
    regression: bool = True
    cron: bool = True
    spikes: list[Spike] = field(default_factory=list)
    hold: float = 300.0
    queue_batch: int = 3000
    """At a steady 2 000 events/s, 3000 processed ~15-20% more during the run than 6000 (the
    backlog moves in smaller steps), with no more CPU per event (4 pairs, session 6)."""
    queue_flush_interval: float = 0.2
    queue_workers: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))


def load(config: HeronConfig) -> ErrorsSettings:
    section = config.errors or {}
    src = config.source

    def fail(path: str, msg: str) -> ConfigError:
        return ConfigError(msg, file=src, line=config.line_of(path) or config.line_of("errors"), field=path)

    def unknown(d: Any, allowed: set[str], path: str) -> None:
        if not isinstance(d, dict):
            raise fail(path, "must be a mapping")
        for k in d:
            if k not in allowed:
                raise fail(f"{path}.{k}", "unknown field (not a Heron setting; check the spelling)")

    unknown(section, _KEYS, "errors")
    s = ErrorsSettings()
    try:
        s.rate_limit = int(section.get("rate_limit", 0) or 0)
        if s.rate_limit < 0:
            raise ValueError
    except (TypeError, ValueError):
        raise fail("errors.rate_limit", "must be a non-negative integer (events per minute)") from None
    if "attachments_max_bytes" in section:
        try:
            s.attachments_max_bytes = parse_size(section["attachments_max_bytes"])
        except (TypeError, ValueError) as exc:
            raise fail("errors.attachments_max_bytes", str(exc)) from None
    queue = section.get("queue") or {}
    unknown(queue, {"batch", "flush_interval", "workers"}, "errors.queue")
    if queue.get("workers", "auto") != "auto":
        w = queue["workers"]
        if not isinstance(w, int) or isinstance(w, bool) or not 0 <= w <= 64:
            raise fail("errors.queue.workers", "must be auto or an integer from 0 to 64")
        s.queue_workers = w
    if "batch" in queue:
        b = queue["batch"]
        if not isinstance(b, int) or isinstance(b, bool) or not 1 <= b <= 100_000:
            raise fail("errors.queue.batch", "must be an integer from 1 to 100000 (envelopes per batch)")
        s.queue_batch = b
    if "flush_interval" in queue:
        try:
            s.queue_flush_interval = parse_duration(queue["flush_interval"])
        except (TypeError, ValueError) as exc:
            raise fail("errors.queue.flush_interval", str(exc)) from None
    scrubbing = section.get("scrubbing") or {}
    unknown(scrubbing, _SCRUB_KEYS, "errors.scrubbing")
    for key in ("fields", "safe_fields"):
        names = scrubbing.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
            # an empty name would match every key (all data filtered); a number is not a name
            raise fail(f"errors.scrubbing.{key}", "must be a list of field names (non-empty strings)")
    s.scrubber = from_config(section)
    alerts = section.get("alerts") or {}
    unknown(alerts, _ALERT_KEYS, "errors.alerts")
    for key in ("new_issue", "regression", "cron"):
        if key in alerts:
            if not isinstance(alerts[key], bool):
                raise fail(f"errors.alerts.{key}", "must be true or false")
            setattr(s, key, alerts[key])
    if "hold" in alerts:
        try:
            s.hold = parse_duration(alerts["hold"])
        except (TypeError, ValueError) as exc:
            raise fail("errors.alerts.hold", str(exc)) from None
    spikes = alerts.get("spike") or []
    if isinstance(spikes, dict):
        spikes = [spikes]
    if not isinstance(spikes, list):
        raise fail("errors.alerts.spike", "must be a list of {events: N, minutes: M}")
    for i, sp in enumerate(spikes):
        path = f"errors.alerts.spike.{i}"
        unknown(sp, {"events", "minutes"}, path)
        try:
            ev, mins = int(sp["events"]), float(sp["minutes"])
            if ev <= 0 or mins <= 0:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise fail(path, "needs events (> 0) and minutes (> 0)") from None
        s.spikes.append(Spike(ev, mins))
    return s
