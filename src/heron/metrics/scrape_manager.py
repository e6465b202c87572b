"""The scrape service: one pool per job, one loop per target, kept in line with the config.

`reload(config)` (SIGHUP, POST /-/reload) and file_sd changes (polled every second by mtime,
and at least every `refresh_interval`) diff the targets: unchanged targets keep their loop and
state, new ones start, removed ones stop and get stale markers (see heron.metrics.scrape).
`kubernetes_sd_configs` run as watchers per job (restarted when their config changes); any
change they see re-applies the targets, debounced by K8S_DEBOUNCE seconds.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
import numpy as np
import pyarrow as pa

from heron.config import HeronConfig, read_secret
from heron.metrics.discovery import FileSDState, Group, Target, build_targets
from heron.metrics.exposition import Parsed
from heron.metrics.kubernetes_sd import KubernetesDiscovery
from heron.metrics.kubernetes_sd_config import KubernetesSD
from heron.metrics.limits import limiter_of
from heron.metrics.model import Labels
from heron.metrics.no_proxy import NoProxy
from heron.metrics.scrape import ScrapeLoop
from heron.metrics.scrape_config import SELF_JOB, ScrapeConfig, parse_scrape_configs, self_scrape_config
from heron.tls import tls_context

if TYPE_CHECKING:
    from heron.server import Heron

log = logging.getLogger("heron.scrape")
K8S_DEBOUNCE = 0.5  # seconds: a burst of watch events is one re-apply


@dataclass
class Pool:
    config: ScrapeConfig
    client: httpx.AsyncClient
    loops: dict[tuple[str, int], ScrapeLoop] = field(default_factory=dict)
    dropped: list[dict[str, str]] = field(default_factory=list)
    direct: httpx.AsyncClient | None = None  # for the targets `no_proxy` exempts from proxy_url
    no_proxy: NoProxy | None = None

    def client_for(self, target: Target) -> httpx.AsyncClient:
        if self.direct is not None and self.no_proxy is not None:
            url = httpx.URL(target.url)
            if self.no_proxy.bypasses(url.host, str(url.port or (443 if url.scheme == "https" else 80))):
                return self.direct
        return self.client

    async def aclose(self) -> None:
        await self.client.aclose()
        if self.direct is not None:
            await self.direct.aclose()


def _client(sc: ScrapeConfig, proxy: bool = True) -> httpx.AsyncClient:
    """One client per job: TLS, proxy and HTTP/2 settings are the job's (credentials go per request)."""
    verify: ssl.SSLContext | bool = tls_context(sc.tls.as_dict()) if sc.scheme == "https" else True
    return httpx.AsyncClient(verify=verify, trust_env=sc.proxy_from_environment,
                             proxy=sc.proxy_url if proxy else None,
                             http2=sc.enable_http2 and sc.scheme == "https",
                             limits=httpx.Limits(max_keepalive_connections=100))


def _pool(sc: ScrapeConfig) -> Pool:
    if sc.proxy_url and sc.no_proxy:
        return Pool(sc, _client(sc), direct=_client(sc, proxy=False), no_proxy=NoProxy.parse(sc.no_proxy))
    return Pool(sc, _client(sc))


class ScrapeManager:
    name = "scrape"

    def __init__(self, heron: Heron) -> None:
        self.heron = heron
        self.pools: dict[str, Pool] = {}
        self.fsd = FileSDState()
        self._configs: list[ScrapeConfig] = []
        self._task: asyncio.Task[None] | None = None
        self._stale_tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._last_refresh = 0.0
        self._self_config: ScrapeConfig | None = None
        self._warned: dict[str, float] = {}
        self.k8s: dict[str, tuple[tuple[KubernetesSD, ...], list[KubernetesDiscovery]]] = {}
        self._k8s_dirty = asyncio.Event()
        self._k8s_task: asyncio.Task[None] | None = None
        self._k8s_last: dict[str, list[tuple[Group, dict[str, str]]]] = {}
        m = heron.metrics
        from prometheus_client import Counter, Gauge

        self.m_targets = Gauge("heron_scrape_targets", "Active scrape targets per job.", ["job"],
                               registry=m.registry)
        self.m_scrapes = Counter("heron_scrapes", "Scrapes per job and result ('up' or why it failed).",
                                 ["job", "result"], registry=m.registry)
        # Heron's own identity on its /metrics: the self-scrape checks it scrapes this instance.
        self.start_time = round(time.time(), 3)
        Gauge("heron_start_time_seconds", "Start time of this Heron instance, Unix seconds.",
              registry=m.registry).set(self.start_time)
        self.m_k8s_events = Counter("heron_sd_kubernetes_events", "Kubernetes watch events handled, per role "
                                    "(pod, service, endpoints, ...) and event (add, update, delete, failure "
                                    "= a failed list or watch).", ["role", "event"], registry=m.registry)
        self.m_lost = Counter("heron_scrape_samples_lost", "Scraped samples not stored, per job and reason.",
                              ["job", "reason"], registry=m.registry)

    def configs_for(self, config: HeronConfig) -> list[ScrapeConfig]:
        configs = parse_scrape_configs(config)
        self._self_config = None
        if config.self_scrape and not any(c.job_name == SELF_JOB for c in configs):
            token = read_secret(config.auth.admin_token, config.auth.admin_token_file, config) \
                or self.heron.new_admin_token
            self._self_config = self_scrape_config(config, token)
            configs.append(self._self_config)
        return configs

    async def start(self) -> None:
        limiter_of(self.heron)  # an invalid `limits.metrics` stops the start with file:line: field
        await self.apply(self.configs_for(self.heron.config))
        self.heron.reload_hooks.append(self.reload)
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="scrape file_sd")
        self._k8s_task = asyncio.get_running_loop().create_task(self._k8s_refresh(), name="scrape kubernetes_sd")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if self._k8s_task:
            self._k8s_task.cancel()
        for _, discoveries in self.k8s.values():
            for d in discoveries:
                await d.stop()
        self.k8s.clear()
        for t in list(self._stale_tasks):
            t.cancel()
        async with self._lock:
            for pool in self.pools.values():
                for loop in pool.loops.values():
                    if loop.task:
                        loop.task.cancel()
                await asyncio.gather(*(lp.task for lp in pool.loops.values() if lp.task),
                                     return_exceptions=True)
                await pool.aclose()
            self.pools.clear()
        if self.reload in self.heron.reload_hooks:
            self.heron.reload_hooks.remove(self.reload)

    async def reload(self, config: HeronConfig) -> None:
        """Validate first (a bad config leaves everything running), then apply."""
        await self.apply(self.configs_for(config))

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                paths = [p for sc in self._configs for f in sc.file_sd for p in f.files]
                if not paths:
                    continue
                due = min((f.refresh_interval for sc in self._configs for f in sc.file_sd), default=300)
                if time.monotonic() - self._last_refresh >= due:
                    self.fsd.mtimes.clear()
                if await asyncio.to_thread(self.fsd.refresh, paths):
                    await self.apply(self._configs, refresh=False)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("file_sd refresh failed")

    async def _k8s_refresh(self) -> None:
        took = 0.0
        while True:
            await self._k8s_dirty.wait()
            # Debounced; in a large cluster, at least 4x the last re-apply's time passes in between.
            await asyncio.sleep(max(K8S_DEBOUNCE, 4 * took))
            self._k8s_dirty.clear()
            started = time.monotonic()
            try:
                await self.apply(self._configs, refresh=False)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("kubernetes_sd refresh failed")
            took = time.monotonic() - started

    async def _sync_k8s(self, wanted: dict[str, ScrapeConfig]) -> None:
        """Start watchers for new or changed kubernetes_sd_configs, stop the others."""
        for job in list(self.k8s):
            sds, discoveries = self.k8s[job]
            if job not in wanted or wanted[job].kubernetes_sd != sds:
                del self.k8s[job]
                for d in discoveries:
                    await d.stop()
                if job not in wanted:
                    self._k8s_last.pop(job, None)
        for job, sc in wanted.items():
            if sc.kubernetes_sd and job not in self.k8s:
                discoveries = [KubernetesDiscovery(sd, self._k8s_dirty.set,
                                                   lambda role, event: self.m_k8s_events.labels(role, event).inc())
                               for sd in sc.kubernetes_sd]
                for d in discoveries:
                    d.start()
                self.k8s[job] = (sc.kubernetes_sd, discoveries)

    def _discovered(self, job: str) -> list[tuple[Group, dict[str, str]]]:
        """The job's discovered targets; after a config change, the previous ones until every new
        watcher has listed once (so a reload does not drop and restart every target)."""
        discoveries = self.k8s.get(job, ((), []))[1]
        if job in self._k8s_last and not all(d.synced() for d in discoveries):
            return self._k8s_last[job]
        out: list[tuple[Group, dict[str, str]]] = [
            (((address,), {}), labels) for d in discoveries for address, labels in d.targets()]
        self._k8s_last[job] = out
        return out

    async def apply(self, configs: list[ScrapeConfig], refresh: bool = True) -> None:
        async with self._lock:
            if refresh:
                paths = [p for sc in configs for f in sc.file_sd for p in f.files]
                await asyncio.to_thread(self.fsd.refresh, paths)
                self._last_refresh = time.monotonic()
            self._configs = configs
            wanted = {sc.job_name: sc for sc in configs}
            await self._sync_k8s(wanted)
            # A job whose config changed gets new loops; like Prometheus, each keeps what its old
            # loop last scraped, so series that vanish across the reload still go stale.
            handover: dict[tuple[str, str, frozenset[tuple[str, str]]], ScrapeLoop] = {}
            for job in list(self.pools):
                if job not in wanted or self.pools[job].config != wanted[job]:
                    for old in self.pools[job].loops.values():
                        handover[_identity(old.target)] = old
                    await self._stop_pool(self.pools.pop(job), keep_for=wanted.get(job))
            for job, sc in wanted.items():
                pool = self.pools.get(job)
                if pool is None:
                    pool = self.pools[job] = _pool(sc)
                if sc.kubernetes_sd:  # may be thousands of targets: relabel them off the event loop
                    discovered = self._discovered(job)  # (here: the watchers change their stores in place)
                    targets, pool.dropped = await asyncio.to_thread(build_targets, sc, self.fsd, discovered)
                else:
                    targets, pool.dropped = build_targets(sc, self.fsd)
                self._sync(pool, targets, handover)
                self.m_targets.labels(job).set(len(pool.loops))

    def _sync(self, pool: Pool, targets: list[Target],
              handover: dict[tuple[str, str, frozenset[tuple[str, str]]], ScrapeLoop] | None = None) -> None:
        new = {t.key: t for t in targets}
        for key in list(pool.loops):
            if key not in new:
                self._retire(pool.loops.pop(key))
        for key, target in new.items():
            if key not in pool.loops:
                job = pool.config.job_name
                loop = ScrapeLoop(target, pool.config, pool.client_for(target), self._writer(job),
                                  quiet_until_up=pool.config == self._self_config,
                                  is_self=self._is_me if pool.config == self._self_config else None,
                                  on_result=functools.partial(self._count, job))
                previous = (handover or {}).get(_identity(target))
                if previous is not None:
                    loop.take_over(previous)
                pool.loops[key] = loop
                loop.start()
        # target_limit, as Prometheus: over the limit, every target of the job fails its scrapes.
        limit = pool.config.target_limit
        over = f"target_limit exceeded (number of targets: {len(new)}, limit: {limit})" \
            if limit and len(new) > limit else ""
        for loop in pool.loops.values():
            loop.forced_error = over

    async def _stop_pool(self, pool: Pool, keep_for: ScrapeConfig | None) -> None:
        for loop in pool.loops.values():
            self._retire(loop)
        await asyncio.gather(*(lp.task for lp in pool.loops.values() if lp.task), return_exceptions=True)
        pool.loops.clear()
        self.m_targets.labels(pool.config.job_name).set(0)
        await pool.aclose()

    def _retire(self, loop: ScrapeLoop) -> None:
        """Stop a target's loop; write its stale markers two intervals later (Prometheus' way)."""
        if loop.task:
            loop.task.cancel()
        interval = loop.target.interval

        async def later() -> None:
            stale_at = max(loop.next_scrape_at, time.time())
            await asyncio.sleep(max(0.0, stale_at - time.time()) + interval)
            if self._has_target(loop.target):
                return  # the target came back; its new loop carries on
            try:
                await loop.stale_all(int(stale_at * 1000))
            except Exception as exc:
                log.warning("stale markers for %s not written: %s", loop.target.url, exc)

        task = asyncio.get_running_loop().create_task(later())
        self._stale_tasks.add(task)
        task.add_done_callback(self._stale_tasks.discard)

    def _has_target(self, target: Target) -> bool:
        pool = self.pools.get(target.job)
        return bool(pool and any(lp.target.labels == target.labels and lp.target.url == target.url
                                 for lp in pool.loops.values()))

    def _writer(self, job: str):  # type: ignore[no-untyped-def]
        writer = self.heron.metrics_writer
        limiter_of(self.heron)

        async def write(series: list[Labels], values: np.ndarray, ts: np.ndarray,
                        extra: dict[str, pa.Table] | None) -> int:
            if not series:
                return 0
            n, refused = await writer.write_limited(series, np.ones(len(series), dtype=np.int64), ts, values,
                                                    extra=extra)
            if refused and time.monotonic() - self._warned.get(job, -1e9) > 60:
                self._warned[job] = time.monotonic()  # at most once a minute per job
                log.warning("scrape of job %s: %s", job, refused)
            return n

        return write

    def _is_me(self, parsed: Parsed) -> bool:
        key = (("__name__", "heron_start_time_seconds"),)
        for labels, value in zip(parsed.series, parsed.values.tolist(), strict=True):
            if labels == key:
                return abs(value - self.start_time) < 1e-6
        return False

    def _count(self, job: str, result: str, lost: int) -> None:
        self.m_scrapes.labels(job, result).inc()
        if lost:
            self.m_lost.labels(job, result).inc(lost)

    def targets(self) -> list[tuple[ScrapeConfig, ScrapeLoop]]:
        return [(pool.config, loop) for pool in self.pools.values() for loop in pool.loops.values()]


def _identity(target: Target) -> tuple[str, str, frozenset[tuple[str, str]]]:
    return (target.job, target.url, frozenset(target.labels.items()))


def factory(heron: Heron) -> ScrapeManager:
    return ScrapeManager(heron)
