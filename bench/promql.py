"""PromQL query_range latency: Heron next to the real Prometheus, same data, same queries.

    python bench/promql.py [--series 10000] [--rounds 5] [--steps 15,60] [--no-prometheus] [--sql-too]

Data: a web backend's metrics (request counters with resets, latency histograms, memory and up
gauges; tests/promql/peer.py), ~17 series per (service, instance), one sample every 15 s over the
last 2 h, written straight into Heron's tables (a loader subprocess) and into Prometheus' TSDB
(promtool tsdb create-blocks-from openmetrics). Both servers run as their own processes on
loopback; every query runs as /api/v1/query_range over the 2 h at each step, once to warm up
and then --rounds times. Prints median and p95 per query and engine, the ratio, the geometric
mean of the medians, and the peak RSS (VmHWM) of both processes. Heron answers from its in-memory
head (the data is inside `storage.head_window`); `--sql-too` also runs a second Heron with the
head off (`head_window: 0`, every read from chDB) on the same data (loaded twice), for a
before/after column. Engines are interleaved per query: load drift on a shared box hits all alike.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.promql.peer import PrometheusProcess, web_backend_data  # noqa: E402

from heron.testing import HeronProcess  # noqa: E402

QUERIES = [
    "sum by (job) (rate(http_requests_total[5m]))",
    'sum by (job) (rate(http_requests_total{code=~"5.."}[5m])) / sum by (job) (rate(http_requests_total[5m]))',
    "histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket[5m])))",
    "topk(5, sum by (instance) (rate(http_requests_total[5m])))",
    "avg_over_time(process_resident_memory_bytes[10m])",
    "max_over_time(rate(http_requests_total[5m])[30m:1m])",
    "sum by (job) (increase(http_requests_total[1h] offset 30m))",
    "rate(http_request_duration_seconds_sum[5m]) / rate(http_request_duration_seconds_count[5m])",
    'absent(up{job="nope"})',
    "count by (job) (up == 1)",
]

LOADER = """
import sys, pickle
sys.path.insert(0, {src!r})
from heron.config import build_config
from heron.server import Heron
from heron.promql.testdata import write_series
data = pickle.load(open({pkl!r}, 'rb'))
h = Heron(build_config({{'storage': {{'data_dir': {dd!r}}}}}, environ={{}}))
write_series(h.storage, data)
h.storage.command('OPTIMIZE TABLE `' + h.storage.database + '`.metric_samples FINAL')
"""


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def timed(client: httpx.Client, url: str, params: dict[str, str], headers: dict[str, str]) -> float:
    t = time.perf_counter()
    r = client.post(url + "/api/v1/query_range", data=params, headers=headers)
    dt = time.perf_counter() - t
    body = r.json()
    if body.get("status") != "success":
        raise RuntimeError(f"{url}: {params['query']}: {body.get('error')}")
    return dt


def p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, math.ceil(0.95 * len(s)) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", default="15,60")
    ap.add_argument("--no-prometheus", action="store_true")
    ap.add_argument("--sql-too", action="store_true", help="also time Heron without its in-memory head")
    ap.add_argument("--step-cache", action="store_true",
                    help="keep Heron's step cache on (every round after the first then reads it)")
    args = ap.parse_args()

    per_pair = 17  # series per (service, instance) in web_backend_data
    pairs = max(1, args.series // per_pair)
    services = max(1, int(math.sqrt(pairs / 1.5)))
    instances = max(1, pairs // services)
    now = int(time.time()) // 60 * 60
    base_ms = (now - 2 * 3600 - 600) * 1000
    t0 = time.time()
    data = web_backend_data(base_ms, minutes=130, services=services, instances=instances)
    n_series, n_samples = len(data), sum(len(t) for _, t, _ in data)
    print(f"data: {n_series} series, {n_samples} samples (generated in {time.time() - t0:.1f}s)")

    tmp = Path(tempfile.mkdtemp(prefix="heron-bench-promql-"))
    import pickle

    with (tmp / "data.pkl").open("wb") as f:
        pickle.dump(data, f)
    t0 = time.time()
    for name in ("heron", "heron-sql") if args.sql_too else ("heron",):
        subprocess.run([sys.executable, "-c", LOADER.format(src=str(ROOT / "src"), pkl=str(tmp / "data.pkl"),
                                                            dd=str(tmp / name))], check=True)
    print(f"heron: loaded in {time.time() - t0:.1f}s")
    prom = None
    if not args.no_prometheus:
        t0 = time.time()
        prom = PrometheusProcess(data).start()
        print(f"prometheus: blocks built and started in {time.time() - t0:.1f}s")
    del data
    sql = None
    if args.sql_too:  # the same data loaded twice: a second Heron with the head off
        sql = HeronProcess(data_dir=tmp / "heron-sql", config={"storage": {"head_window": 0}}).start()
    t0 = time.time()
    # Each query repeats the same range: with the step cache (heron.promql.stepcache) every round
    # after the first would read the values it stored, so it is off unless asked for.
    heron = HeronProcess(data_dir=tmp / "heron", config=None if args.step_cache else
                         {"ui": {"query_cache": {"steps_mb": 0}}}).start()
    head = [ln for ln in httpx.get(heron.url + "/metrics", headers=heron.headers).text.splitlines()
            if ln.startswith(("heron_head_samples ", "heron_head_coverage_start_seconds "))]
    print(f"heron: started in {time.time() - t0:.1f}s; " + ", ".join(head))
    start, end = now - 2 * 3600 + 7, now + 7
    rows = []
    engines = [("heron", heron.url, heron.headers)]
    if prom:
        engines.append(("prometheus", prom.url, {}))
    if sql:
        engines.append(("heron-sql", sql.url, sql.headers))
    try:
        with httpx.Client(timeout=300) as client:
            for step in [int(s) for s in args.steps.split(",")]:
                for q in QUERIES:  # engines interleaved per query: load drifts on a shared box
                    params = {"query": q, "start": str(start), "end": str(end), "step": str(step)}
                    res = {}
                    for name, url, hdr in engines:
                        timed(client, url, params, hdr)  # warm-up
                        res[name] = [timed(client, url, params, hdr) for _ in range(args.rounds)]
                    rows.append((step, q, res))
                    print(f"  step {step}: " + ", ".join(f"{k} {statistics.median(v) * 1000:.1f} ms" for k, v in res.items())
                          + f"  {q[:70]}  (load {Path('/proc/loadavg').read_text().split()[0]})", flush=True)
        heron_rss = rss_kb(heron.proc.pid) if heron.proc else 0
        prom_rss = prom.rss_kb() if prom else 0
        sql_rss = rss_kb(sql.proc.pid) if sql and sql.proc else 0
    finally:
        heron.stop()
        if prom:
            prom.stop()
        if sql:
            sql.stop()
        shutil.rmtree(tmp, ignore_errors=True)  # 0.6 GB at 100k series (data pickle + chDB)
    print(f"\nquery_range over 2h, {n_series} series; {args.rounds} rounds after a warm-up; times in ms")
    print(f"{'step':>4} {'heron med':>10} {'p95':>8} {'prom med':>10} {'p95':>8} {'ratio':>7}"
          + (f" {'sql med':>9} {'ratio':>7}" if args.sql_too else "") + "  query")
    logs: list[float] = []
    sql_logs: list[float] = []
    for step, q, res in rows:
        h = res["heron"]
        hm = statistics.median(h) * 1000
        line = f"{step:>4} {hm:10.1f} {p95(h) * 1000:8.1f}"
        pm = 0.0
        if "prometheus" in res:
            p = res["prometheus"]
            pm = statistics.median(p) * 1000
            logs.append(math.log(hm / pm))
            line += f" {pm:10.1f} {p95(p) * 1000:8.1f} {hm / pm:7.2f}"
        if "heron-sql" in res:
            sm = statistics.median(res["heron-sql"]) * 1000
            if pm:
                sql_logs.append(math.log(sm / pm))
            line += f" {sm:9.1f} {sm / pm if pm else 0:7.2f}"
        print(line + "  " + q[:90])
    if logs:
        print(f"\ngeometric mean ratio heron/prometheus (median latency): {math.exp(sum(logs) / len(logs)):.2f}")
    if sql_logs:
        print(f"geometric mean ratio heron without head/prometheus: {math.exp(sum(sql_logs) / len(sql_logs)):.2f}")
    print(f"peak RSS: heron {heron_rss / 1024:.0f} MiB, prometheus {prom_rss / 1024:.0f} MiB"
          + (f", heron without head {sql_rss / 1024:.0f} MiB" if args.sql_too else ""))


if __name__ == "__main__":
    main()
