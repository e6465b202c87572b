"""`scrape_configs` in Prometheus' format, validated with file:line: field errors.

The section is the same YAML Prometheus reads (inside `heron.yml`, or merged from a
`prometheus.yml` by `heron up --prometheus-config`). Unknown keys are errors, as in Prometheus;
service discovery other than `static_configs`, `file_sd_configs` and `kubernetes_sd_configs`
(heron.metrics.kubernetes_sd) is refused by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from heron.config import HeronConfig, parse_duration
from heron.exceptions import ConfigError
from heron.metrics.kubernetes_sd_config import KubernetesSD, parse_kubernetes_sd
from heron.metrics.relabel import RelabelError, RelabelRule, parse_rules
from heron.tls import tls_problem

DEFAULT_INTERVAL = 60.0
DEFAULT_TIMEOUT = 10.0
SELF_JOB = "heron"
SELF_INTERVAL = 15.0

_KNOWN = {"job_name", "scrape_interval", "scrape_timeout", "metrics_path", "scheme", "params",
          "honor_labels", "honor_timestamps", "basic_auth", "authorization", "bearer_token",
          "bearer_token_file", "tls_config", "static_configs", "file_sd_configs", "relabel_configs",
          "metric_relabel_configs", "sample_limit", "label_limit", "label_name_length_limit",
          "label_value_length_limit", "target_limit", "body_size_limit", "follow_redirects",
          "enable_http2", "scrape_protocols", "track_timestamps_staleness", "proxy_url",
          "proxy_from_environment", "no_proxy", "kubernetes_sd_configs"}
_SD_HINT = re.compile(r"^[a-z0-9]+_sd_configs$")
# Prometheus' scrape_protocols and their media types (PrometheusProto is refused: no parser here).
SCRAPE_PROTOCOLS = {"OpenMetricsText1.0.0": "application/openmetrics-text;version=1.0.0",
                    "OpenMetricsText0.0.1": "application/openmetrics-text;version=0.0.1",
                    "PrometheusText1.0.0": "text/plain;version=1.0.0",
                    "PrometheusText0.0.4": "text/plain;version=0.0.4"}
DEFAULT_PROTOCOLS = ("OpenMetricsText1.0.0", "OpenMetricsText0.0.1", "PrometheusText0.0.4")


def accept_header(protocols: tuple[str, ...]) -> str:
    """The Accept header Prometheus sends for `scrape_protocols` (in order, decreasing q)."""
    weight = len(SCRAPE_PROTOCOLS) + 2  # as Prometheus: one more than its 5 known protocols
    vals = []
    for p in protocols:
        vals.append(f"{SCRAPE_PROTOCOLS[p]};q=0.{weight}")
        weight -= 1
    return ",".join([*vals, f"*/*;q=0.{weight}"])
_HOST_PORT = re.compile(r"^[^/\s]+(:\d+)?$")


@dataclass(frozen=True)
class TLSConfig:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False
    min_version: str | None = None
    max_version: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v}


@dataclass(frozen=True)
class FileSD:
    files: tuple[str, ...]
    refresh_interval: float = 300.0


@dataclass(frozen=True)
class ScrapeConfig:
    job_name: str
    scrape_interval: float = DEFAULT_INTERVAL
    scrape_timeout: float = DEFAULT_TIMEOUT
    metrics_path: str = "/metrics"
    scheme: str = "http"
    params: tuple[tuple[str, tuple[str, ...]], ...] = ()
    honor_labels: bool = False
    honor_timestamps: bool = True
    basic_auth: tuple[str, str] | None = None
    authorization: tuple[str, str] | None = None  # (type, credentials)
    tls: TLSConfig = field(default_factory=TLSConfig)
    static: tuple[tuple[tuple[str, ...], tuple[tuple[str, str], ...]], ...] = ()
    file_sd: tuple[FileSD, ...] = ()
    kubernetes_sd: tuple[KubernetesSD, ...] = ()
    relabel: tuple[RelabelRule, ...] = ()
    metric_relabel: tuple[RelabelRule, ...] = ()
    sample_limit: int = 0
    label_limit: int = 0
    label_name_length_limit: int = 0
    label_value_length_limit: int = 0
    target_limit: int = 0
    body_size_limit: int = 0
    follow_redirects: bool = True
    enable_http2: bool = True  # Prometheus' default; used when the target speaks h2 (ALPN, https only)
    proxy_url: str | None = None
    proxy_from_environment: bool = False  # HTTP(S)_PROXY / NO_PROXY
    no_proxy: str | None = None  # targets that skip proxy_url (heron.metrics.no_proxy)
    accept: str = field(default_factory=lambda: accept_header(DEFAULT_PROTOCOLS))


def _err(config: HeronConfig, path: str, msg: str, file: str | None = None,
         lines: dict[str, int] | None = None) -> ConfigError:
    lines = config.lines if lines is None else lines
    line = None
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        line = lines.get(".".join(parts[:i]))
        if line:
            break
    return ConfigError(msg, file=file or config.source or "<config>", line=line, field=path)


def _secret(raw: dict[str, Any], key: str, config: HeronConfig, where: str, file: str | None,
            lines: dict[str, int] | None) -> str | None:
    if raw.get(key) is not None and raw.get(f"{key}_file") is not None:
        raise _err(config, f"{where}.{key}", f"at most one of {key} and {key}_file", file, lines)
    if raw.get(f"{key}_file") is not None:
        path = config.resolve_path(str(raw[f"{key}_file"]))
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise _err(config, f"{where}.{key}_file", f"cannot read {path}: {exc.strerror}", file, lines) \
                from None
    return None if raw.get(key) is None else str(raw[key])


def parse_scrape_configs(config: HeronConfig, raw: list[Any] | None = None, *, file: str | None = None,
                         lines: dict[str, int] | None = None) -> list[ScrapeConfig]:
    """Validate `scrape_configs` (or `raw` from another file) into ScrapeConfig objects."""
    raw = config.scrape_configs if raw is None else raw
    if file is not None:  # from another file: its relative paths are relative to it
        raw = absolutize(raw, Path(file).resolve().parent)
    g = config.global_ or {}
    try:
        g_interval = parse_duration(g.get("scrape_interval", DEFAULT_INTERVAL))
        g_timeout = parse_duration(g.get("scrape_timeout", min(DEFAULT_TIMEOUT, g_interval)))
    except ValueError as exc:
        raise _err(config, "global.scrape_interval", str(exc), file, lines) from None
    out: list[ScrapeConfig] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        out.append(_one(config, item, f"scrape_configs.{i}", g_interval, g_timeout, file, lines))
        if out[-1].job_name in seen:
            raise _err(config, f"scrape_configs.{i}.job_name",
                       f"found multiple scrape configs with job name {out[-1].job_name!r}", file, lines)
        seen.add(out[-1].job_name)
    return out


def _one(config: HeronConfig, item: Any, where: str, g_interval: float, g_timeout: float,
         file: str | None, lines: dict[str, int] | None) -> ScrapeConfig:
    def err(key: str, msg: str) -> ConfigError:
        return _err(config, f"{where}.{key}" if key else where, msg, file, lines)

    if not isinstance(item, dict):
        raise err("", "each scrape config must be a mapping")
    for key in item:
        if key not in _KNOWN:
            if _SD_HINT.match(str(key)):
                raise err(str(key), "this service discovery is not supported by Heron "
                                    "(use static_configs, file_sd_configs or kubernetes_sd_configs)")
            raise err(str(key), "unknown field in a scrape config")
    job = item.get("job_name")
    if not job or not isinstance(job, str):
        raise err("job_name", "job_name is required and must be a string")
    try:
        interval = parse_duration(item.get("scrape_interval", g_interval))
        timeout = parse_duration(item.get("scrape_timeout", min(g_timeout, interval)))
    except ValueError as exc:
        raise err("scrape_interval" if "scrape_timeout" not in item else "scrape_timeout", str(exc)) from None
    if interval <= 0:
        raise err("scrape_interval", "scrape_interval must be positive")
    if timeout > interval:
        raise err("scrape_timeout", f"scrape timeout greater than scrape interval for job {job!r}")
    scheme = str(item.get("scheme", "http"))
    if scheme not in ("http", "https"):
        raise err("scheme", f"scheme must be http or https, not {scheme!r}")
    path = str(item.get("metrics_path", "/metrics"))
    params_raw = item.get("params") or {}
    if not isinstance(params_raw, dict) or not all(isinstance(v, list) for v in params_raw.values()):
        raise err("params", "params must map names to lists of values")
    params = tuple((str(k), tuple(str(x) for x in v)) for k, v in params_raw.items())
    basic = None
    if item.get("basic_auth") is not None:
        ba = item["basic_auth"]
        if not isinstance(ba, dict) or not ba.get("username"):
            raise err("basic_auth", "basic_auth needs a username")
        basic = (str(ba["username"]), _secret(ba, "password", config, f"{where}.basic_auth", file, lines) or "")
    auth = None
    if item.get("authorization") is not None:
        az = item["authorization"]
        if not isinstance(az, dict):
            raise err("authorization", "authorization must be a mapping")
        cred = _secret(az, "credentials", config, f"{where}.authorization", file, lines)
        auth = (str(az.get("type", "Bearer")), cred or "")
    bearer = _secret(item, "bearer_token", config, where, file, lines)
    if bearer is not None:
        if auth:
            raise err("bearer_token", "at most one of bearer_token, bearer_token_file and authorization")
        auth = ("Bearer", bearer)
    if basic and auth:
        raise err("basic_auth", "at most one of basic_auth and authorization/bearer_token")
    tls_raw = item.get("tls_config") or {}
    if not isinstance(tls_raw, dict):
        raise err("tls_config", "tls_config must be a mapping")
    bad_tls = tls_problem(tls_raw)
    if bad_tls:
        raise err(f"tls_config.{bad_tls[0]}", bad_tls[1])
    files = {k: str(config.resolve_path(str(tls_raw[k]))) for k in ("ca_file", "cert_file", "key_file")
             if tls_raw.get(k)}
    tls = TLSConfig(server_name=tls_raw.get("server_name"),
                    insecure_skip_verify=bool(tls_raw.get("insecure_skip_verify", False)),
                    min_version=tls_raw.get("min_version"), max_version=tls_raw.get("max_version"), **files)
    proxy = item.get("proxy_url")
    if proxy is not None:
        try:  # the URL may carry credentials: it is never echoed back
            parts = urlsplit(str(proxy))
            ok = parts.scheme in ("http", "https", "socks5") and bool(parts.hostname) and parts.port is not None
        except ValueError:
            ok = False
        if not ok:
            raise err("proxy_url", "invalid proxy_url: want http://, https:// or socks5://host:port")
        if item.get("proxy_from_environment"):
            raise err("proxy_from_environment", "if proxy_from_environment is configured, "
                                                "proxy_url must not be configured")
    no_proxy = item.get("no_proxy")
    if no_proxy is not None and not isinstance(no_proxy, str):
        raise err("no_proxy", "no_proxy must be a string (comma-separated hosts, IPs and CIDRs)")
    if no_proxy and item.get("proxy_from_environment"):
        raise err("no_proxy", "if proxy_from_environment is configured, no_proxy must not be configured")
    if no_proxy and proxy is None:
        raise err("no_proxy", "if no_proxy is configured, proxy_url must also be configured")
    protocols = item.get("scrape_protocols") or list(DEFAULT_PROTOCOLS)
    if not isinstance(protocols, list):
        raise err("scrape_protocols", "scrape_protocols must be a list")
    for j, p in enumerate(protocols):
        if p == "PrometheusProto":
            raise err(f"scrape_protocols.{j}", "PrometheusProto is not supported by Heron "
                                               "(use the text formats: " + ", ".join(SCRAPE_PROTOCOLS) + ")")
        if p not in SCRAPE_PROTOCOLS:
            raise err(f"scrape_protocols.{j}", f"unknown scrape protocol {p!r} (one of "
                                               + ", ".join(SCRAPE_PROTOCOLS) + ")")
        if protocols.index(p) != j:
            raise err(f"scrape_protocols.{j}", f"duplicated protocol in scrape_protocols: {p}")
    static = []
    for j, sc in enumerate(item.get("static_configs") or []):
        if not isinstance(sc, dict) or not isinstance(sc.get("targets", []), list):
            raise err(f"static_configs.{j}", "a static config needs a list of 'targets'")
        for k, t in enumerate(sc.get("targets") or []):
            if not isinstance(t, str) or not _HOST_PORT.match(t):
                raise err(f"static_configs.{j}.targets.{k}", f"{t!r} is not a valid host:port target")
        labels = sc.get("labels") or {}
        if not isinstance(labels, dict):
            raise err(f"static_configs.{j}.labels", "labels must be a mapping")
        static.append((tuple(sc.get("targets") or []), tuple((str(k), str(v)) for k, v in labels.items())))
    file_sd = []
    for j, fs in enumerate(item.get("file_sd_configs") or []):
        if not isinstance(fs, dict) or not isinstance(fs.get("files"), list) or not fs["files"]:
            raise err(f"file_sd_configs.{j}.files", "file_sd_configs needs a list of 'files'")
        try:
            refresh = parse_duration(fs.get("refresh_interval", "5m"))
        except ValueError as exc:
            raise err(f"file_sd_configs.{j}.refresh_interval", str(exc)) from None
        file_sd.append(FileSD(tuple(str(config.resolve_path(str(f))) for f in fs["files"]), refresh))
    kubernetes_sd = parse_kubernetes_sd(
        item.get("kubernetes_sd_configs") or [], "kubernetes_sd_configs", err,
        lambda r, k, w: _secret(r, k, config, f"{where}.{w}", file, lines),
        lambda p: str(config.resolve_path(p)))
    try:
        relabel = parse_rules(item.get("relabel_configs"))
    except RelabelError as exc:
        raise err(f"relabel_configs.{exc.field}".rstrip("."), str(exc)) from None
    try:
        metric_relabel = parse_rules(item.get("metric_relabel_configs"))
    except RelabelError as exc:
        raise err(f"metric_relabel_configs.{exc.field}".rstrip("."), str(exc)) from None
    limits = {}
    for key in ("sample_limit", "label_limit", "label_name_length_limit", "label_value_length_limit",
                "target_limit"):
        v = item.get(key, 0)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise err(key, f"{key} must be a non-negative integer")
        limits[key] = v
    body = item.get("body_size_limit", 0)
    if body:
        from heron.config import parse_size
        try:
            body = parse_size(body)
        except ValueError as exc:
            raise err("body_size_limit", str(exc)) from None
    return ScrapeConfig(
        job_name=job, scrape_interval=interval, scrape_timeout=timeout, metrics_path=path, scheme=scheme,
        params=params, honor_labels=bool(item.get("honor_labels", False)),
        honor_timestamps=bool(item.get("honor_timestamps", True)), basic_auth=basic, authorization=auth,
        tls=tls, static=tuple(static), file_sd=tuple(file_sd), kubernetes_sd=kubernetes_sd,
        relabel=tuple(relabel),
        metric_relabel=tuple(metric_relabel), body_size_limit=int(body or 0),
        follow_redirects=bool(item.get("follow_redirects", True)),
        enable_http2=bool(item.get("enable_http2", True)), proxy_url=str(proxy) if proxy else None,
        proxy_from_environment=bool(item.get("proxy_from_environment", False)), no_proxy=no_proxy or None,
        accept=accept_header(tuple(protocols)),
        **limits)


def self_scrape_config(config: HeronConfig, token: str | None) -> ScrapeConfig:
    """The implicit job "heron": Heron's own /metrics at its main listen address."""
    host, _, port = config.server.listen.rpartition(":")
    host = "127.0.0.1" if host in ("0.0.0.0", "", "[::]", "::") else host
    g = config.global_ or {}
    interval = parse_duration(g["scrape_interval"]) if "scrape_interval" in g else SELF_INTERVAL
    return ScrapeConfig(job_name=SELF_JOB, scrape_interval=interval, scrape_timeout=min(10.0, interval),
                        authorization=("Bearer", token) if token else None,
                        static=(((f"{host}:{port}",), ()),))


def absolutize(raw: list[Any], base: Path) -> list[Any]:
    """Paths in scrape configs taken from another file (prometheus.yml) are relative to that file."""
    def fix(value: Any) -> Any:
        return str(base / value) if isinstance(value, str) and not Path(value).is_absolute() else value

    out = []
    for item in raw:
        if not isinstance(item, dict):
            out.append(item)
            continue
        item = dict(item)
        if "bearer_token_file" in item:
            item["bearer_token_file"] = fix(item["bearer_token_file"])
        for section, keys in (("basic_auth", ("password_file",)), ("authorization", ("credentials_file",)),
                              ("tls_config", ("ca_file", "cert_file", "key_file"))):
            if isinstance(item.get(section), dict):
                item[section] = {k: (fix(v) if k in keys else v) for k, v in item[section].items()}
        if isinstance(item.get("kubernetes_sd_configs"), list):
            item["kubernetes_sd_configs"] = [
                {**absolutize([k], base)[0], **({"kubeconfig_file": fix(k["kubeconfig_file"])}
                                                if "kubeconfig_file" in k else {})} if isinstance(k, dict) else k
                for k in item["kubernetes_sd_configs"]]
        if isinstance(item.get("file_sd_configs"), list):
            item["file_sd_configs"] = [
                {**fs, "files": [fix(f) for f in fs.get("files") or []]} if isinstance(fs, dict) else fs
                for fs in item["file_sd_configs"]]
        out.append(item)
    return out
