"""`kubernetes_sd_configs`: list + watch the Kubernetes API and turn objects into scrape targets.

No Kubernetes client library (they are large and synchronous): each watched resource is an
`Informer` that lists it (paged), then follows `?watch=1&resourceVersion=...&allowWatchBookmarks=true`
(one JSON event per line) and relists on 410 Gone or any error, with backoff. A `KubernetesDiscovery`
owns the informers one `kubernetes_sd_config` needs (endpoints also watches services and pods, as
Prometheus does) and rebuilds its targets from their stores with heron.metrics.kubernetes_sd_roles;
`on_change` tells the scrape manager, which re-applies its targets (debounced).

The config (Prometheus 2.42's `kubernetes_sd_config`) is parsed in heron.metrics.kubernetes_sd_config;
the API server is `api_server`, a kubeconfig (heron.metrics.kubernetes_sd_kubeconfig) or, by
default, in-cluster: KUBERNETES_SERVICE_HOST/PORT plus the service-account token and CA.
EndpointSlices are read from discovery.k8s.io/v1 and Ingresses from networking.k8s.io/v1
(Kubernetes 1.21 and later).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from heron.metrics import kubernetes_sd_roles as roles
from heron.metrics.kubernetes_sd_config import SELECTOR_ROLE, KubernetesSD, parse_kubernetes_sd
from heron.metrics.kubernetes_sd_kubeconfig import load_kubeconfig
from heron.tls import tls_context

__all__ = ["ApiClient", "Informer", "KubernetesDiscovery", "KubernetesSD", "parse_kubernetes_sd"]

log = logging.getLogger("heron.scrape.kubernetes")

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
WATCH_SECONDS = 300
# Which resources each role watches (endpoints and endpointslice also need services and pods).
_RESOURCES = {"pod": ("pods",), "service": ("services",), "endpoints": ("endpoints", "services", "pods"),
              "endpointslice": ("endpointslices", "services", "pods"), "ingress": ("ingresses",),
              "node": ("nodes",)}
_API = {"endpointslices": "apis/discovery.k8s.io/v1", "ingresses": "apis/networking.k8s.io/v1"}


class ApiClient:
    """Where and how to reach the API server: `api_server`, a kubeconfig or the in-cluster service account."""

    def __init__(self, sd: KubernetesSD) -> None:
        self.sd = sd
        self.token_file: str | None = None
        self.token: str | None = None
        self.extensions: dict[str, str] = {}  # per request (httpx): the kubeconfig's tls-server-name
        verify: ssl.SSLContext | bool = True
        basic, proxy = sd.basic_auth, sd.proxy_url
        if sd.kubeconfig:
            kc = load_kubeconfig(sd.kubeconfig)
            self.base, verify, self.token, self.token_file = kc.server, kc.verify, kc.token, kc.token_file
            basic, proxy = kc.basic_auth, kc.proxy_url
            if kc.tls_server_name:  # SNI and the certificate check use this name, not the URL's host
                self.extensions = {"sni_hostname": kc.tls_server_name}
        elif sd.api_server:
            self.base = sd.api_server
            if self.base.startswith("https"):
                verify = tls_context(dict(sd.tls))
        else:
            host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
            if not host or not port:
                raise RuntimeError("unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
                                   "KUBERNETES_SERVICE_PORT must be defined")
            self.base = f"https://{roles._join_host_port(host, port)}"
            self.token_file = f"{SA_DIR}/token"
            verify = tls_context({"ca_file": f"{SA_DIR}/ca.crt"})
        parts = urlsplit(self.base)  # for logs: never the credentials a URL may carry
        host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
        self.shown = parts._replace(netloc=f"{host}" + (f":{parts.port}" if parts.port else "")).geturl() \
            if host else self.base
        auth = httpx.BasicAuth(*basic) if basic else None
        self.http = httpx.AsyncClient(verify=verify, proxy=proxy, trust_env=sd.proxy_from_environment,
                                      auth=auth,
                                      follow_redirects=sd.follow_redirects,
                                      headers={"Accept": "application/json", "User-Agent": "Heron"},
                                      timeout=httpx.Timeout(10.0, read=None))

    def headers(self) -> dict[str, str]:
        if self.sd.authorization:
            return {"Authorization": f"{self.sd.authorization[0]} {self.sd.authorization[1]}"}
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.token_file:  # service-account tokens rotate: read at each request
            with open(self.token_file) as f:
                return {"Authorization": f"Bearer {f.read().strip()}"}
        return {}

    def path(self, resource: str, namespace: str) -> str:
        api = _API.get(resource, "api/v1")
        if resource == "nodes" or not namespace:
            return f"{self.base}/{api}/{resource}"
        return f"{self.base}/{api}/namespaces/{namespace}/{resource}"


_ONE_RESOURCE: dict[str, tuple[str, Callable[[dict[str, Any]], list[roles.TargetLabels]]]] = {
    "pod": ("pods", roles.pod_targets), "service": ("services", roles.service_targets),
    "ingress": ("ingresses", roles.ingress_targets), "node": ("nodes", roles.node_targets)}


_EVENTS = {"ADDED": "add", "MODIFIED": "update", "DELETED": "delete"}


class Gone(Exception):
    """The watch's resourceVersion is too old (410): relist."""


class Informer:
    """One resource in one namespace, kept in `store` by list + watch."""

    def __init__(self, api: ApiClient, resource: str, namespace: str, selector: tuple[str, str],
                 on_change: Callable[[], None], on_event: Callable[[str, str], None] | None = None) -> None:
        self.api, self.resource, self.namespace = api, resource, namespace
        self.on_event = on_event or (lambda role, event: None)  # (role, add|update|delete|failure)
        self.params = {k: v for k, v in (("labelSelector", selector[0]), ("fieldSelector", selector[1])) if v}
        self.on_change = on_change
        self.store: dict[tuple[str, str], dict[str, Any]] = {}
        self.synced = False
        self.error = ""

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                rv = await self._list()
                backoff = 0.2
                while True:
                    rv = await self._watch(rv)
            except asyncio.CancelledError:
                raise
            except Gone:
                continue
            except Exception as exc:  # API server down, bad answer: retry with backoff
                msg = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                self.on_event(SELECTOR_ROLE[self.resource], "failure")
                if msg != self.error:
                    log.warning("kubernetes_sd %s %s: %s", self.resource, self.api.shown, msg)
                self.error = msg
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _list(self) -> str:
        items: dict[tuple[str, str], dict[str, Any]] = {}
        params = {**self.params, "limit": "500"}
        while True:
            resp = await self.api.http.get(self.api.path(self.resource, self.namespace), params=params,
                                           headers=self.api.headers(), extensions=self.api.extensions)
            if resp.status_code != 200:
                raise RuntimeError(f"list {self.resource}: HTTP {resp.status_code}: {resp.text[:200]}")
            body = await asyncio.to_thread(json.loads, resp.content)  # large lists: off the event loop
            for obj in body.get("items") or []:
                items[_key(obj)] = obj
            cont = (body.get("metadata") or {}).get("continue")
            if not cont:
                break
            params["continue"] = cont
        self.store = items
        self.synced, self.error = True, ""
        self.on_change()
        return str((body.get("metadata") or {}).get("resourceVersion", ""))

    async def _watch(self, rv: str) -> str:
        params = {**self.params, "watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(WATCH_SECONDS)}
        # The server ends the watch after timeoutSeconds; silence well past that is a dead connection.
        async with self.api.http.stream("GET", self.api.path(self.resource, self.namespace), params=params,
                                        headers=self.api.headers(), extensions=self.api.extensions,
                                        timeout=httpx.Timeout(10.0, read=WATCH_SECONDS + 30)) as resp:
            if resp.status_code == 410:
                raise Gone()
            if resp.status_code != 200:
                raise RuntimeError(f"watch {self.resource}: HTTP {resp.status_code}")
            async for line in resp.aiter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone()
                    raise RuntimeError(f"watch {self.resource}: {obj.get('message', obj)}")
                rv = str((obj.get("metadata") or {}).get("resourceVersion", rv))
                if kind in ("ADDED", "MODIFIED"):
                    self.store[_key(obj)] = obj
                elif kind == "DELETED":
                    self.store.pop(_key(obj), None)
                else:  # BOOKMARK: only the resourceVersion moves
                    continue
                self.on_event(SELECTOR_ROLE[self.resource], _EVENTS[kind])
                self.on_change()
        return rv


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))


class KubernetesDiscovery:
    """The informers of one `kubernetes_sd_config` and the targets their objects make."""

    def __init__(self, sd: KubernetesSD, on_change: Callable[[], None],
                 on_event: Callable[[str, str], None] | None = None) -> None:
        self.sd, self.on_change, self.on_event = sd, on_change, on_event
        self.informers: list[Informer] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.api: ApiClient | None = None
        self.error = ""
        self._cache: dict[tuple[str, str], tuple[str, list[roles.TargetLabels]]] = {}

    def start(self) -> None:
        try:
            self.api = ApiClient(self.sd)
            namespaces = list(self.sd.namespaces)
            if self.sd.own_namespace:
                with open(f"{SA_DIR}/namespace") as f:
                    namespaces.append(f.read().strip())
        except (OSError, RuntimeError, ValueError, ssl.SSLError) as exc:
            self.error = f"cannot create service discovery: {exc}"
            log.error("kubernetes_sd (role %s): %s", self.sd.role, self.error)
            return
        resources = list(_RESOURCES[self.sd.role])
        if self.sd.attach_node and self.sd.role in ("pod", "endpoints", "endpointslice"):
            resources.append("nodes")
        for resource in resources:
            for ns in (namespaces or [""]) if resource != "nodes" else [""]:
                inf = Informer(self.api, resource, ns, self.sd.selector(resource), self.on_change, self.on_event)
                self.informers.append(inf)
                self.tasks.append(asyncio.get_running_loop().create_task(
                    inf.run(), name=f"kubernetes_sd {self.sd.role} {resource} {ns}"))

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.api is not None:
            await self.api.http.aclose()

    def synced(self) -> bool:
        """Every watcher has listed once (a discovery that could not start never will)."""
        return bool(self.error) or all(inf.synced for inf in self.informers)

    def _store(self, resource: str) -> dict[tuple[str, str], dict[str, Any]]:
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for inf in self.informers:
            if inf.resource == resource:
                out.update(inf.store)
        return out

    def targets(self) -> list[roles.TargetLabels]:
        """Every target of this config now, from the watched objects (sorted by source as Prometheus)."""
        role = self.sd.role
        out: list[roles.TargetLabels] = []
        if role == "pod" and self.sd.attach_node:
            nodes = self._store("nodes")
            for _, pod in sorted(self._store("pods").items()):
                out.extend(roles.pod_targets(pod, nodes))
        elif role in _ONE_RESOURCE:
            # One object makes its own targets: keep them while its resourceVersion stays.
            resource, build = _ONE_RESOURCE[role]
            cache: dict[tuple[str, str], tuple[str, list[roles.TargetLabels]]] = {}
            for key, obj in sorted(self._store(resource).items()):
                rv = str((obj.get("metadata") or {}).get("resourceVersion", ""))
                hit = self._cache.get(key)
                made = hit[1] if hit is not None and rv and hit[0] == rv else build(obj)
                cache[key] = (rv, made)
                out.extend(made)
            self._cache = cache
        elif role == "endpoints":
            services, pods = self._store("services"), self._store("pods")
            for _, eps in sorted(self._store("endpoints").items()):
                out.extend(roles.endpoints_targets(eps, services, pods,
                                                   self._store("nodes") if self.sd.attach_node else None))
        elif role == "endpointslice":
            services, pods = self._store("services"), self._store("pods")
            for _, eps in sorted(self._store("endpointslices").items()):
                out.extend(roles.endpointslice_targets(eps, services, pods,
                                                       self._store("nodes") if self.sd.attach_node else None))
        return out
