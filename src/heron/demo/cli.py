"""`heron demo`: start Heron, the demo RAG chatbot (instrumented by heron-sdk) and bounded
traffic; within a minute there are metrics, a firing alert, issues, logs and traces to look at.

Heron runs as its own `heron up` process (the demo service in this one, as an app would);
scrape config, the heron-sdk rules pack plus short demo alerts, and an error-tracking project
are written into the data directory before it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

SERVICE = "rag-chatbot"
PACK = Path(__file__).resolve().parents[1] / "rules" / "pack" / "heron-sdk.rules.yml"
DEMO_RULES = Path(__file__).with_name("demo.rules.yml")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run Heron with an instrumented demo service and traffic")
    p.add_argument("--duration", type=float, default=60, help="seconds of traffic (default 60)")
    p.add_argument("--rps", type=float, default=8, help="requests per second (default 8)")
    p.add_argument("--outage-after", type=float, default=15,
                   help="seconds until the simulated LLM outage starts (default 15; negative: none)")
    p.add_argument("--listen", default="127.0.0.1:9090", help="Heron's address (default 127.0.0.1:9090)")
    p.add_argument("--otlp-listen", default="127.0.0.1:4318", help="Heron's OTLP address")
    p.add_argument("--app-port", type=int, default=8000, help="demo service port (default 8000)")
    p.add_argument("--data-dir", help="Heron data directory (default: a new temporary one)")
    p.add_argument("--exit", action="store_true", help="stop Heron when the traffic ends (default: keep it up)")
    p.set_defaults(func=cmd_demo)


def write_config(data_dir: Path, listen: str, otlp_listen: str, app_port: int) -> Path:
    cfg: dict[str, Any] = {
        "server": {"listen": listen, "otlp_listen": otlp_listen},
        "storage": {"data_dir": str(data_dir)},
        "pipeline": {"flush_interval": "500ms"},
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "scrape_configs": [{"job_name": SERVICE, "scrape_interval": "5s",
                            "static_configs": [{"targets": [f"127.0.0.1:{app_port}"]}]}],
        "rule_files": [str(PACK), str(DEMO_RULES)],
    }
    path = data_dir / "heron.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import sentry_sdk
        import uvicorn

        import heron_sdk
    except ImportError as exc:
        print(f"heron demo needs heron-sdk and FastAPI: pip install 'heron-sdk[fastapi]' ({exc})", file=sys.stderr)
        return 2
    from heron.demo.app import create_app
    from heron.demo.traffic import TrafficStats, run_traffic

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="heron-demo-")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    config = write_config(data_dir, args.listen, args.otlp_listen, args.app_port)
    token = "heron_admin_demo_" + secrets.token_hex(12)
    env = {**os.environ, "HERON_ADMIN_TOKEN": token}
    host, _, port = args.listen.rpartition(":")
    url = f"http://{host}:{port}"
    otlp_host, _, otlp_port = args.otlp_listen.rpartition(":")
    headers = {"Authorization": f"Bearer {token}"}

    out = subprocess.run([sys.executable, "-m", "heron", "project", "create", "demo", "--config", str(config)],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print(f"cannot create the demo project: {out.stderr.strip()}", file=sys.stderr)
        return 1
    dsn = out.stdout.strip().splitlines()[-1]
    log_path = data_dir / "heron.log"
    with open(log_path, "ab") as logf:
        heron = subprocess.Popen([sys.executable, "-m", "heron", "up", "--config", str(config)],
                                 stdout=logf, stderr=subprocess.STDOUT, env=env)
    server = None
    inst = None
    try:
        if not _wait_ready(url, heron):
            print(f"Heron did not start; see {log_path}", file=sys.stderr)
            return 1
        app = create_app()
        inst = heron_sdk.init(app, service=SERVICE, endpoint=f"http://{otlp_host}:{otlp_port}", token=token,
                              dsn=dsn, environment="demo", release="demo-1.0", json_stdout=False)
        _quiet_console(inst)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=args.app_port, log_level="warning",
                                               lifespan="off"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        print(f"Heron      {url}  (UI login token: {token})")
        print(f"demo app   http://127.0.0.1:{args.app_port}  (service {SERVICE!r}, data {data_dir})")
        print(f"traffic    {args.rps:g} req/s for {args.duration:g}s"
              + (f", LLM outage from {args.outage_after:g}s" if args.outage_after >= 0 else ""), flush=True)
        stats = TrafficStats()
        try:
            asyncio.run(_traffic_with_progress(f"http://127.0.0.1:{args.app_port}", args, stats, run_traffic))
        except KeyboardInterrupt:
            print("\ntraffic stopped (Ctrl-C)")
        inst.flush()
        time.sleep(1.5)  # one more flush interval, so the summary sees the last batch
        if args.outage_after >= 0:
            _await_alert(url, headers)
        print(summary(url, headers, stats))
        if not args.exit:
            print(f"\nHeron keeps running at {url}; Ctrl-C to stop.", flush=True)
            try:
                heron.wait()
            except KeyboardInterrupt:
                pass
        return 0
    finally:
        if server is not None:
            server.should_exit = True
        if inst is not None:
            inst.shutdown()
            sentry_sdk.flush(5)
        if heron.poll() is None:
            heron.terminate()
            try:
                heron.wait(30)
            except subprocess.TimeoutExpired:
                heron.kill()


async def _traffic_with_progress(base: str, args: argparse.Namespace, stats: Any, run_traffic: Any) -> None:
    outage = args.outage_after if args.outage_after >= 0 else None
    task = asyncio.create_task(run_traffic(base, args.duration, args.rps, outage, stats=stats))
    while not task.done():
        await asyncio.wait({task}, timeout=10)
        if not task.done():
            print(f"  … {stats.line()}", flush=True)
    task.result()


def _await_alert(url: str, headers: dict[str, str], timeout: float = 30.0) -> None:
    """The outage's alert needs its rate window, `for:` and an evaluation after the traffic's
    first errors; on a slow machine a short run can end before that. Wait (bounded) for it."""
    deadline = time.monotonic() + timeout
    said = False
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url + "/api/v1/alerts", headers=headers, timeout=5)
            if any(a.get("state") == "firing" for a in r.json().get("data", {}).get("alerts", [])):
                return
        except (httpx.HTTPError, ValueError):
            pass
        if not said:
            print("waiting for the outage's alert to fire (rate window, then 'for: 10s') ...", flush=True)
            said = True
        time.sleep(1)


def _quiet_console(inst: Any) -> None:
    """The terminal shows the demo's progress; the app's logs go to Heron (see /api/heron/logs)."""
    root = logging.getLogger()
    for h in root.handlers:
        if h is not getattr(inst, "_otlp_handler", None) and type(h).__name__ != "LoggingHandler":
            h.setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # exporter retries while Heron stops


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def observed(url: str, headers: dict[str, str]) -> dict[str, Any]:
    """What Heron holds for the demo service: series, firing alerts, issues, spans, logs."""
    out: dict[str, Any] = {}
    with httpx.Client(base_url=url, headers=headers, timeout=10) as c:
        def get(path: str, **params: Any) -> Any:
            try:
                r = c.get(path, params=params)
                return r.json() if r.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                return None
        q = get("/api/v1/query", query=f'count({{job="{SERVICE}"}})')
        res = (q or {}).get("data", {}).get("result", [])
        out["series"] = int(float(res[0]["value"][1])) if res else 0
        alerts = (get("/api/v1/alerts") or {}).get("data", {}).get("alerts", [])
        out["alerts_firing"] = sorted({a["labels"]["alertname"] for a in alerts if a.get("state") == "firing"})
        issues = get("/api/0/projects/heron/demo/issues/") or []
        out["issues"] = [i.get("title", "") for i in issues]
        out["spans"] = len((get("/api/heron/spans", service=SERVICE, limit=10000) or {}).get("data", []))
        out["logs"] = len((get("/api/heron/logs", service=SERVICE, limit=10000) or {}).get("data", []))
    return out


def summary(url: str, headers: dict[str, str], stats: Any) -> str:
    o = observed(url, headers)
    lines = [f"\ntraffic: {stats.line()}", "", "what Heron has now:",
             f"  metrics   {o['series']} series of job {SERVICE!r}       {url}/graph",
             f"  alerts    firing: {', '.join(o['alerts_firing']) or 'none yet'}       {url}/alerts",
             f"  errors    {len(o['issues'])} issues: {'; '.join(o['issues'][:3])}       {url}/issues",
             f"  traces    {o['spans']} spans                        {url}/api/heron/spans?service={SERVICE}",
             f"  logs      {o['logs']} records                       {url}/api/heron/logs?service={SERVICE}"]
    return "\n".join(lines)
