"""`heron` command line.

Each domain adds its commands through a module listed in `COMMAND_MODULES` exposing
`register(subparsers)`; handlers return an exit code. `heron check` subcommands share one
`check` parser, reachable through `check_subparsers(...)`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from heron import __version__
from heron.exceptions import ConfigError, HeronError

COMMAND_MODULES: list[str] = ["heron.errors.cli", "heron.alerting.cli", "heron.promql.cli", "heron.rules.cli",
                              "heron.demo.cli"]

# What each command module registers ({"cmd": help, "check cmd": help}), so `heron --help` lists
# them and `heron version` starts without importing numpy, pydantic and every domain: a module is
# imported only when its command runs. A module missing here is imported eagerly, as before;
# tests/test_cli_lazy.py checks this table against what the modules really register.
COMMAND_INDEX: dict[str, dict[str, str]] = {
    "heron.errors.cli": {"project": "error-tracking projects and their DSNs (Sentry SDKs)"},
    "heron.alerting.cli": {"check alerting": "validate an alertmanager.yml (like amtool check-config)",
                           "alerting": "alerting tools (routing tree tests)"},
    "heron.promql.cli": {"query": "evaluate a PromQL expression (instant, or --range for a chart)"},
    "heron.rules.cli": {"check rules": "validate Prometheus rule files (like promtool)",
                        "test": "unit tests (promtool's format)"},
    "heron.demo.cli": {"demo": "run Heron with an instrumented demo service and traffic"},
}

_check_sub: argparse._SubParsersAction | None = None


def check_subparsers() -> argparse._SubParsersAction:
    """The `heron check ...` subparsers, for domains adding `heron check rules|alerting`."""
    assert _check_sub is not None
    return _check_sub


def _load(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from heron.config import load_config

    config = load_config(args.config)
    if getattr(args, "data_dir", None):
        config.storage.data_dir = args.data_dir
    if getattr(args, "listen", None):
        config.server.listen = args.listen
    if getattr(args, "otlp_listen", None):
        config.server.otlp_listen = None if args.otlp_listen == "off" else args.otlp_listen
    return config


def _merge_prometheus(config, path: str | None):  # type: ignore[no-untyped-def]
    """Take scrape_configs, rule_files, global and alerting from a prometheus.yml."""
    if not path:
        return config
    from pathlib import Path

    from heron.config import load_yaml_with_lines

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=path) from exc
    data, lines = load_yaml_with_lines(text, path)
    data = data or {}
    base = Path(path).resolve().parent
    from heron.metrics.scrape_config import absolutize

    config.scrape_configs.extend(absolutize(data.get("scrape_configs") or [], base))
    # rule_files are relative to the prometheus.yml they came from
    config.rule_files.extend(str(base / f) for f in data.get("rule_files") or [])
    if data.get("global"):
        config.global_.update(data["global"])
    if data.get("alerting"):
        config.alerting.update(data["alerting"])
    if data.get("scrape_configs"):  # errors name prometheus.yml:line
        from heron.metrics.scrape_config import parse_scrape_configs

        parse_scrape_configs(config, data["scrape_configs"], file=path, lines=lines)
    return config


def cmd_up(args: argparse.Namespace) -> int:
    from heron.server import Heron, serve

    config = _merge_prometheus(_load(args), args.prometheus_config)
    heron = Heron(config)
    heron.config_loader = lambda: _merge_prometheus(_load(args), args.prometheus_config)
    host, _, port = config.server.listen.rpartition(":")
    url = f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0', '') else host}:{port}"

    def ready() -> None:
        print(f"Heron {__version__} is up at {url}  (data: {heron.data_dir.resolve()})", flush=True)
        if config.server.otlp_listen:
            print(f"OTLP/HTTP receiver on {config.server.otlp_listen}", flush=True)
        if heron.new_admin_token:
            print("\nAdmin token (shown once; keep it, `heron token reset-admin` makes a new one):\n"
                  f"  {heron.new_admin_token}\n", flush=True)

    try:
        import uvloop  # C event loop: less CPU per request on every ingest path

        uvloop.run(serve(heron, on_ready=ready))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    print(f"heron {__version__} (python {sys.version.split()[0]})")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from heron.config import load_config

    try:
        from heron.config import validate_sections

        validate_sections(load_config(args.file, environ={}))
    except ConfigError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"SUCCESS: {args.file} is valid Heron configuration")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from heron.auth import Auth
    from heron.control import ControlStore

    config = _load(args)
    auth = Auth(ControlStore(config.data_dir / "control.db"))
    if args.action == "reset-admin":
        print(auth.reset_admin())
    elif args.action == "create":
        if not args.name:
            print("token create needs --name", file=sys.stderr)
            return 2
        print(auth.create(args.kind, args.name))
    elif args.action == "revoke":
        n = auth.revoke(args.name, args.kind)
        print(f"revoked {n} token(s)")
        return 0 if n else 1
    elif args.action == "list":
        for row in auth.control.query("SELECT name, kind, created_at, revoked_at FROM tokens ORDER BY id"):
            state = "revoked" if row["revoked_at"] else "active"
            print(f"{row['kind']:7} {row['name']:24} {state}")
    return 0


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv` (default sys.argv): command modules other than the chosen one
    are listed without being imported."""
    global _check_sub
    parser = argparse.ArgumentParser(prog="heron", description="Heron observability server")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", "-c", help="heron.yml (defaults apply when omitted)")
        p.add_argument("--data-dir", help="data directory (default ./heron-data)")

    up = sub.add_parser("up", help="start Heron")
    common(up)
    up.add_argument("--listen", help="HOST:PORT of the HTTP server (default 127.0.0.1:9090)")
    up.add_argument("--otlp-listen", help="HOST:PORT of the OTLP/HTTP receiver (default 127.0.0.1:4318; 'off')")
    up.add_argument("--prometheus-config", help="take scrape_configs, rule_files, alerting from a prometheus.yml")
    up.set_defaults(func=cmd_up)

    sub.add_parser("version", help="print the version").set_defaults(func=cmd_version)

    check = sub.add_parser("check", help="validate configuration files")
    _check_sub = check.add_subparsers(dest="what", required=True)
    cc = _check_sub.add_parser("config", help="validate heron.yml")
    cc.add_argument("file")
    cc.set_defaults(func=cmd_check_config)

    tok = sub.add_parser("token", help="manage admin, ingest and API tokens")
    common(tok)
    tok.add_argument("action", choices=["create", "revoke", "list", "reset-admin"])
    tok.add_argument("--name")
    tok.add_argument("--kind", choices=["ingest", "api", "admin"], default="ingest")
    tok.set_defaults(func=cmd_token)

    sql = sub.add_parser("sql", help="run ClickHouse SQL on a stopped Heron's data ({db} = its database)")
    common(sql)
    sql.add_argument("query")
    sql.set_defaults(func=cmd_sql)

    wanted = _requested(sys.argv[1:] if argv is None else argv)
    for name in COMMAND_MODULES:
        index = COMMAND_INDEX.get(name)
        if index is None or wanted in index:
            importlib.import_module(name).register(sub)
            continue
        for cmd, help_text in index.items():  # listed in --help; the module loads when chosen
            group, _, leaf = cmd.rpartition(" ")
            (_check_sub if group == "check" else sub).add_parser(leaf, help=help_text)
    return parser


def _requested(argv: Sequence[str]) -> str:
    """The command as COMMAND_INDEX names it ("query", "check rules"); the top-level parser has
    only flags (-v, -h), so the first word is the command."""
    words = [a for a in argv if not a.startswith("-")]
    if words[:1] == ["check"] and len(words) > 1:
        return f"check {words[1]}"
    return words[0] if words else ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except HeronError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def cmd_sql(args: argparse.Namespace) -> int:
    """Run ClickHouse SQL against the data directory of a stopped Heron (or a server backend)."""
    import json

    from heron.storage import open_storage

    config = _load(args)
    storage = open_storage(config.data_dir, config.storage.database, config.storage.url,
                           config.storage.chdb_path)
    table = storage.execute(args.query.replace("{db}", f"`{storage.database}`"))
    for row in table.to_pylist():
        print(json.dumps(row, default=str))
    return 0
