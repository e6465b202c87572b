"""`kubernetes_sd_configs[].kubeconfig_file`: the API server and credentials of a kubeconfig's
current context, as client-go's BuildConfigFromFlags("", path) reads them for Prometheus.

Read when discovery starts (like Prometheus, not at config load): the cluster's `server`,
`certificate-authority(-data)`, `insecure-skip-tls-verify`, `tls-server-name` (the name sent as
SNI and checked against the server's certificate, for an API server reached by IP or through a
tunnel), `proxy-url`, and the user's `token`,
`tokenFile` (re-read at each connection), `client-certificate(-data)`/`client-key(-data)`,
`username`/`password`. `exec` and `auth-provider` credential plugins are refused. Relative paths are
relative to the kubeconfig file. The context's `namespace` is not used, as in Prometheus.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass
class KubeconfigTarget:
    server: str
    verify: ssl.SSLContext | bool
    token: str | None = None
    token_file: str | None = None
    basic_auth: tuple[str, str] | None = None
    proxy_url: str | None = None
    tls_server_name: str | None = None


def _named(items: Any, name: str, what: str, path: str) -> dict[str, Any]:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name:
            return item.get(what) or {}
    raise ValueError(f"{path}: no {what} named {name!r}")


def _data(value: str, field: str, path: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise ValueError(f"{path}: {field} is not valid base64") from None


def load_kubeconfig(path: str) -> KubeconfigTarget:
    """The current context's cluster and user; ValueError/OSError name what is wrong."""
    text = Path(path).read_text()
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not YAML: {exc}") from None
    if not isinstance(doc, dict) or not doc.get("current-context"):
        raise ValueError(f"{path}: no current-context")
    base = Path(path).resolve().parent

    def rel(p: str) -> str:
        return str(p if os.path.isabs(p) else base / p)

    ctx = _named(doc.get("contexts"), doc["current-context"], "context", path)
    cluster = _named(doc.get("clusters"), str(ctx.get("cluster", "")), "cluster", path)
    user = _named(doc.get("users"), str(ctx.get("user", "")), "user", path) if ctx.get("user") else {}
    server = str(cluster.get("server") or "")
    if not server.startswith(("http://", "https://")):
        raise ValueError(f"{path}: cluster server must be an http(s) URL, not {server!r}")
    for plugin in ("exec", "auth-provider"):
        if user.get(plugin):
            raise ValueError(f"{path}: user credentials from {plugin!r} plugins are not supported by Heron "
                             "(use a token, tokenFile or client certificate)")
    verify: ssl.SSLContext | bool = True
    if server.startswith("https://"):
        ca = cluster.get("certificate-authority")
        ca_data = cluster.get("certificate-authority-data")
        ctx_ssl = ssl.create_default_context(
            cafile=rel(ca) if ca else None,
            cadata=_data(ca_data, "certificate-authority-data", path).decode() if ca_data else None)
        if cluster.get("insecure-skip-tls-verify"):
            ctx_ssl.check_hostname = False
            ctx_ssl.verify_mode = ssl.CERT_NONE
        _client_cert(ctx_ssl, user, rel, path)
        verify = ctx_ssl
    basic = (str(user["username"]), str(user.get("password") or "")) if user.get("username") else None
    return KubeconfigTarget(server=server.rstrip("/"), verify=verify,
                            token=str(user["token"]) if user.get("token") else None,
                            token_file=rel(user["tokenFile"]) if user.get("tokenFile") else None,
                            basic_auth=basic, proxy_url=cluster.get("proxy-url"),
                            tls_server_name=str(cluster["tls-server-name"])
                            if server.startswith("https://") and cluster.get("tls-server-name") else None)


def _client_cert(ctx: ssl.SSLContext, user: dict[str, Any], rel: Any, path: str) -> None:
    cert, key = user.get("client-certificate"), user.get("client-key")
    cert_data, key_data = user.get("client-certificate-data"), user.get("client-key-data")
    if not (cert or cert_data):
        return
    if cert and (key or not key_data):
        ctx.load_cert_chain(rel(cert), rel(key) if key else None)
        return
    # Inline data: the ssl module loads chains from files only, so a private temporary directory.
    with tempfile.TemporaryDirectory(prefix="heron-kubeconfig-") as tmp:
        cert_path, key_path = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        for target, source, data, field in ((cert_path, cert, cert_data, "client-certificate-data"),
                                            (key_path, key, key_data, "client-key-data")):
            raw = Path(rel(source)).read_bytes() if source else _data(data or "", field, path)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(raw)
        ctx.load_cert_chain(cert_path, key_path)
