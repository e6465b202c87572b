"""Dashboard provisioning: built-ins on first start, and files named in the `ui` config section.

    ui:
      dashboards: [dashboards/, extra/app.json]   # files or folders of *.json (Grafana or Heron)

A built-in is created once: later edits are kept and a deleted built-in is not recreated.
Files are applied at every start and on reload (the file wins, as in Grafana provisioning).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from heron.exceptions import ConfigError
from heron.promql.stepcache import StepCache
from heron.ui import recent, warmup
from heron.ui.builtin import builtin_dashboards
from heron.ui.grafana import DashboardError, parse
from heron.ui.store import DashboardStore

if TYPE_CHECKING:
    from heron.config import HeronConfig
    from heron.server import Heron

log = logging.getLogger("heron.ui")
UI_KEYS = {"dashboards", "default_theme", "query_cache", "warmup"}
CACHE_KEYS = {"ttl", "recent_ttl", "max_mb", "steps_mb"}


def validate(config: HeronConfig) -> list[Path]:
    """Check the `ui` section; returns the dashboard files to provision."""
    ui = config.ui or {}
    where = config.source
    for key in ui:
        if key not in UI_KEYS:
            raise ConfigError(f"unknown key (expected one of {', '.join(sorted(UI_KEYS))})",
                              file=where, line=config.line_of(f"ui.{key}"), field=f"ui.{key}")
    theme = ui.get("default_theme", "auto")
    if theme not in ("auto", "light", "dark"):
        raise ConfigError("must be auto, light or dark", file=where, line=config.line_of("ui.default_theme"),
                          field="ui.default_theme")
    if not isinstance(ui.get("warmup", True), bool):
        raise ConfigError("must be true or false", file=where, line=config.line_of("ui.warmup"), field="ui.warmup")
    cache = ui.get("query_cache", {})
    if not isinstance(cache, dict):
        raise ConfigError("must be a mapping (ttl, recent_ttl, max_mb)", file=where,
                          line=config.line_of("ui.query_cache"), field="ui.query_cache")
    for key, value in cache.items():
        if key not in CACHE_KEYS or isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"expected one of {', '.join(sorted(CACHE_KEYS))} with a number >= 0 (seconds; MiB)",
                              file=where, line=config.line_of(f"ui.query_cache.{key}"), field=f"ui.query_cache.{key}")
    entries = ui.get("dashboards", [])
    if isinstance(entries, str):
        entries = [entries]
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise ConfigError("must be a list of files or folders", file=where, line=config.line_of("ui.dashboards"),
                          field="ui.dashboards")
    files: list[Path] = []
    for i, entry in enumerate(entries):
        path = config.resolve_path(entry)
        if path.is_dir():
            files.extend(sorted(path.glob("*.json")))
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"no such file or folder: {path}", file=where,
                              line=config.line_of(f"ui.dashboards.{i}"), field=f"ui.dashboards[{i}]")
    return files


def provision_builtins(store: DashboardStore) -> list[str]:
    created = []
    for model in builtin_dashboards():
        key = f"ui.builtin.{model['uid']}"
        if store.control.get(key):
            continue
        if not store.exists(model["uid"]):
            store.save(model, "builtin")
            created.append(model["uid"])
        store.control.put(key, "1")
    return created


def provision_files(store: DashboardStore, files: list[Path]) -> list[str]:
    done = []
    for path in files:
        try:
            model: dict[str, Any] = store.save(parse(path.read_bytes()), "file")
        except (DashboardError, OSError) as exc:
            log.error("dashboard %s not provisioned: %s", path, exc)
            continue
        done.append(model["uid"])
    return done


def step_cache(heron: Heron, config: HeronConfig) -> None:
    """Size the PromQL engine's step cache from `ui.query_cache.steps_mb` (0 turns it off)."""
    mb = float(((config.ui or {}).get("query_cache") or {}).get("steps_mb", 128))
    engine = heron.query_engine
    if engine.head is None or mb <= 0:
        engine.step_cache = None
    elif engine.step_cache is None or engine.step_cache.max_bytes != int(mb * (1 << 20)):
        engine.step_cache = StepCache(int(mb * (1 << 20)))


class Provisioner:
    name = "ui-provisioning"

    def __init__(self, heron: Heron) -> None:
        self.heron = heron
        self.store = DashboardStore(heron.control)
        self.files = validate(heron.config)
        step_cache(heron, heron.config)
        self._warm: asyncio.Task[None] | None = None

    async def start(self) -> None:
        created = provision_builtins(self.store)
        if created:
            log.info("provisioned built-in dashboards: %s", ", ".join(created))
        provision_files(self.store, self.files)
        self.heron.reload_hooks.append(self._reload)
        if (self.heron.config.ui or {}).get("warmup", True):
            self._warm = warmup.start(self.heron)

    async def _reload(self, config: HeronConfig) -> None:
        self.files = validate(config)
        step_cache(self.heron, config)
        provision_files(self.store, self.files)

    async def stop(self) -> None:
        if self._warm is not None and not self._warm.done():
            self._warm.cancel()
        recent.save(self.heron)
        if self._reload in self.heron.reload_hooks:
            self.heron.reload_hooks.remove(self._reload)


def factory(heron: Heron) -> Provisioner:
    return Provisioner(heron)
