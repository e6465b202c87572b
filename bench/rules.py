"""Rule evaluation cost: 1 000 rules (recording and alerting, realistic expressions) over 10k
series, Heron next to the real Prometheus on the same data and the same rule file.

    python bench/rules.py [--rules 1000] [--groups 50] [--rounds 3] [--pools 3] [--no-prometheus]

Data: 10 000 series (http_requests_total, http_request_duration_seconds_bucket, up,
node_memory_*), one sample every 15 s for the last 10 minutes. Heron evaluates every group once
per round at "now", one group after the other (Prometheus spreads groups over the interval, so
they rarely overlap): the sum of the groups' durations is the cost per 15 s interval, as
Prometheus' sum of `prometheus_rule_group_last_duration_seconds` is. Each group's time is split
into PromQL queries, writing results to the pipeline, and the rule loop itself (state machine,
labels, templates), with the PromQL queries rules asked, how many the engine ran (a group runs
an expression repeated at the same time once; here the 10 variants of a recording template in
one group share one expression, more repetition than typical rule files have) and the storage
statements the read cache let through. Last rounds run
all groups at once on rules thread pools of the `--pools` sizes (the wall time when every group
is due together). Prometheus gets the same samples through remote write, evaluates the same
file every 15 s, and reports its `prometheus_rule_group_last_duration_seconds`, read after two
evaluations and then once per interval (rounds - 1 reads); the best interval is compared with
Heron's best round after the first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from heron.config import build_config
from heron.metrics.model import labels_from
from heron.rules.manager import default_workers
from heron.server import Heron
from heron.testing import free_port

INTERVAL_S = 15
HISTORY_S = 600
JOBS = [f"svc{i}" for i in range(10)]


def series() -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for job in JOBS:
        for inst in range(25):
            instance = f"10.0.{JOBS.index(job)}.{inst}:8000"
            out.append({"__name__": "up", "job": job, "instance": instance})
            out.append({"__name__": "node_memory_MemAvailable_bytes", "job": job, "instance": instance})
            out.append({"__name__": "node_memory_MemTotal_bytes", "job": job, "instance": instance})
            for route in ("/", "/api", "/login", "/search"):
                for status in ("200", "404", "500"):
                    out.append({"__name__": "http_requests_total", "job": job, "instance": instance,
                                "route": route, "status": status})
            for le in ("0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"):
                for route in ("/", "/api", "/login"):
                    out.append({"__name__": "http_request_duration_seconds_bucket", "job": job,
                                "instance": instance, "route": route, "le": le})
    return out[:10_000]


def values(s: dict[str, str], n: int, rng: np.random.Generator) -> np.ndarray:
    name = s["__name__"]
    if name == "up":
        return np.where(rng.random(n) < 0.02, 0.0, 1.0)
    if name == "node_memory_MemTotal_bytes":
        return np.full(n, 8e9)
    if name == "node_memory_MemAvailable_bytes":
        return 8e9 * rng.uniform(0.02, 0.6) + rng.normal(0, 1e7, n)
    if name == "http_request_duration_seconds_bucket":
        le = float(s["le"]) if s["le"] != "+Inf" else 1e9
        return np.cumsum(rng.poisson(10 * min(1.0, 0.3 + le / 3), n)).astype(float)
    rate = {"200": 20, "404": 2, "500": 0.5}[s["status"]]
    return np.cumsum(rng.poisson(rate * INTERVAL_S, n)).astype(float)


def rules(n_rules: int, n_groups: int) -> dict[str, object]:
    templates = [
        ("record", "job_route:http_requests:rate5m", 'sum by (job, route) (rate(http_requests_total{{job="{job}"}}[5m]))'),
        ("record", "job:http_errors:ratio5m",
         'sum by (job) (rate(http_requests_total{{job="{job}",status=~"5.."}}[5m])) / '
         'sum by (job) (rate(http_requests_total{{job="{job}"}}[5m]))'),
        ("record", "job:http_latency:p95",
         'histogram_quantile(0.95, sum by (job, le) (rate(http_request_duration_seconds_bucket{{job="{job}"}}[5m])))'),
        ("record", "instance:memory_used:ratio",
         '1 - node_memory_MemAvailable_bytes{{job="{job}"}} / node_memory_MemTotal_bytes{{job="{job}"}}'),
        ("record", "job:up:avg", 'avg by (job) (up{{job="{job}"}})'),
        ("alert", "InstanceDown", 'up{{job="{job}"}} == 0'),
        ("alert", "HighErrorRatio",
         'sum by (job) (rate(http_requests_total{{job="{job}",status="500"}}[5m])) / '
         'sum by (job) (rate(http_requests_total{{job="{job}"}}[5m])) > {th}'),
        ("alert", "HighLatency",
         'histogram_quantile(0.99, sum by (job, route, le) (rate(http_request_duration_seconds_bucket{{job="{job}"}}[5m]))) > {th}'),
        ("alert", "MemoryHigh",
         '1 - node_memory_MemAvailable_bytes{{job="{job}"}} / node_memory_MemTotal_bytes{{job="{job}"}} > {th}'),
        ("alert", "TrafficDrop", 'sum by (job, instance) (rate(http_requests_total{{job="{job}"}}[5m])) < {th}'),
    ]
    groups: list[dict[str, object]] = [{"name": f"g{i}", "interval": f"{INTERVAL_S}s", "rules": []}
                                       for i in range(n_groups)]
    for i in range(n_rules):
        kind, name, expr = templates[i % len(templates)]
        job = JOBS[(i // len(templates)) % len(JOBS)]
        variant = i // (len(templates) * len(JOBS))
        th = round(0.5 + variant * 0.01, 3)
        rule: dict[str, object] = {kind: f"{name}_{variant}" if kind == "record" else f"{name}{variant}",
                                   "expr": expr.format(job=job, th=th)}
        if kind == "record":
            rule["record"] = f"{name}:v{variant}"
            rule["labels"] = {"variant": str(variant)}
        else:
            rule["for"] = "1m"
            rule["labels"] = {"severity": "warning", "variant": str(variant)}
            rule["annotations"] = {"summary": "{{ $labels.job }} value {{ $value | humanize }}"}
        groups[i % n_groups]["rules"].append(rule)  # type: ignore[attr-defined]
    return {"groups": groups}


class Round:
    def __init__(self, runs: list, wall: float, statements: int) -> None:  # type: ignore[type-arg]
        self.wall, self.statements = wall, statements
        self.total = sum(r.total for r in runs)
        self.query = sum(r.query for r in runs)
        self.write = sum(r.write for r in runs)
        self.overhead = sum(r.overhead for r in runs)
        self.queries = sum(r.queries for r in runs)
        self.executed = sum(r.executed for r in runs)
        self.workers = 0


async def heron_bench(tmp: Path, rule_file: Path, data: list[tuple[dict[str, str], np.ndarray]],
                      ts: np.ndarray, rounds: int, pools: list[int]) -> tuple[list[Round], list[Round]]:
    cfg = build_config({"storage": {"data_dir": str(tmp / "heron")}, "rule_files": [str(rule_file)],
                        "global": {"evaluation_interval": f"{INTERVAL_S}s"},
                        "auth": {"admin_token": "bench"}, "server": {"otlp_listen": None}}, environ={})
    heron = Heron(cfg)
    await heron.start()
    try:
        await heron.rules.stop_groups()  # type: ignore[attr-defined]
        for i in range(0, len(data), 1000):
            chunk = data[i:i + 1000]
            await heron.metrics_writer.write([labels_from(s) for s, _ in chunk], [len(ts)] * len(chunk),
                                             np.tile(ts, len(chunk)), np.concatenate([v for _, v in chunk]))
        await asyncio.get_running_loop().run_in_executor(None, heron.pipeline.flush)
        manager = heron.rules  # type: ignore[attr-defined]
        out = []
        for r in range(rounds + len(pools)):
            now = int(time.time() * 1000)
            before = manager.cache.misses
            t0 = time.perf_counter()
            if r < rounds:
                runs = [await manager.evaluate(g, now, restore=r == 0) for g in manager.groups]
            else:  # every group due at once, on a pool of this size
                manager.executor.shutdown()
                manager.workers = pools[r - rounds]
                manager.executor = ThreadPoolExecutor(manager.workers)
                runs = await asyncio.gather(*(manager.evaluate(g, now) for g in manager.groups))
            out.append(Round(runs, time.perf_counter() - t0, manager.cache.misses - before))
            out[-1].workers = manager.workers
        return out[:rounds], out[rounds:]
    finally:
        await heron.stop()


def prometheus_bench(tmp: Path, rule_file: Path, data: list[tuple[dict[str, str], np.ndarray]],
                     ts: np.ndarray, reads: int = 3) -> tuple[float, float] | None:
    import cramjam
    import httpx

    from heron.metrics.proto import remote_pb2

    binary = shutil.which("prometheus")
    if not binary:
        return None
    port = free_port()
    conf = tmp / "prometheus.yml"
    conf.write_text(yaml.safe_dump({"global": {"evaluation_interval": f"{INTERVAL_S}s"},
                                    "rule_files": [str(rule_file)]}))
    proc = subprocess.Popen([binary, f"--config.file={conf}", f"--storage.tsdb.path={tmp / 'prom'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--web.enable-remote-write-receiver",
                             "--log.level=error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        for i in range(0, len(data), 500):
            req = remote_pb2.WriteRequest()
            for s, v in data[i:i + 500]:
                t = req.timeseries.add()
                for k in sorted(s):
                    t.labels.add(name=k, value=s[k])
                for when, x in zip(ts, v, strict=True):
                    t.samples.add(value=float(x), timestamp=int(when))
            body = bytes(cramjam.snappy.compress_raw(req.SerializeToString()))
            r = httpx.post(url + "/api/v1/write", content=body, timeout=30,
                           headers={"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
                                    "X-Prometheus-Remote-Write-Version": "0.1.0"})
            r.raise_for_status()
        time.sleep(2 * INTERVAL_S + 2)  # two evaluations of every group
        best: tuple[float, float] | None = None
        for i in range(reads):  # the best interval, as for Heron (the machine is shared)
            if i:
                time.sleep(INTERVAL_S)
            text = httpx.get(url + "/metrics").text
            durs = [float(line.split()[-1]) for line in text.splitlines()
                    if line.startswith("prometheus_rule_group_last_duration_seconds{")]
            print(f"  prometheus interval {i + 1}: sum of group durations {sum(durs):.3f} s")
            if best is None or sum(durs) < best[0]:
                best = (sum(durs), max(durs))
        return best
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--groups", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-prometheus", action="store_true")
    ap.add_argument("--pools", default=str(default_workers()),
                    help="comma-separated rules pool sizes for the all-groups-at-once rounds")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="heron-bench-rules-"))
    try:
        rule_file = tmp / "rules.yml"
        rule_file.write_text(yaml.safe_dump(rules(args.rules, args.groups), sort_keys=False))
        now = int(time.time() * 1000) // 1000 * 1000
        ts = np.arange(now - HISTORY_S * 1000, now + 1, INTERVAL_S * 1000, dtype=np.int64)
        rng = np.random.default_rng(7)
        data = [(s, values(s, len(ts), rng)) for s in series()]
        print(f"{len(data)} series x {len(ts)} samples, {args.rules} rules in {args.groups} groups, "
              f"interval {INTERVAL_S}s")
        print(f"load average before: {os.getloadavg()[0]:.2f} (2-core machine shared with others)")
        pools = [int(x) for x in args.pools.split(",")]
        rounds, together = asyncio.run(heron_bench(tmp, rule_file, data, ts, args.rounds, pools))
        print(f"{'heron round':<14} {'sum of groups (s)':>17} {'share of 15s':>13} {'queries (s)':>12} "
              f"{'rule loop (s)':>14} {'write (s)':>10} {'PromQL':>7} {'run':>5} {'SQL':>5}")
        for i, r in enumerate(rounds):
            name = f"{i + 1}" + (" (restore)" if i == 0 else "")
            print(f"{name:<14} {r.total:>17.3f} {r.total / INTERVAL_S:>12.1%} {r.query:>12.3f} "
                  f"{r.overhead:>14.3f} {r.write:>10.3f} {r.queries:>7} {r.executed:>5} {r.statements:>5}")
        best = min(rounds[1:] or rounds, key=lambda r: r.total).total
        for t in together:
            print(f"all groups at once on a rules pool of {t.workers} threads: {t.wall:.3f} s wall "
                  f"({t.wall / INTERVAL_S:.1%} of 15s), sum of group durations {t.total:.3f} s")
        print(f"{'engine':<12} {'eval/interval (s)':>18} {'share of 15s':>13} {'slowest group (s)':>18}")
        print(f"{'heron':<12} {best:>18.3f} {best / INTERVAL_S:>12.1%} {'':>18}   (best round after the first)")
        if not args.no_prometheus:
            prom = prometheus_bench(tmp, rule_file, data, ts, args.rounds - 1 or 1)
            if prom is None:
                print("prometheus: binary not found")
            else:
                total, slowest = prom
                print(f"{'prometheus':<12} {total:>18.3f} {total / INTERVAL_S:>12.1%} {slowest:>18.3f}"
                      "   (sum of group durations, best interval)")
                print(f"ratio heron / prometheus: {best / total:.1f}x")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
