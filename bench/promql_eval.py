"""PromQL evaluator cost on in-memory data: everything after the fetch, apart from storage.

    python bench/promql_eval.py [--series 10000] [--rounds 3] [--steps 15,60] [--profile N] [--src DIR]

The data of bench/promql.py (tests/promql/peer.py's web backend, one sample every 15 s over
2 h 10 min) is held in memory; selectors are answered from it as `fetch.Selection`s (the shape
the in-memory head hands the evaluator) and cached, so the timings are evaluation (with
pushdown off) plus building the API's JSON body, nothing of chDB. Also times the instant rule
templates of bench/rules.py, the per-query overhead a rule loop pays.
"""

from __future__ import annotations

import argparse
import ast
import math
import re
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
if "--src" in sys.argv:  # another checkout's heron (e.g. `git archive` of an older commit): before/after
    sys.path.insert(0, sys.argv[sys.argv.index("--src") + 1])

from tests.promql.peer import web_backend_data  # noqa: E402

from heron.promql import engine as engine_mod  # noqa: E402
from heron.promql.engine import Engine  # noqa: E402
from heron.promql.fetch import Matcher, Selection  # noqa: E402


def _bench_queries() -> list[str]:
    """bench/promql.py's QUERIES, read without importing it (it imports heron from this tree)."""
    tree = ast.parse((ROOT / "bench" / "promql.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "QUERIES":
            return list(ast.literal_eval(node.value))
    raise RuntimeError("QUERIES not found in bench/promql.py")


QUERIES = _bench_queries()
RULES = [
    'sum by (job, instance) (rate(http_requests_total{job="svc1"}[5m]))',
    'sum by (job) (rate(http_requests_total{job="svc1",code=~"5.."}[5m])) / '
    'sum by (job) (rate(http_requests_total{job="svc1"}[5m]))',
    'histogram_quantile(0.95, sum by (job, le) (rate(http_request_duration_seconds_bucket{job="svc1"}[5m])))',
    'avg by (job) (up{job="svc1"})',
    'up{job="svc1"} == 0',
    'sum by (job) (rate(http_requests_total{job="svc1",code="500"}[5m])) / '
    'sum by (job) (rate(http_requests_total{job="svc1"}[5m])) > 0.5',
    '1 - process_resident_memory_bytes{job="svc1"} / 1e9 > 0.9',
]


class MemoryData:
    """Series held as numpy arrays; `select` answers matchers like heron.promql.fetch.select."""

    def __init__(self, data: list[tuple[Any, np.ndarray, np.ndarray]]) -> None:
        order = sorted(range(len(data)), key=lambda i: data[i][0])
        self.labels = [data[i][0] for i in order]
        self.dicts = [dict(lb) for lb in self.labels]
        self.ts = [data[i][1] for i in order]
        self.vals = [data[i][2] for i in order]
        self.cache: dict[tuple[str, int, int], Selection] = {}
        self.fetch_s = 0.0

    def _match(self, d: dict[str, str], m: Matcher) -> bool:
        v = d.get(m.name, "")
        if m.op == "=":
            return v == m.value
        if m.op == "!=":
            return v != m.value
        hit = re.fullmatch("(?s:" + m.value + ")", v) is not None
        return hit if m.op == "=~" else not hit

    def select(self, storage: Any, groups: list[list[Matcher]], mint: int, maxt: int,
               max_samples: int | None = None, head: Any = None) -> Selection:
        key = (repr(groups), mint, maxt)
        if key in self.cache:
            return self.cache[key]
        t0 = time.perf_counter()
        idx = [i for i, d in enumerate(self.dicts) if any(all(self._match(d, m) for m in g) for g in groups)]
        ts_parts, v_parts, counts = [], [], []
        for i in idx:
            a, b = np.searchsorted(self.ts[i], [mint, maxt + 1])
            ts_parts.append(self.ts[i][a:b])
            v_parts.append(self.vals[i][a:b])
            counts.append(b - a)
        starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)
        sel = Selection([self.labels[i] for i in idx],
                        np.concatenate(ts_parts) if idx else np.empty(0, np.int64),
                        np.concatenate(v_parts) if idx else np.empty(0), starts, mint, maxt)
        self.cache[key] = sel
        self.fetch_s += time.perf_counter() - t0
        return sel


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def encode(res: Any) -> bytes:
    """The body /api/v1/query(_range) sends."""
    try:
        from heron.promql.encode import query_body
    except ImportError:  # before the array encoder: the API's JSONResponse
        from heron.api.prometheus import _reply

        return bytes(_reply(res).body)
    return query_body(res, grid=res.grid_ms)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", default="15,60")
    ap.add_argument("--profile", type=int, default=-1, help="cProfile query number N (0-based)")
    ap.add_argument("--src", help="import heron from this src directory instead (before/after runs)")
    args = ap.parse_args()

    per_pair = 17
    pairs = max(1, args.series // per_pair)
    services = max(1, int(math.sqrt(pairs / 1.5)))
    instances = max(1, pairs // services)
    now = 1_800_000_000 // 60 * 60
    base_ms = (now - 2 * 3600 - 600) * 1000
    mem = MemoryData(web_backend_data(base_ms, minutes=130, services=services, instances=instances))
    n_samples = sum(len(t) for t in mem.ts)
    print(f"data: {len(mem.labels)} series, {n_samples} samples in memory; "
          f"load average {loadavg()}")
    engine_mod.select = mem.select  # type: ignore[assignment]
    eng = Engine(None, pushdown=False)  # type: ignore[arg-type]
    print(f"engine: {engine_mod.__file__}")
    start, end = now - 2 * 3600 + 7, now + 7

    if args.profile >= 0:
        import cProfile
        import pstats

        q = QUERIES[args.profile]
        step = int(args.steps.split(",")[0])
        encode(eng.range(q, start, end, step))
        prof = cProfile.Profile(time.process_time)
        prof.enable()
        encode(eng.range(q, start, end, step))
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        return

    print(f"\nquery_range over 2h, evaluation + JSON body: median CPU time of {args.rounds} rounds (ms; "
          "CPU rather than wall time, the machine is shared)")
    print(f"{'step':>4} {'eval':>8} {'json':>8} {'total':>8} {'points':>9}  query")
    logs = []
    for step in [int(s) for s in args.steps.split(",")]:
        for q in QUERIES:
            encode(eng.range(q, start, end, step))  # warm-up, fills the selection cache
            ev_t, js_t, tot = [], [], []
            points = 0
            for _ in range(args.rounds):
                t0 = time.process_time()
                res = eng.range(q, start, end, step)
                t1 = time.process_time()
                encode(res)
                t2 = time.process_time()
                ev_t.append(t1 - t0)
                js_t.append(t2 - t1)
                tot.append(t2 - t0)
                points = sum(len(s.points) for s in res.matrix)
            m = statistics.median(tot) * 1000
            logs.append(math.log(m))
            print(f"{step:>4} {statistics.median(ev_t) * 1000:8.1f} {statistics.median(js_t) * 1000:8.1f} "
                  f"{m:8.1f} {points:9d}  {q[:80]}")
    print(f"\ngeometric mean of totals: {math.exp(sum(logs) / len(logs)):.1f} ms")

    print(f"\ninstant queries (rule templates), median CPU time of {max(args.rounds, 20)} (ms)")
    for q in RULES:
        eng.instant(q, end)
        xs = []
        for _ in range(max(args.rounds, 20)):
            t0 = time.process_time()
            eng.instant(q, end)
            xs.append(time.process_time() - t0)
        print(f"     {statistics.median(xs) * 1000:8.2f}  {q[:90]}")
    t0 = time.process_time()
    for _ in range(200):
        eng.instant("1 + 1", end)
    print(f"     {(time.process_time() - t0) / 200 * 1000:8.3f}  1 + 1 (fixed per-query overhead)")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"\nin-memory fetch (not in the timings): {mem.fetch_s:.1f} s; peak RSS {rss / 1024:.0f} MiB; "
          f"load average {loadavg()}")


if __name__ == "__main__":
    main()
