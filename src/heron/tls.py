"""Prometheus' `tls_config` as an `ssl.SSLContext`, shared by scrapes, Alertmanager delivery and receivers.

One builder so that every client Heron opens reads the same fields the same way: `ca_file`,
`cert_file`/`key_file`, `insecure_skip_verify`, `min_version`/`max_version` (`TLS10`..`TLS13`, as in
prometheus/common). `server_name` is applied per request (SNI and certificate name), not here.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
TLS_FIELDS = frozenset({"ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify",
                        "min_version", "max_version"})


def tls_problem(cfg: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first invalid field of a `tls_config` mapping as (field, message), or None.

    File readability is left to `tls_context`, which raises OSError naming the file."""
    for key in cfg:
        if key not in TLS_FIELDS:
            return key, f"field {key} not found in type config.TLSConfig"
    for key in ("min_version", "max_version"):
        v = cfg.get(key)
        if v is not None and v not in TLS_VERSIONS:
            return key, f"unknown TLS version: {v} (one of {', '.join(TLS_VERSIONS)})"
    lo, hi = cfg.get("min_version"), cfg.get("max_version")
    if lo and hi and TLS_VERSIONS[lo] > TLS_VERSIONS[hi]:
        return "max_version", f"max_version {hi} is lower than min_version {lo}"
    if bool(cfg.get("cert_file")) != bool(cfg.get("key_file")):
        return ("key_file" if cfg.get("cert_file") else "cert_file"), \
            "client cert file and client key file must both be specified"
    return None


def _path(value: Any, base_dir: str | Path | None) -> str:
    p = Path(str(value))
    return str(p if p.is_absolute() or base_dir is None else Path(base_dir) / p)


def tls_context(cfg: Mapping[str, Any] | None, base_dir: str | Path | None = None) -> ssl.SSLContext:
    """A client context for `cfg`; relative file names are resolved against `base_dir`."""
    cfg = cfg or {}
    ca = cfg.get("ca_file")
    ctx = ssl.create_default_context(cafile=_path(ca, base_dir) if ca and not cfg.get("insecure_skip_verify")
                                     else None)
    if cfg.get("insecure_skip_verify"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cfg.get("cert_file"):
        key = cfg.get("key_file")
        ctx.load_cert_chain(_path(cfg["cert_file"], base_dir), _path(key, base_dir) if key else None)
    if cfg.get("min_version"):
        ctx.minimum_version = TLS_VERSIONS[cfg["min_version"]]
    if cfg.get("max_version"):
        ctx.maximum_version = TLS_VERSIONS[cfg["max_version"]]
    return ctx
