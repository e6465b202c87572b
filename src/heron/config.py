"""One YAML file (`heron.yml`), validated with errors that name file, line and field.

Precedence, lowest to highest: built-in defaults < the YAML file < environment variables
(`HERON_<SECTION>__<FIELD>`, e.g. `HERON_STORAGE__URL`; plus `HERON_ADMIN_TOKEN`) < command-line
flags. Unknown keys are errors. Secrets may be given as `*_file` paths instead of inline values.
Sections owned by other domains (`scrape_configs`, `rule_files`, `alerting`, `alertmanager`, ...)
are parsed and validated by those domains, which report errors through `ConfigError` too.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from heron.exceptions import ConfigError

DEFAULT_LISTEN = "127.0.0.1:9090"
DEFAULT_OTLP_LISTEN = "127.0.0.1:4318"

_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2,
               "gib": 1024**3}
_DURATION = re.compile(r"^((?P<y>\d+)y)?((?P<w>\d+)w)?((?P<d>\d+)d)?((?P<h>\d+)h)?((?P<m>\d+)m)?"
                       r"((?P<s>\d+)s)?((?P<ms>\d+)ms)?$")
_DURATION_SECONDS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}


def parse_duration(value: str | int | float) -> float:
    """Prometheus duration (`1h30m`, `15s`, `500ms`, `2d`) to seconds; numbers are seconds."""
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION.match(value.strip())
    if not value.strip() or not m or not any(m.groupdict().values()):
        raise ValueError(f"not a valid duration string: {value!r}")
    return sum(int(v) * _DURATION_SECONDS[k] for k, v in m.groupdict().items() if v)


def parse_size(value: str | int) -> int:
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"not a valid size: {value!r} (use e.g. 256MiB)")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def _host_port(value: str) -> str:
    _host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ServerConfig(_Section):
    listen: str = DEFAULT_LISTEN
    """Main HTTP port: APIs, UI, /metrics. Loopback by default; set 0.0.0.0:9090 to expose."""
    otlp_listen: str | None = DEFAULT_OTLP_LISTEN
    """OTLP/HTTP receiver (the standard port 4318); null to serve OTLP on `listen` only."""
    external_url: str | None = None

    _v_listen = field_validator("listen", "otlp_listen")(
        lambda v: v if v is None else _host_port(v))


class StorageConfig(_Section):
    data_dir: str = "./heron-data"
    url: str | None = None
    """ClickHouse server URL (http://user:pass@host:8123); embedded chDB when unset."""
    database: str = "heron"
    chdb_path: str | None = None
    """Where chDB keeps its files (default DATA_DIR/clickhouse). One per process."""
    head_window: float = 12 * 3600.0
    """Seconds of recent samples kept in memory for PromQL and rules (`12h`; `0` disables).
    Longer than Grafana's default "Last 6 hours" (with its rate windows), so default dashboards
    never touch storage; `head_max_samples` bounds the memory. About 12 bytes per sample (10k
    series scraped every 15 s: ~86 MB per 3h)."""
    head_max_samples: int | None = Field(default=None, ge=1)
    """Cap on samples in memory; past it the head keeps a shorter window. Default: a tenth of
    the machine's memory (cgroup limit or RAM) at 12 bytes per sample."""

    @field_validator("head_window", mode="before")
    @classmethod
    def _v_head(cls, v: Any) -> float:
        if isinstance(v, str) and v.strip().isdigit():  # `"0"` (off) or plain seconds
            v = int(v)
        if parse_duration(v) < 0:
            raise ValueError("head_window must not be negative")
        return parse_duration(v)

    @field_validator("database")
    @classmethod
    def _v_db(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise ValueError("database must be an identifier ([A-Za-z_][A-Za-z0-9_]*)")
        return v


class RetentionConfig(_Section):
    metrics: str = "15d"
    logs: str = "15d"
    traces: str = "15d"
    errors: str = "15d"

    @field_validator("metrics", "logs", "traces", "errors", mode="before")
    @classmethod
    def _v(cls, v: Any) -> str:
        v = str(v) if isinstance(v, int) else v
        if isinstance(v, str) and v.isdigit():
            v += "d"
        if parse_duration(v) < 86400:
            raise ValueError("retention must be at least 1d")
        return v

    def days(self) -> dict[str, int]:
        return {s: max(1, int(parse_duration(getattr(self, s)) // 86400))
                for s in ("metrics", "logs", "traces", "errors")}


class PipelineConfig(_Section):
    max_queue_bytes: int = 256 << 20
    batch_rows: int = 200_000
    flush_interval: float = 1.0
    retry_after: int = 1

    _v_size = field_validator("max_queue_bytes", mode="before")(lambda v: parse_size(v))
    _v_flush = field_validator("flush_interval", mode="before")(lambda v: parse_duration(v))


class IngestKey(_Section):
    name: str
    key: str | None = None
    key_file: str | None = None


class AuthConfig(_Section):
    admin_token: str | None = None
    """Set the admin token instead of generating one (automation); prefer admin_token_file."""
    admin_token_file: str | None = None
    ingest_keys: list[IngestKey] = Field(default_factory=list)
    ingest_auth: bool = True
    """Require an ingest key (or the admin token) on ingest endpoints."""


class HeronConfig(_Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    self_scrape: bool = True
    """Scrape Heron's own /metrics (job "heron") so a new install shows series at once."""
    # Sections in the Prometheus / Alertmanager formats, validated by their own domains.
    global_: dict[str, Any] = Field(default_factory=dict, alias="global")
    scrape_configs: list[dict[str, Any]] = Field(default_factory=list)
    rule_files: list[str] = Field(default_factory=list)
    alerting: dict[str, Any] = Field(default_factory=dict)
    alertmanager: dict[str, Any] | str | None = None
    remote_write: dict[str, Any] = Field(default_factory=dict)
    limits: dict[str, Any] = Field(default_factory=dict)
    errors: dict[str, Any] = Field(default_factory=dict)
    sdk: dict[str, Any] = Field(default_factory=dict)
    ui: dict[str, Any] = Field(default_factory=dict)

    # Not from YAML: where the config came from, for relative paths and reload.
    source: str | None = Field(default=None, exclude=True)
    lines: dict[str, int] = Field(default_factory=dict, exclude=True)

    @property
    def data_dir(self) -> Path:
        return Path(self.storage.data_dir)

    def resolve_path(self, path: str) -> Path:
        """Paths in the file are relative to the file's folder, as in Prometheus."""
        p = Path(path)
        if p.is_absolute() or not self.source:
            return p
        return Path(self.source).parent / p

    def line_of(self, dotted: str) -> int | None:
        return self.lines.get(dotted)


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records the line of every mapping key, by dotted path."""


def _compose_lines(node: yaml.Node, prefix: str, out: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = f"{prefix}.{key.value}" if prefix else str(key.value)
            out[path] = key.start_mark.line + 1
            _compose_lines(value, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = f"{prefix}.{i}"
            out[path] = item.start_mark.line + 1
            _compose_lines(item, path, out)


def load_yaml_with_lines(text: str, filename: str) -> tuple[Any, dict[str, int]]:
    """Parse YAML; returns the data and {dotted.path: line}. Errors name file:line."""
    try:
        node = yaml.compose(text, Loader=_LineLoader)
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"YAML syntax error: {exc.problem or exc}", file=filename, line=line) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc}", file=filename) from exc
    lines: dict[str, int] = {}
    if node is not None:
        _compose_lines(node, "", lines)
    return data, lines


def _env_overrides(data: dict[str, Any], environ: dict[str, str]) -> None:
    for name, value in environ.items():
        if name == "HERON_ADMIN_TOKEN":
            data.setdefault("auth", {})["admin_token"] = value
            continue
        if not name.startswith("HERON_") or "__" not in name:
            continue
        path = name[len("HERON_"):].lower().split("__")
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name} overrides a non-section")
        node[path[-1]] = yaml.safe_load(value) if value else value


def build_config(data: Any, *, filename: str = "<config>", lines: dict[str, int] | None = None,
                 environ: dict[str, str] | None = None) -> HeronConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of sections", file=filename, line=1)
    _env_overrides(data, dict(os.environ if environ is None else environ))
    lines = lines or {}
    try:
        config = HeronConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        dotted = ".".join("global" if p == "global_" else p for p in loc)
        line = None
        for i in range(len(loc), 0, -1):
            line = lines.get(".".join(loc[:i]))
            if line:
                break
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (not a Heron setting; check the spelling)"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(msg + more, file=filename, line=line, field=dotted) from exc
    config.source = filename if filename != "<config>" else None
    config.lines = lines
    return config


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> HeronConfig:
    """Load `path` (or defaults when None) with env overrides applied."""
    if path is None:
        return build_config({}, environ=environ)
    filename = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", file=filename) from exc
    data, lines = load_yaml_with_lines(text, filename)
    return build_config(data, filename=filename, lines=lines, environ=environ)


# Validators of the sections other domains own ("module:function", each taking the HeronConfig
# and raising ConfigError). `heron check config`, SIGHUP and POST /-/reload all run them, so a
# reload never applies a config that `heron check config` would refuse.
SECTION_VALIDATORS: list[str] = [
    "heron.metrics.scrape_config:parse_scrape_configs",
    "heron.metrics.limits:LimitsConfig.from_config",
    "heron.errors.settings:load",
    "heron.ui.provision:validate",
    "heron.alerting.config:from_heron",
    "heron.rules.manager:validate",
]


def validate_sections(config: HeronConfig) -> None:
    """Run every domain's validation of its own section; raises the first ConfigError."""
    import importlib

    for spec in SECTION_VALIDATORS:
        module, _, path = spec.partition(":")
        target: Any = importlib.import_module(module)
        for part in path.split("."):
            target = getattr(target, part)
        target(config)


def read_secret(value: str | None, file: str | None, config: HeronConfig | None = None) -> str | None:
    """A secret given inline or as a `*_file` path (trailing newline stripped)."""
    if file:
        p = config.resolve_path(file) if config else Path(file)
        return p.read_text().strip()
    return value
