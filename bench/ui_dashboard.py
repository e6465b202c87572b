"""A 12-panel dashboard over 6 h of 10k series: navigation → all panels drawn, in headless Chromium.

    python bench/ui_dashboard.py [--series 10000] [--hours 6] [--scrape 30] [--runs 5] [--cold 3] [--no-prometheus]

Data: the web-backend series of tests/promql/peer.py (request counters, latency histograms, memory
and up gauges), one sample every --scrape seconds over --hours, written straight into Heron's
tables and into a real Prometheus' TSDB (promtool). The dashboard (8 time series, 2 stat with
sparklines, a gauge and a bar gauge; Grafana JSON with $__rate_interval) is imported through the
dashboards API and opened in Debian's Chromium at 1600×1000; the time is measured from
navigation start to the moment the page reports every panel drawn (window.heronDashboard.drawnAt).

Runs, in this order, each a full page navigation:
- initial: the first load after start, not counted (its requests are the ones replayed below);
- warm, new range: --runs loads, each with the range moved back by 2 min (a range never asked
  before, so no results cache answers: every panel query is evaluated by the engine; browser and
  server processes warm). The engine's step cache (heron.promql.stepcache) still has the window
  ends the previous loads evaluated, so only the 2 new minutes of each rate are computed;
  --no-step-cache turns it off to measure a full evaluation;
- warm, same range: --runs reloads of one range asked just before: the panel queries are answered
  by Heron's query_range results cache (ui.query_cache, TTL 60 s for ranges ending > 5 min ago);
- warm, refresh of "Last 6 h": the dashboard on now-6h (loaded once to prime), reloaded --runs
  times 11 s apart (past the 10 s TTL of recent ranges): each panel query reuses the steps of the
  previous reply older than 5 min and evaluates the rest (heron.ui.extents), like an auto-refresh.
  The bench data ends when it was generated, so the newest minutes of that range hold no samples.
- cold, --cold times, last: the first load after a start (Heron restarted on the same data, a
  new browser context with an empty cache, logged in; once Heron's start-up warm-up
  (heron.ui.warmup) is done, and 2 s more), each on a range of its own, older than the others.

Peer: Grafana is not installable here, so the side-by-side is the data path: the exact query
requests the page sent (same expr, range, step) replayed 6 at a time, as Chromium does, against
Heron's (POST: never cached) and Prometheus' /api/v1/query_range; printed with the ratio.
Heron's own CPU time and page faults per load (from /proc) are printed for cold and warm loads:
they vary far less than times do on a shared machine.
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.promql import LOADER  # noqa: E402  (same loader: data straight into Heron's tables)
from tests.promql.peer import PrometheusProcess, web_backend_data  # noqa: E402
from tests.ui.helpers import launch, login  # noqa: E402

from heron.testing import HeronProcess  # noqa: E402

RI = "$__rate_interval"
PANELS: list[tuple[str, str, str]] = [
    ("timeseries", "Requests / s by job", f"sum by (job) (rate(http_requests_total[{RI}]))"),
    ("timeseries", "Error ratio by job", f'sum by (job) (rate(http_requests_total{{code=~"5.."}}[{RI}])) / '
                                         f"sum by (job) (rate(http_requests_total[{RI}]))"),
    ("timeseries", "p99 latency by job", "histogram_quantile(0.99, sum by (job, le) "
                                         f"(rate(http_request_duration_seconds_bucket[{RI}])))"),
    ("timeseries", "Top 5 instances", f"topk(5, sum by (instance) (rate(http_requests_total[{RI}])))"),
    ("timeseries", "Memory by job", "avg by (job) (process_resident_memory_bytes)"),
    ("timeseries", "Requests / s by code", f"sum by (code) (rate(http_requests_total[{RI}]))"),
    ("timeseries", "Mean latency by job", f"sum by (job) (rate(http_request_duration_seconds_sum[{RI}])) / "
                                          f"sum by (job) (rate(http_request_duration_seconds_count[{RI}]))"),
    ("timeseries", "Instances up", "count by (job) (up == 1)"),
    ("stat", "Requests / s", "sum(rate(http_requests_total[5m]))"),
    ("stat", "Error ratio", 'sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))'),
    ("gauge", "p95 latency", "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"),
    ("bargauge", "Requests / s per job", "sum by (job) (rate(http_requests_total[5m]))"),
]



def dashboard() -> dict[str, Any]:
    panels = []
    for i, (kind, title, expr) in enumerate(PANELS):
        w = 12 if kind == "timeseries" else 6
        panels.append({"type": kind, "title": title, "gridPos": {"w": w, "h": 8 if kind == "timeseries" else 5},
                       "targets": [{"expr": expr, "refId": "A", "legendFormat": "{{job}}"}],
                       "fieldConfig": {"defaults": {"unit": "short"}}, "id": i + 1})
    return {"uid": "bench-12", "title": "Bench: 12 panels", "time": {"from": "now-6h", "to": "now"},
            "refresh": "", "panels": panels}


FIRST_QUERY = ("() => Math.min(...performance.getEntriesByType('resource')"
               ".filter(e => e.name.includes('/api/v1/query')).map(e => e.startTime))")
LAST_RESPONSE = ("() => performance.getEntriesByType('resource').filter(e => e.name.includes('/api/v1/'))"
                 ".reduce((m, e) => Math.max(m, e.responseEnd), 0)")


QUERIES = ("() => performance.getEntriesByType('resource').map(e => e.name)"
           ".filter(n => n.includes('/api/v1/query'))")


def proc_cost(pid: int) -> tuple[float, int]:
    """(user + system CPU seconds, minor page faults) of a process so far."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK, int(f[7])


TICK = os.sysconf("SC_CLK_TCK")
WARMED = "ui warm-up:"  # heron.ui.warmup logs this when done


def wait_warm(heron: HeronProcess, before: int, timeout: float = 20) -> None:
    """Until Heron's start-up warm-up logged that it is done (or `timeout`)."""
    deadline = time.monotonic() + timeout
    while heron.log().count(WARMED) <= before and time.monotonic() < deadline:
        time.sleep(0.1)


def browser_runs(heron: HeronProcess, runs: int, colds: int, start: float, end: float) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {"cold": [], "new": [], "same": [], "refresh": [], "first": [], "overhead": [],
                           "queries": [], "tags": [], "cpu_cold": [], "cpu_new": [], "flt_cold": [], "flt_new": []}
    with sync_playwright() as p:
        browser = launch(p)
        tags: list[str] = []
        page = None
        # "initial": the first load (not counted, it is a cold one), on the latest range (a later start
        # than every "new" range, so Heron's extents cannot serve those). cold, last: Heron
        # restarted (its warm-up done) and a new browser context (empty cache) each time.
        plan = [("initial", 0)] + [("new", k) for k in range(1, runs + 1)] + [("same", runs)] * runs + \
            [("prime", 0)] + [("refresh", 0)] * runs + [("cold", runs + 1 + k) for k in range(colds)]
        for kind, shift in plan:
            if kind in ("cold", "initial"):
                if page is not None:
                    page.context.close()
                    heron.stop()
                    warmed = heron.log().count(WARMED)
                    heron.start()
                    wait_warm(heron, warmed)
                time.sleep(2)  # what a person takes to open a dashboard after a start
                page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
                login(page, heron.url, heron.token)
                page.on("response", lambda r: tags.append(r.headers.get("x-heron-cache", "?"))
                        if "/api/v1/query" in r.url else None)
            assert page is not None and heron.proc is not None
            s, e = start - 120 * shift, end - 120 * shift
            tags.clear()
            if kind == "refresh":
                time.sleep(11)  # past the 10 s TTL of recent ranges: what an auto-refresh finds
            url = f"/d/bench-12?from={s * 1000:.0f}&to={e * 1000:.0f}&refresh="
            cpu0 = proc_cost(heron.proc.pid)
            page.goto(heron.url + (url if kind not in ("prime", "refresh") else "/d/bench-12?from=now-6h&to=now&refresh="))
            page.wait_for_function("() => window.heronDashboard && window.heronDashboard.drawnAt !== null",
                                   timeout=180_000)
            cpu1 = proc_cost(heron.proc.pid)
            t = page.evaluate("window.heronDashboard.drawnAt") / 1000
            out.setdefault(kind, []).append(t)
            out["tags"].append(f"{kind}: " + ",".join(sorted(tags)))
            if kind in ("cold", "new"):
                out["overhead"].append(t - page.evaluate(LAST_RESPONSE) / 1000)
                out["first"].append(page.evaluate(FIRST_QUERY) / 1000)
                out[f"cpu_{kind}"].append(cpu1[0] - cpu0[0])
                out[f"flt_{kind}"].append(cpu1[1] - cpu0[1])
            if kind == "initial":
                out["queries"] = page.evaluate(QUERIES)
                out["states"] = page.locator("[data-panel]").evaluate_all("els => els.map(e => e.dataset.state)")
            print(f"  browser {kind:>7} run: {t:.3f} s  heron CPU {cpu1[0] - cpu0[0]:.2f} s, {cpu1[1] - cpu0[1]} "
                  f"page faults  X-Heron-Cache: {','.join(sorted(tags))}  load {os.getloadavg()[0]:.1f}", flush=True)
        browser.close()
    return out


def api_phase(url: str, headers: dict[str, str], queries: list[str], shift: float = 0.0) -> float:
    """The page's own query requests, 6 concurrently (Chromium's per-host limit), by POST,
    with start/end/time moved back by `shift` seconds."""
    def one(q: str) -> None:
        path, _, qs = q.partition("?")
        data = {k: (str(float(v) - shift) if k in ("start", "end", "time") else v) for k, v in parse_qsl(qs)}
        r = httpx.post(url + path[path.index("/api/v1/"):], headers=headers, timeout=300, data=data)
        if r.json().get("status") != "success":
            raise RuntimeError(f"{url}: {qs}: {r.text[:300]}")

    t = time.perf_counter()
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(one, queries))
    return time.perf_counter() - t


def old_ui_queries(start: float, end: float) -> list[str]:
    """What the previous UI sent for the same dashboard: step 30 s for every time series (one
    point per pixel, Grafana's choice), stat/gauge/bar gauge as instant queries at the range end."""
    out = []
    for kind, _, expr in PANELS:
        if kind == "timeseries":
            q = urlencode({"query": expr.replace(RI, "60s"), "start": str(start), "end": str(end), "step": "30"})
            out.append("/api/v1/query_range?" + q)
        else:
            out.append("/api/v1/query?" + urlencode({"query": expr, "time": str(end)}))
    return out


def _row(name: str, xs: list[float], note: str = "", scale: float = 1.0, fmt: str = ".3f") -> str:
    if not xs:
        return f"{name:34}{'-':>10}"
    cells = [statistics.median(xs), min(xs), max(xs)]
    return f"{name:34}" + "".join(f"{x * scale:10{fmt}}" for x in cells) + f"   {note}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--hours", type=float, default=6)
    ap.add_argument("--scrape", type=int, default=30)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cold", type=int, default=3, help="cold samples: Heron restarted, empty browser cache")
    ap.add_argument("--no-prometheus", action="store_true")
    ap.add_argument("--no-step-cache", action="store_true",
                    help="ui.query_cache.steps_mb: 0 (the engine's per-step cache of rate & co. off)")
    args = ap.parse_args()

    per_pair = 17
    pairs = max(1, args.series // per_pair)
    services = max(1, int(math.sqrt(pairs / 1.5)))
    instances = max(1, pairs // services)
    now = int(time.time()) // 60 * 60
    minutes = int(args.hours * 60) + 10
    base_ms = (now - minutes * 60) * 1000
    t0 = time.time()
    data = web_backend_data(base_ms, minutes=minutes, scrape_s=args.scrape, services=services, instances=instances)
    n_series, n_samples = len(data), sum(len(t) for _, t, _ in data)
    print(f"data: {n_series} series, {n_samples} samples over {args.hours:g} h (generated in {time.time() - t0:.1f}s)",
          flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="heron-bench-ui-"))
    with (tmp / "data.pkl").open("wb") as f:
        pickle.dump(data, f)
    t0 = time.time()
    subprocess.run([sys.executable, "-c", LOADER.format(src=str(ROOT / "src"), pkl=str(tmp / "data.pkl"),
                                                        dd=str(tmp / "heron"))], check=True)
    print(f"heron: loaded in {time.time() - t0:.1f}s", flush=True)
    prom = None
    if not args.no_prometheus:
        t0 = time.time()
        prom = PrometheusProcess(data).start()
        print(f"prometheus: blocks built and started in {time.time() - t0:.1f}s", flush=True)
    del data
    heron = HeronProcess(data_dir=tmp / "heron", config={"ui": {"query_cache": {"steps_mb": 0}}}
                         if args.no_step_cache else None).start()
    try:
        r = httpx.post(heron.url + "/api/heron/dashboards", json=dashboard(), headers=heron.headers, timeout=30)
        r.raise_for_status()
        # The data ends at `now` (when it was generated): a fixed range ending there, so that the
        # stat panels' [5m] windows hold samples however long the loading took.
        end = float(now)
        start = end - args.hours * 3600
        load0 = Path("/proc/loadavg").read_text().split()[:3]
        res = browser_runs(heron, args.runs, args.cold, start, end)
        queries = res["queries"]
        api: dict[str, list[float]] = {"heron": [], "prometheus": [], "heron_old": [], "prometheus_old": []}
        old = old_ui_queries(start, end)
        for k in range(args.runs):
            # each run 7 s further back (off the 60/120 s steps): no window end was evaluated
            # before, so neither Heron's step cache nor anything else answers from memory
            shift = 7.0 * (k + 1)
            api["heron"].append(api_phase(heron.url, heron.headers, queries, shift))
            api["heron_old"].append(api_phase(heron.url, heron.headers, old, shift))
            if prom:
                api["prometheus"].append(api_phase(prom.url, {}, queries, shift))
                api["prometheus_old"].append(api_phase(prom.url, {}, old, shift))
            print(f"  api run {len(api['heron'])}: heron {api['heron'][-1]:.3f} s (previous UI's requests "
                  f"{api['heron_old'][-1]:.3f} s)" + (f", prometheus {api['prometheus'][-1]:.3f} s (previous UI's "
                                                       f"requests {api['prometheus_old'][-1]:.3f} s)" if prom else ""),
                  flush=True)
        load1 = Path("/proc/loadavg").read_text().split()[:3]
    finally:
        heron.stop()
        if prom:
            prom.stop()

    states = res["states"]
    done = sum(1 for s in states if s == "done")
    steps = sorted({dict(parse_qsl(q.partition("?")[2])).get("step", "instant") for q in queries})
    print(f"\n12-panel dashboard, {n_series} series, last {args.hours:g} h, Chromium headless 1600x1000")
    print(f"load average before/after: {' '.join(load0)} / {' '.join(load1)} (2 cores, shared)")
    print(f"panels drawn: {done}/{len(states)} (states: {', '.join(sorted(set(states)))}); "
          f"{len(queries)} distinct query requests; steps (s): {', '.join(steps)}")
    print(f"{'':34}{'median':>10}{'min':>10}{'max':>10}")
    print(_row("cold: navigation -> all drawn (s)", res["cold"], "goal < 1.5 s: " +
               ("met" if statistics.median(res["cold"]) < 1.5 else "NOT met") + f" ({len(res['cold'])} restarts)"))
    print(_row("warm, new range (s)", res["new"], "goal < 1.5 s: " +
               ("met" if res["new"] and statistics.median(res["new"]) < 1.5 else "NOT met") +
               (" (engine evaluates all)" if args.no_step_cache else " (engine; step cache on)")))
    print(_row("warm, same range (s)", res["same"], "goal < 1.5 s: " +
               ("met" if statistics.median(res["same"]) < 1.5 else "NOT met") + " (query results cache)"))
    print(_row("warm, refresh of 'Last 6 h' (s)", res["refresh"], "goal < 1.5 s: " +
               ("met" if statistics.median(res["refresh"]) < 1.5 else "NOT met") +
               " (11 s later: stored steps + the last 5 min evaluated)"))
    print(_row("navigation -> 1st query (ms)", res["first"], "page, scripts, dashboard JSON", 1000, ".0f"))
    print(_row("last response -> drawn (ms)", res["overhead"], "the UI's own share", 1000, ".0f"))
    print(_row("heron CPU per load, cold (s)", res["cpu_cold"], "user + system, whole process"))
    print(_row("heron CPU per load, new range (s)", res["cpu_new"]))
    print(_row("page faults per load, cold (k)", res["flt_cold"], "", 1e-3, ".1f"))
    print(_row("page faults per load, new range (k)", res["flt_new"], "", 1e-3, ".1f"))
    print(_row("page's queries, API only (s)", api["heron"], "heron (POST, every window end new)"))
    print(_row("previous UI's requests (s)", api["heron_old"], "heron: step 30 s, instant stats"))
    if api["prometheus"]:
        print(_row("page's queries (s)", api["prometheus"], "prometheus"))
        print(_row("previous UI's requests (s)", api["prometheus_old"], "prometheus"))
        hm, pm = statistics.median(api["heron"]), statistics.median(api["prometheus"])
        print(f"ratio heron/prometheus (API phase, median): {hm / pm:.2f}")


if __name__ == "__main__":
    main()
