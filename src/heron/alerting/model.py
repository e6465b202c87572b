"""The alert, as Alertmanager keeps it: labels, annotations, a firing interval, an update stamp.

Times are Unix seconds (float). An alert whose `ends_at` was not given by the sender gets
`now + resolve_timeout` and `timeout=True`; it resolves by itself unless refreshed.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import time
from datetime import UTC, datetime
from typing import Any

from heron.templating.gofmt import go_quote

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1
ZERO_TIME = "0001-01-01T00:00:00Z"


def fingerprint(labels: dict[str, str]) -> int:
    """Prometheus' LabelSet fingerprint: FNV-1a 64 over sorted name, 0xff, value, 0xff."""
    return _fingerprint(tuple(sorted(labels.items())))


@functools.lru_cache(maxsize=200_000)
def _fingerprint(items: tuple[tuple[str, str], ...]) -> int:
    # Cached: senders re-send the same firing alerts every evaluation interval.
    h = _FNV_OFFSET
    for name, value in items:
        for part in (name, value):
            for b in part.encode():
                h = ((h ^ b) * _FNV_PRIME) & _MASK
            h = ((h ^ 0xFF) * _FNV_PRIME) & _MASK
    return h


@functools.lru_cache(maxsize=65536)
def format_time(ts: float | None) -> str:
    """RFC 3339 with milliseconds like Go's strfmt.DateTime; None/0 is Go's zero time."""
    if not ts:
        return ZERO_TIME
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@functools.lru_cache(maxsize=65536)
def format_time_nano(ts: float | None) -> str:
    """Go's time.Time JSON (RFC 3339 Nano: trailing fraction zeros dropped), as Alertmanager
    writes times in webhook payloads and template data; millisecond precision."""
    full = format_time(ts)
    if full == ZERO_TIME:
        return full
    return full[:-1].rstrip("0").rstrip(".") + "Z"


def parse_time(value: Any) -> float | None:
    """RFC 3339 (any fraction, Z or offset) to Unix seconds; empty or Go's zero time is None."""
    if value in (None, "") or (isinstance(value, str) and value.startswith("0001-01-01")):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"invalid time {value!r}")
    s = value.strip().replace("z", "Z")
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    if "." in s:  # Python accepts at most 6 fraction digits
        head, _, rest = s.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        tz = rest[len(digits):]
        s = f"{head}.{digits[:6].ljust(6, '0')}{tz}"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"invalid RFC 3339 time {value!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


@dataclasses.dataclass
class Alert:
    labels: dict[str, str]
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    starts_at: float = 0.0
    ends_at: float = 0.0
    generator_url: str = ""
    updated_at: float = 0.0
    timeout: bool = False
    fp: int = 0

    def __post_init__(self) -> None:
        if not self.fp:
            self.fp = fingerprint(self.labels)

    @property
    def fingerprint_hex(self) -> str:
        return f"{self.fp:016x}"

    def resolved_at(self, now: float) -> bool:
        return bool(self.ends_at) and self.ends_at <= now

    def resolved(self) -> bool:
        return self.resolved_at(time.time())

    def status(self, now: float | None = None) -> str:
        return "resolved" if self.resolved_at(time.time() if now is None else now) else "firing"

    def merge(self, other: Alert) -> Alert:
        """Alertmanager's Alert.Merge: `other` is the younger; earliest start, latest explicit end."""
        if other.updated_at < self.updated_at:
            return other.merge(self)
        res = copy.copy(other)
        if self.starts_at < other.starts_at:
            res.starts_at = self.starts_at
        if other.resolved():
            if self.resolved() and self.ends_at > other.ends_at:
                res.ends_at = self.ends_at
        elif self.ends_at > other.ends_at and not self.timeout:
            res.ends_at = self.ends_at
        return res

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        """The webhook/template shape of one alert."""
        return {"status": self.status(now), "labels": dict(self.labels),
                "annotations": dict(self.annotations), "startsAt": format_time_nano(self.starts_at),
                "endsAt": format_time_nano(self.ends_at), "generatorURL": self.generator_url,
                "fingerprint": self.fingerprint_hex}


def _before(a: dict[str, str], b: dict[str, str]) -> bool:
    if len(a) != len(b):
        return len(a) < len(b)
    for name in sorted([*a, *b]):
        if name not in a:
            return True
        if name not in b:
            return False
        if a[name] != b[name]:
            return a[name] < b[name]
    return False


def _cmp(x: Alert, y: Alert) -> int:
    for key in ("job", "instance"):
        xv, yv = x.labels.get(key), y.labels.get(key)
        if xv is None and yv is None:
            continue
        if xv is None:
            return 1
        if yv is None:
            return -1
        if xv != yv:
            return -1 if xv < yv else 1
    if _before(x.labels, y.labels):
        return -1
    return 1 if _before(y.labels, x.labels) else 0


sort_key = functools.cmp_to_key(_cmp)
"""Alertmanager's AlertSlice order: job, then instance (present first), then the label set."""


def _lset_string(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}={go_quote(labels[k])}" for k in sorted(labels)) + "}"


def labelset_string(labels: dict[str, str]) -> str:
    """model.LabelSet.String(): `{a="1", b="2"}`, as used inside group keys."""
    return _lset_string(labels)
