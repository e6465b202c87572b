"""`http_config` for receivers: auth (basic, bearer/authorization), TLS, proxy, redirects, HTTP/2.

Builds one httpx.AsyncClient per integration. Secrets are read from `*_file` when given and
never appear in errors (URLs in errors are shown without credentials and query).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from heron import __version__
from heron.notify import NotifyError
from heron.tls import tls_context

USER_AGENT = f"Heron/{__version__} (Alertmanager-compatible)"


def read_file_setting(value: Any, file: Any, base_dir: str | None) -> str | None:
    if file:
        p = Path(str(file))
        if not p.is_absolute() and base_dir:
            p = Path(base_dir) / p
        try:
            return p.read_text().strip()
        except OSError as exc:
            raise NotifyError(f"cannot read {p}: {exc.strerror}", retry=False) from None
    return None if value is None else str(value)


def _tls(cfg: dict[str, Any], base_dir: str | None) -> ssl.SSLContext | bool:
    return tls_context(cfg, base_dir) if cfg else True


def client(http_config: dict[str, Any] | None, base_dir: str | None = None,
           timeout: float = 30.0) -> httpx.AsyncClient:
    h = http_config or {}
    headers = {"User-Agent": USER_AGENT}
    auth: httpx.Auth | None = None
    ba = h.get("basic_auth")
    if ba:
        password = read_file_setting(ba.get("password"), ba.get("password_file"), base_dir) or ""
        auth = httpx.BasicAuth(str(ba.get("username") or ""), password)
    az = h.get("authorization")
    if az:
        cred = read_file_setting(az.get("credentials"), az.get("credentials_file"), base_dir) or ""
        headers["Authorization"] = f"{az.get('type') or 'Bearer'} {cred}"
    bearer = read_file_setting(h.get("bearer_token"), h.get("bearer_token_file"), base_dir)
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    for k, v in (h.get("http_headers") or {}).items():
        if isinstance(v, dict) and v.get("values"):
            headers[str(k)] = str(v["values"][0])
    proxy = h.get("proxy_url") or None
    return httpx.AsyncClient(headers=headers, auth=auth, verify=_tls(h.get("tls_config") or {}, base_dir),
                             proxy=proxy, follow_redirects=h.get("follow_redirects", True) is not False,
                             http2=h.get("enable_http2", True) is not False,
                             timeout=timeout, trust_env=bool(h.get("proxy_from_environment")))


def redact_url(url: str) -> str:
    """scheme://host/path only: webhook URLs often carry tokens in the path or query."""
    try:
        u = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    return f"{u.scheme}://{u.hostname or ''}{':' + str(u.port) if u.port else ''}/<redacted>"


async def post_json(c: httpx.AsyncClient, url: str, payload: Any, what: str,
                    headers: dict[str, str] | None = None) -> httpx.Response:
    """POST JSON; maps failures to NotifyError (retry on network errors, 429 and 5xx)."""
    try:
        resp = await c.post(url, json=payload, headers=headers)
    except httpx.HTTPError as exc:
        raise NotifyError(f"{what}: request to {redact_url(url)} failed: {type(exc).__name__}") from None
    check_status(resp, what, url)
    return resp


def check_status(resp: httpx.Response, what: str, url: str) -> None:
    if resp.status_code // 100 == 2:
        return
    body = resp.text[:200].replace("\n", " ")
    retry = resp.status_code == 429 or resp.status_code >= 500
    raise NotifyError(f"{what}: unexpected status code {resp.status_code} from {redact_url(url)}: {body}",
                      retry=retry)
