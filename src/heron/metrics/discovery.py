"""Target discovery: static_configs, file_sd_configs and discovered groups, then target relabeling.

A target group is a list of addresses plus labels; each address becomes a `Target` whose labels
go through `relabel_configs` exactly as in Prometheus (`__address__`, `__scheme__`,
`__metrics_path__`, `__scrape_interval__`, `__scrape_timeout__`, `__param_<name>`,
`__meta_filepath` for file SD; `instance` defaults to `__address__`; `__`-prefixed labels go).
Service discovery that runs elsewhere (kubernetes_sd) hands its groups in as `discovered`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from urllib.parse import urlencode

import yaml

from heron.metrics.relabel import apply
from heron.metrics.scrape_config import ScrapeConfig

log = logging.getLogger("heron.scrape")

Group = tuple[tuple[str, ...], dict[str, str]]


def _fmt_duration(seconds: float) -> str:
    if seconds >= 1 and seconds == int(seconds):
        s = int(seconds)
        h, rest = divmod(s, 3600)
        m, s = divmod(rest, 60)
        return (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s or not (h or m) else "")
    return f"{int(seconds * 1000)}ms"


@dataclass
class Target:
    """One scrape target after relabeling: `labels` are attached to every scraped series."""

    job: str
    url: str
    labels: dict[str, str]
    discovered: dict[str, str]
    interval: float
    timeout: float
    hash: int = 0
    params: dict[str, list[str]] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int]:
        return (self.job, self.hash)


@dataclass
class FileSDState:
    """What each file_sd file held the last time it was read (mtime, groups)."""

    mtimes: dict[str, float] = field(default_factory=dict)
    groups: dict[str, list[Group]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def refresh(self, paths: list[str]) -> bool:
        """Re-read changed files; True when any file changed (added, edited, removed)."""
        changed = False
        for path in paths:
            try:
                mtime = os.stat(path).st_mtime_ns
            except OSError:
                if path in self.groups:
                    del self.groups[path]
                    self.mtimes.pop(path, None)
                    changed = True
                continue
            if self.mtimes.get(path) == mtime:
                continue
            self.mtimes[path] = mtime
            try:
                self.groups[path] = read_file_sd(path)
                self.errors.pop(path, None)
            except ValueError as exc:
                # Like Prometheus: keep the last good content, report the error.
                self.errors[path] = str(exc)
                log.error("file_sd %s: %s", path, exc)
                continue
            changed = True
        return changed


def read_file_sd(path: str) -> list[Group]:
    """A file_sd file: JSON or YAML list of {targets: [...], labels: {...}}."""
    with open(path) as f:
        text = f.read()
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot parse: {exc}") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValueError("must be a list of target groups")
    groups: list[Group] = []
    for i, g in enumerate(data):
        if not isinstance(g, dict) or not isinstance(g.get("targets", []), list):
            raise ValueError(f"group {i}: needs a list of 'targets'")
        labels = g.get("labels") or {}
        if not isinstance(labels, dict):
            raise ValueError(f"group {i}: labels must be a mapping")
        groups.append((tuple(str(t) for t in g.get("targets") or []),
                       {str(k): str(v) for k, v in labels.items()}))
    return groups


def groups_of(sc: ScrapeConfig, fsd: FileSDState,
              discovered: list[tuple[Group, dict[str, str]]] | None = None) -> list[tuple[Group, dict[str, str]]]:
    """All target groups of a job, each with its discovery meta labels."""
    out: list[tuple[Group, dict[str, str]]] = [((targets, dict(labels)), {}) for targets, labels in sc.static]
    out.extend(discovered or [])
    for f in sc.file_sd:
        for path in f.files:
            for group in fsd.groups.get(path, []):
                out.append((group, {"__meta_filepath": path}))
    return out


def build_targets(sc: ScrapeConfig, fsd: FileSDState,
                  discovered: list[tuple[Group, dict[str, str]]] | None = None,
                  ) -> tuple[list[Target], list[dict[str, str]]]:
    """Relabel every discovered address; returns (active targets, dropped discovered label sets)."""
    active: dict[tuple[str, int], Target] = {}
    dropped: list[dict[str, str]] = []
    for (addresses, labels), meta in groups_of(sc, fsd, discovered):
        for address in addresses:
            base = {"__address__": address, "job": sc.job_name, "__scheme__": sc.scheme,
                    "__metrics_path__": sc.metrics_path,
                    "__scrape_interval__": _fmt_duration(sc.scrape_interval),
                    "__scrape_timeout__": _fmt_duration(sc.scrape_timeout), **meta, **labels}
            for name, values in sc.params:
                if values:
                    base[f"__param_{name}"] = values[0]
            # As Prometheus' labels.Builder: a label with an empty value is no label at all.
            base = {k: v for k, v in base.items() if v != ""}
            target = make_target(sc, base)
            if target is None:
                dropped.append(base)
            elif target.key in active:  # a duplicate: Prometheus shows the last one's discovered labels
                active[target.key].discovered = base
            else:
                active[target.key] = target
    return list(active.values()), dropped


def _needs_port(address: str) -> bool:
    """No port, and adding one makes a valid host:port (Go's net.SplitHostPort rules)."""
    if address.startswith("["):
        return address.endswith("]")
    return address.count(":") == 0


def make_target(sc: ScrapeConfig, discovered: dict[str, str]) -> Target | None:
    labels = apply(list(sc.relabel), discovered)
    if labels is None or not labels.get("__address__"):
        return None
    address = labels["__address__"]
    scheme = labels.get("__scheme__", sc.scheme)
    if _needs_port(address):  # Prometheus 2.x: the scheme's default port is made explicit
        address = labels["__address__"] = f"{address}:{443 if scheme == 'https' else 80}"
    labels.setdefault("instance", address)
    params = {name: list(values) for name, values in sc.params}
    for k, v in labels.items():
        if k.startswith("__param_"):
            params[k[len("__param_"):]] = [v]
    path = labels.get("__metrics_path__", sc.metrics_path)
    query = urlencode([(k, v) for k, vs in params.items() for v in vs])
    url = f"{scheme}://{address}{path}" + (f"?{query}" if query else "")
    interval, timeout = sc.scrape_interval, sc.scrape_timeout
    try:
        from heron.config import parse_duration
        interval = parse_duration(labels.get("__scrape_interval__", "")) or interval
        timeout = parse_duration(labels.get("__scrape_timeout__", "")) or timeout
    except ValueError:
        pass
    public = {k: v for k, v in labels.items() if not k.startswith("__")}
    h = hashlib.blake2b(digest_size=8)
    for k, v in sorted(public.items()):
        h.update(f"{k}\xff{v}\xff".encode())
    h.update(url.encode())
    return Target(sc.job_name, url, public, discovered, interval, timeout,
                  int.from_bytes(h.digest(), "little"), params)
