"""`kubernetes_sd_configs`: list + watch the Kubernetes API and turn objects into scrape targets.

No Kubernetes client library (they are large and synchronous): each watched resource is an
`Informer` that lists it (paged), then follows `?watch=1&resourceVersion=...&allowWatchBookmarks=true`
(one JSON event per line) and relists on 410 Gone or any error, with backoff. A `KubernetesDiscovery`
owns the informers one `kubernetes_sd_config` needs (endpoints also watches services and pods, as
Prometheus does) and rebuilds its targets from their stores with heron.metrics.kubernetes_sd_roles;
`on_change` tells the scrape manager, which re-applies its targets (debounced).

Config semantics follow Prometheus 2.42's `kubernetes_sd_config`: `api_server` (else in-cluster:
KUBERNETES_SERVICE_HOST/PORT plus the service-account token and CA), `role`, `namespaces`
(`names`, `own_namespace`), `selectors`, `attach_metadata.node` (pod, endpoints and endpointslice
roles), the HTTP client settings, or `kubeconfig_file` (heron.metrics.kubernetes_sd_kubeconfig;
exec/auth-provider credential plugins refused). EndpointSlices are read from
discovery.k8s.io/v1 and Ingresses from networking.k8s.io/v1 (Kubernetes 1.21 and later).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from heron.exceptions import ConfigError
from heron.metrics import kubernetes_sd_roles as roles
from heron.metrics.kubernetes_sd_kubeconfig import load_kubeconfig
from heron.tls import tls_context, tls_problem

log = logging.getLogger("heron.scrape.kubernetes")

ROLES = ("pod", "service", "endpoints", "endpointslice", "ingress", "node")
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
WATCH_SECONDS = 300
_KNOWN = {"role", "api_server", "kubeconfig_file", "namespaces", "selectors", "attach_metadata",
          "basic_auth", "authorization", "bearer_token", "bearer_token_file", "tls_config", "proxy_url",
          "follow_redirects", "enable_http2", "oauth2", "no_proxy", "proxy_from_environment",
          "proxy_connect_header"}
_ALLOWED_SELECTORS = {"pod": ("pod",), "service": ("service",), "endpoints": ("pod", "service", "endpoints"),
                      "endpointslice": ("pod", "service", "endpointslice"), "ingress": ("ingress",),
                      "node": ("node",)}
# Which resources each role watches, and the selector role that filters each of them.
_RESOURCES = {"pod": ("pods",), "service": ("services",), "endpoints": ("endpoints", "services", "pods"),
              "endpointslice": ("endpointslices", "services", "pods"), "ingress": ("ingresses",),
              "node": ("nodes",)}
_SELECTOR_ROLE = {"pods": "pod", "services": "service", "endpoints": "endpoints", "nodes": "node",
                  "endpointslices": "endpointslice", "ingresses": "ingress"}
_API = {"endpointslices": "apis/discovery.k8s.io/v1", "ingresses": "apis/networking.k8s.io/v1"}
_REQUIREMENT = re.compile(r"^\s*!?\s*[A-Za-z0-9][A-Za-z0-9._/-]*\s*"
                          r"((==?|!=)\s*[A-Za-z0-9._-]*|\s(in|notin)\s*\([^()]*\))?\s*$")
_FIELD_REQ = re.compile(r"^\s*[A-Za-z0-9._/-]+\s*(==?|!=)\s*[^,=!]*$")

Err = Callable[[str, str], ConfigError]
Secret = Callable[[dict[str, Any], str, str], "str | None"]


@dataclass(frozen=True)
class KubernetesSD:
    """One validated `kubernetes_sd_config` (secrets already read from their files)."""

    role: str
    api_server: str | None = None
    kubeconfig: str | None = None
    namespaces: tuple[str, ...] = ()
    own_namespace: bool = False
    selectors: tuple[tuple[str, str, str], ...] = ()  # (role, label selector, field selector)
    attach_node: bool = False
    basic_auth: tuple[str, str] | None = None
    authorization: tuple[str, str] | None = None
    tls: tuple[tuple[str, Any], ...] = ()
    proxy_url: str | None = None
    proxy_from_environment: bool = False
    follow_redirects: bool = True

    def selector(self, resource: str) -> tuple[str, str]:
        role = _SELECTOR_ROLE[resource]
        return next(((lab, fld) for r, lab, fld in self.selectors if r == role), ("", ""))


def _split_selector(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [*parts, cur]


def parse_kubernetes_sd(items: Any, where: str, err: Err, secret: Secret,
                        resolve: Callable[[str], str]) -> tuple[KubernetesSD, ...]:
    """Validate a `kubernetes_sd_configs` list; errors name `<where>.<i>.<field>`."""
    if not isinstance(items, list):
        raise err(where, "kubernetes_sd_configs must be a list")
    out = []
    for i, raw in enumerate(items):
        at = f"{where}.{i}"
        if not isinstance(raw, dict):
            raise err(at, "each kubernetes_sd_config must be a mapping")
        for key in raw:
            if key not in _KNOWN:
                raise err(f"{at}.{key}", f"field {key} not found in type kubernetes.SDConfig")
        for key in ("oauth2", "proxy_connect_header", "no_proxy"):
            if raw.get(key) is not None:
                raise err(f"{at}.{key}", f"{key} is not supported by Heron in kubernetes_sd_configs")
        role = raw.get("role")
        if not role:
            raise err(f"{at}.role", "role missing (one of: pod, service, endpoints, endpointslice, node, ingress)")
        if role not in ROLES:
            raise err(f"{at}.role", f"unknown Kubernetes SD role {role!r}")
        api = raw.get("api_server")
        if api is not None:
            parts = urlsplit(str(api))
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise err(f"{at}.api_server", f"api_server must be an http:// or https:// URL, not {str(api)!r}")
            api = str(api).rstrip("/")
        basic = None
        if raw.get("basic_auth") is not None:
            ba = raw["basic_auth"]
            if not isinstance(ba, dict) or not ba.get("username"):
                raise err(f"{at}.basic_auth", "basic_auth needs a username")
            basic = (str(ba["username"]), secret(ba, "password", f"{at}.basic_auth") or "")
        auth = None
        if raw.get("authorization") is not None:
            az = raw["authorization"]
            if not isinstance(az, dict):
                raise err(f"{at}.authorization", "authorization must be a mapping")
            auth = (str(az.get("type", "Bearer")), secret(az, "credentials", f"{at}.authorization") or "")
        bearer = secret(raw, "bearer_token", at)
        if bearer is not None:
            if auth:
                raise err(f"{at}.bearer_token", "at most one of bearer_token, bearer_token_file and authorization")
            auth = ("Bearer", bearer)
        if basic and auth:
            raise err(f"{at}.basic_auth", "at most one of basic_auth and authorization/bearer_token")
        tls_raw = raw.get("tls_config") or {}
        if not isinstance(tls_raw, dict):
            raise err(f"{at}.tls_config", "tls_config must be a mapping")
        bad = tls_problem(tls_raw)
        if bad:
            raise err(f"{at}.tls_config.{bad[0]}", bad[1])
        tls = {k: (resolve(str(v)) if k in ("ca_file", "cert_file", "key_file") else v)
               for k, v in tls_raw.items() if v is not None}
        proxy = raw.get("proxy_url")
        if proxy is not None:
            pp = urlsplit(str(proxy))
            if pp.scheme not in ("http", "https", "socks5") or not pp.hostname:
                raise err(f"{at}.proxy_url", "invalid proxy_url: want http://, https:// or socks5://host:port")
            if raw.get("proxy_from_environment"):
                raise err(f"{at}.proxy_from_environment", "if proxy_from_environment is configured, "
                                                          "proxy_url must not be configured")
        custom = basic or auth or tls or proxy or raw.get("follow_redirects") is False \
            or raw.get("proxy_from_environment")
        kubeconfig = raw.get("kubeconfig_file")
        if kubeconfig is not None:
            if api is not None:
                raise err(f"{at}.kubeconfig_file", "cannot use 'kubeconfig_file' and 'api_server' simultaneously")
            if custom:
                raise err(f"{at}.kubeconfig_file", "cannot use a custom HTTP client configuration together "
                                                   "with 'kubeconfig_file'")
            ns_raw = raw.get("namespaces")
            if isinstance(ns_raw, dict) and ns_raw.get("own_namespace"):
                raise err(f"{at}.kubeconfig_file", "cannot use 'kubeconfig_file' and 'namespaces.own_namespace' "
                                                   "simultaneously")
            kubeconfig = resolve(str(kubeconfig))
        elif api is None and custom:
            raise err(f"{at}.api_server", "to use custom HTTP client configuration please provide the "
                                          "'api_server' URL explicitly")
        ns = raw.get("namespaces") or {}
        if not isinstance(ns, dict) or not isinstance(ns.get("names") or [], list):
            raise err(f"{at}.namespaces", "namespaces must be a mapping with a list of 'names'")
        for key in ns:
            if key not in ("names", "own_namespace"):
                raise err(f"{at}.namespaces.{key}", f"field {key} not found in type kubernetes.plain")
        own = bool(ns.get("own_namespace", False))
        if own and api is not None:
            raise err(f"{at}.namespaces.own_namespace",
                      "cannot use 'api_server' and 'namespaces.own_namespace' simultaneously")
        selectors: list[tuple[str, str, str]] = []
        for j, sel in enumerate(raw.get("selectors") or []):
            sat = f"{at}.selectors.{j}"
            if not isinstance(sel, dict):
                raise err(sat, "a selector must be a mapping with role, label and field")
            srole = str(sel.get("role", ""))
            if any(s[0] == srole for s in selectors):
                raise err(f"{sat}.role", f"duplicated selector role: {srole}")
            if srole not in _ALLOWED_SELECTORS[role]:
                raise err(f"{sat}.role", f"{role} role supports only {', '.join(_ALLOWED_SELECTORS[role])} selectors")
            label, fld = str(sel.get("label") or ""), str(sel.get("field") or "")
            for part in _split_selector(label) if label else []:
                if not _REQUIREMENT.match(part):
                    raise err(f"{sat}.label", f"unable to parse requirement: {part.strip()!r}")
            for part in fld.split(",") if fld else []:
                if not _FIELD_REQ.match(part):
                    raise err(f"{sat}.field", f"invalid selector: {fld!r}; can't understand {part.strip()!r}")
            selectors.append((srole, label, fld))
        attach = raw.get("attach_metadata") or {}
        if not isinstance(attach, dict) or any(k != "node" for k in attach):
            raise err(f"{at}.attach_metadata", "attach_metadata takes only 'node: true|false'")
        out.append(KubernetesSD(
            role=role, api_server=api, kubeconfig=kubeconfig, namespaces=tuple(str(n) for n in ns.get("names") or []), own_namespace=own,
            selectors=tuple(selectors), attach_node=bool(attach.get("node", False)), basic_auth=basic,
            authorization=auth, tls=tuple(sorted(tls.items())), proxy_url=str(proxy) if proxy else None,
            proxy_from_environment=bool(raw.get("proxy_from_environment", False)),
            follow_redirects=bool(raw.get("follow_redirects", True))))
    return tuple(out)


class ApiClient:
    """Where and how to reach the API server: `api_server`, a kubeconfig or the in-cluster service account."""

    def __init__(self, sd: KubernetesSD) -> None:
        self.sd = sd
        self.token_file: str | None = None
        self.token: str | None = None
        verify: ssl.SSLContext | bool = True
        basic, proxy = sd.basic_auth, sd.proxy_url
        if sd.kubeconfig:
            kc = load_kubeconfig(sd.kubeconfig)
            self.base, verify, self.token, self.token_file = kc.server, kc.verify, kc.token, kc.token_file
            basic, proxy = kc.basic_auth, kc.proxy_url
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
                self.on_event(_SELECTOR_ROLE[self.resource], "failure")
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
                                           headers=self.api.headers())
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
                                        headers=self.api.headers(),
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
                self.on_event(_SELECTOR_ROLE[self.resource], _EVENTS[kind])
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
