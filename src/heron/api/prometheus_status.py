"""The rest of Prometheus' status API: `status/config`, `alertmanagers`, `scrape_pools`.

Tools written against Prometheus call these (its own UI, Grafana's config checks, scripts that
list the Alertmanagers a server delivers to); they answer in Prometheus' shapes. The config is
the Prometheus part of `heron.yml` (global, alerting, rule_files, scrape_configs), secrets shown
as `<secret>` and proxy passwords masked, as Prometheus does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from heron.alerting.receivers import SECRET_KEYS, redact
from heron.api import heron_of, requires
from heron.server import Heron

# Prometheus' config keys holding secrets besides those Alertmanager's config has.
_MORE_SECRETS = {"password", "credentials", "bearer_token", "client_secret"}


def _mask_proxy(value: Any, key: str = "") -> Any:
    """`proxy_url` may carry a password (http://user:pass@proxy): Prometheus shows it as xxxxx."""
    if isinstance(value, dict):
        return {k: _mask_proxy(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_proxy(v, key) for v in value]
    if key == "proxy_url" and isinstance(value, str):
        try:
            u = urlsplit(value)
        except ValueError:
            return "<invalid url>"
        if u.password is not None:
            host = f"{u.username}:xxxxx@{u.hostname}" + (f":{u.port}" if u.port else "")
            return urlunsplit((u.scheme, host, u.path, u.query, u.fragment))
    return value


def prometheus_yaml(heron: Heron) -> str:
    c = heron.config
    doc: dict[str, Any] = {"global": dict(c.global_)}
    if c.alerting:
        doc["alerting"] = c.alerting
    if c.rule_files:
        doc["rule_files"] = list(c.rule_files)
    if c.scrape_configs:
        doc["scrape_configs"] = c.scrape_configs
    clean = _mask_proxy(redact(doc, secrets=SECRET_KEYS | _MORE_SECRETS))
    return str(yaml.safe_dump(clean, sort_keys=False, default_flow_style=False))


def _success(data: Any) -> Response:
    return JSONResponse({"status": "success", "data": data})


@requires("api", reply="prometheus")
async def config(request: Request) -> Response:
    return _success({"yaml": prometheus_yaml(heron_of(request))})


@requires("api", reply="prometheus")
async def alertmanagers(request: Request) -> Response:
    """The external Alertmanagers (`alerting.alertmanagers`) alerts are sent to."""
    rules = getattr(heron_of(request), "rules", None)
    notifier = getattr(rules, "notifier", None)
    urls = [t.url for t in getattr(notifier, "targets", [])]
    return _success({"activeAlertmanagers": [{"url": u} for u in urls], "droppedAlertmanagers": []})


@requires("api", reply="prometheus")
async def scrape_pools(request: Request) -> Response:
    manager = next((s for s in heron_of(request).services if getattr(s, "name", "") == "scrape"), None)
    pools = sorted(getattr(manager, "pools", {}))
    return _success({"scrapePools": pools})


def routes(heron: Heron) -> list[BaseRoute]:
    return [Route("/api/v1/status/config", config, methods=["GET"]),
            Route("/api/v1/alertmanagers", alertmanagers, methods=["GET"]),
            Route("/api/v1/scrape_pools", scrape_pools, methods=["GET"])]
