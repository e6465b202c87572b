"""The Heron process: storage, control store, pipeline, services, and one Starlette app.

`Heron` is the object every API module and service receives; it owns the lifecycle
(`start` replays the WAL and starts services, `stop` stops them and flushes the pipeline).
HTTP is served by uvicorn on the main port and, by default, on the OTLP port 4318 too.
"""

from __future__ import annotations

import asyncio
import fcntl
import importlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from heron.auth import ADMIN, INGEST, Auth
from heron.config import HeronConfig
from heron.control import ControlStore
from heron.exceptions import HeronError
from heron.metrics.head import Head
from heron.metrics.writer import MetricsWriter, SeriesIndex
from heron.pipeline import Pipeline
from heron.promql import Engine as QueryEngine
from heron.selfmon import SelfMetrics
from heron.storage import apply_retention, migrate, open_storage

log = logging.getLogger("heron")

# Modules under heron.api that contribute routes: each has `routes(heron) -> list[BaseRoute]`.
API_MODULES: list[str] = [
    "heron.api.health",
    "heron.api.remote_write",
    "heron.api.prometheus",
    "heron.api.prometheus_status",
    "heron.api.sentry",
    "heron.api.ui",
    "heron.api.targets",
    "heron.api.otlp",
    "heron.api.otlp_signals",
    "heron.api.signals",
    "heron.api.alertmanager",
    "heron.api.rules",
]

# Background services (scrape manager, rule evaluator, dispatcher, ...): `module:factory`, where
# factory(heron) returns a Service or None (when not configured).
SERVICE_FACTORIES: list[str] = [
    "heron.errors.service:factory",
    "heron.ui.provision:factory",
    "heron.metrics.scrape_manager:factory",
    "heron.alerting.service:service",
    "heron.rules.manager:factory",
]


class Service(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Heron:
    """One Heron instance: everything a request handler or service needs."""

    def __init__(self, config: HeronConfig) -> None:
        self.config = config
        self.data_dir = Path(config.storage.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._lock_data_dir()
        self.metrics = SelfMetrics()
        self.storage = open_storage(self.data_dir, config.storage.database, config.storage.url,
                                    config.storage.chdb_path)
        migrate(self.storage)
        apply_retention(self.storage, config.retention.days())
        self.control = ControlStore(self.data_dir / "control.db")
        self.auth = Auth(self.control, ingest_required=config.auth.ingest_auth)
        self.new_admin_token = self._setup_tokens()
        p = config.pipeline
        self.pipeline = Pipeline(self.storage, self.data_dir / "wal", self.metrics,
                                 max_queue_bytes=p.max_queue_bytes, batch_rows=p.batch_rows,
                                 flush_interval=p.flush_interval, retry_after=p.retry_after)
        self.series_index = SeriesIndex()
        self.metrics_writer = MetricsWriter(self.pipeline, self.series_index)
        # Recent samples in memory (heron.metrics.head): fed by every metrics write, read by PromQL.
        self.head = Head(int(config.storage.head_window * 1000), config.storage.head_max_samples,
                         self.storage) if config.storage.head_window > 0 else None
        self.metrics_writer.head = self.head
        if self.head is not None:
            self.head.register_metrics(self.metrics.registry)
        self.query_engine = QueryEngine(self.storage, head=self.head)  # PromQL for rules, UI, API
        self.services: list[Service] = []
        self.reload_hooks: list[Callable[[HeronConfig], Awaitable[None]]] = []
        # Where alerts go (rules, error tracking, synthetics): each receiver takes a list of alerts
        # in Alertmanager API v2 shape ({labels, annotations, startsAt, endsAt, generatorURL}).
        # The built-in alerting dispatcher registers itself here.
        self.alert_receivers: list[Callable[[list[dict[str, Any]]], Awaitable[None]]] = []
        self.started = False
        self.config_loader: Callable[[], HeronConfig] | None = None
        """How `reload_from_source` rebuilds the config (the CLI sets it to keep its flags)."""

    def _lock_data_dir(self) -> int:
        fd = os.open(self.data_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise HeronError(f"data directory {self.data_dir} is in use by another Heron process") from None
        return fd

    def _setup_tokens(self) -> str | None:
        from heron.config import read_secret

        admin = read_secret(self.config.auth.admin_token, self.config.auth.admin_token_file, self.config)
        new = self.auth.ensure_admin(admin)
        for key in self.config.auth.ingest_keys:
            value = read_secret(key.key, key.key_file, self.config)
            if value:
                self.auth.add_existing(INGEST, key.name, value)
        return new

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.pipeline.start)
        await loop.run_in_executor(None, self.series_index.load, self.storage)
        if self.head is not None:  # everything acknowledged is in storage, then the window is read
            await loop.run_in_executor(None, self.pipeline.flush)
            await loop.run_in_executor(None, self.head.load, self.storage)
        for spec in SERVICE_FACTORIES:
            module, _, factory = spec.partition(":")
            service = getattr(importlib.import_module(module), factory)(self)
            if service is not None:
                await service.start()
                self.services.append(service)
        self.started = True

    async def stop(self) -> None:
        for service in reversed(self.services):
            try:
                await service.stop()
            except Exception:
                log.exception("stopping %s failed", getattr(service, "name", service))
        self.services.clear()
        await asyncio.get_running_loop().run_in_executor(None, self.pipeline.close)
        if self.head is not None:
            self.head.close()
        self.control.close()
        os.close(self._lock_fd)
        self.started = False

    async def reload_from_source(self) -> bool:
        """Re-read the config as it was first loaded (file, env, flags); keep the old one on error."""
        from heron.config import load_config

        try:
            config = self.config_loader() if self.config_loader else load_config(self.config.source)
            await self.reload(config)
        except HeronError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            return False
        log.info("configuration reloaded")
        return True

    async def reload(self, config: HeronConfig) -> None:
        """Apply a new configuration to the services that support reloading (SIGHUP, /-/reload).

        Every section is validated first (ConfigError, nothing applied), as `heron check config`
        does; only then do the services see it."""
        from heron.config import validate_sections

        await asyncio.to_thread(validate_sections, config)
        self.config = config
        for hook in self.reload_hooks:
            await hook(config)

    def app(self) -> Starlette:
        routes: list[BaseRoute] = []
        for name in API_MODULES:
            routes.extend(importlib.import_module(name).routes(self))
        middleware: list[Middleware] = []
        from heron.ui.session import middleware as ui_session  # signed UI session cookie + CSRF

        middleware.extend(ui_session(self))
        app = Starlette(routes=routes, middleware=middleware)
        app.state.heron = self
        from heron.api.sentry import front  # Sentry ingest ahead of the middleware (auth/CORS its own)

        app.middleware_stack = front(app.build_middleware_stack())
        return app


async def serve(heron: Heron, on_ready: Callable[[], None] | None = None) -> None:
    """Start Heron and serve HTTP until SIGINT/SIGTERM; SIGHUP reloads the config."""
    await heron.start()
    try:
        await _serve_http(heron, on_ready)
    finally:
        await heron.stop()


async def _serve_http(heron: Heron, on_ready: Callable[[], None] | None) -> None:
    import uvicorn

    app = heron.app()
    listens = [heron.config.server.listen]
    otlp = heron.config.server.otlp_listen
    if otlp and otlp != listens[0]:
        listens.append(otlp)
    servers = []
    for listen in listens:
        host, _, port = listen.rpartition(":")
        cfg = uvicorn.Config(app, host=host.strip("[]"), port=int(port), lifespan="off",
                             log_level="warning", access_log=False, server_header=False)
        servers.append(uvicorn.Server(cfg))

    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[bool]] = set()

    def _exit() -> None:
        for s in servers:
            s.should_exit = True

    def _reload() -> None:
        reloads.add(task := loop.create_task(heron.reload_from_source()))
        task.add_done_callback(reloads.discard)

    async def run(server: uvicorn.Server) -> None:
        try:
            await server._serve()  # _serve: no signal capture of its own (we install ours)
        except SystemExit as exc:  # uvicorn exits the process when it cannot bind
            raise OSError(f"cannot listen on {server.config.host}:{server.config.port}") from exc

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _exit)
    loop.add_signal_handler(signal.SIGHUP, _reload)
    tasks = [loop.create_task(run(s)) for s in servers]
    while not all(s.started for s in servers) and not any(t.done() for t in tasks):
        await asyncio.sleep(0.02)
    if not all(s.started for s in servers):
        _exit()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise HeronError(f"cannot listen on {', '.join(listens)} (address in use?)")
    if heron.head is not None:  # the runtime's objects out of the collector's reach (head.py)
        heron.head.freeze_gc()
    if on_ready:
        on_ready()
    await asyncio.gather(*tasks)


__all__ = ["ADMIN", "API_MODULES", "SERVICE_FACTORIES", "Heron", "Service", "serve"]
