"""`kubernetes_sd_configs` in Prometheus 2.42's format, validated with file:line: field errors.

`api_server` (else in-cluster), `kubeconfig_file`, `role`, `namespaces` (`names`,
`own_namespace`), `selectors` (checked as Prometheus checks them: allowed roles per role,
duplicates, label and field selector syntax), `attach_metadata.node`, and the HTTP client
settings, which need `api_server` as in Prometheus. Secrets are read from their files here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from heron.exceptions import ConfigError
from heron.tls import tls_problem

ROLES = ("pod", "service", "endpoints", "endpointslice", "ingress", "node")
_KNOWN = {"role", "api_server", "kubeconfig_file", "namespaces", "selectors", "attach_metadata",
          "basic_auth", "authorization", "bearer_token", "bearer_token_file", "tls_config", "proxy_url",
          "follow_redirects", "enable_http2", "oauth2", "no_proxy", "proxy_from_environment",
          "proxy_connect_header"}
_ALLOWED_SELECTORS = {"pod": ("pod",), "service": ("service",), "endpoints": ("pod", "service", "endpoints"),
                      "endpointslice": ("pod", "service", "endpointslice"), "ingress": ("ingress",),
                      "node": ("node",)}
# The selector role that filters each watched resource.
SELECTOR_ROLE = {"pods": "pod", "services": "service", "endpoints": "endpoints", "nodes": "node",
                 "endpointslices": "endpointslice", "ingresses": "ingress"}
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
        role = SELECTOR_ROLE[resource]
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
