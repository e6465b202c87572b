"""The in-memory head against chDB for the reads PromQL makes: one selector's samples.

    python bench/head.py [--series 10000] [--hours 6] [--window 3] [--rounds 5]

Data: `--series` counters (a third `http_requests_total`, the rest spread over other names, 10
jobs, 25 instances per job) with one sample every 15 s over the last `--hours`, inserted into a
scratch chDB database; a head with a `--window`-hour window is loaded from it as `heron up` does.
Each selector is read with `promql.fetch.select` (head) and `select_storage` (SQL only) over
(a) the last 2 h, inside the head, and (b) the whole span, straddling the head's coverage start
(storage for the old part, head for the rest). Prints medians, the load time and the head's
memory per sample.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from heron.metrics.head import Head
from heron.metrics.model import labels_from
from heron.promql.fetch import Matcher, select, select_storage
from heron.promql.testdata import write_series
from heron.storage.chdb import ChDBStorage
from heron.storage.schema import migrate

SELECTORS = {
    'http_requests_total': [[Matcher("__name__", "=", "http_requests_total")]],
    'http_requests_total{job="job3"}': [[Matcher("__name__", "=", "http_requests_total"),
                                         Matcher("job", "=", "job3")]],
    'http_requests_total{code=~"5.."}': [[Matcher("__name__", "=", "http_requests_total"),
                                          Matcher("code", "=~", "5..")]],
    '{__name__=~"node_.*", instance!~".*:9"}': [[Matcher("__name__", "=~", "node_.*"),
                                                Matcher("instance", "!~", ".*:9")]],
}


def median_ms(fn: Callable[[], Any], rounds: int) -> float:
    fn()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--hours", type=float, default=6)
    ap.add_argument("--window", type=float, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    now = int(time.time()) * 1000
    start = now - int(args.hours * 3_600_000)
    ts = np.arange(start, now, 15_000, dtype=np.int64)
    rng = np.random.default_rng(1)
    names = ["http_requests_total"] * 3 + ["node_cpu_seconds_total", "node_network_bytes_total",
                                           "process_cpu_seconds_total", "queue_items_total"]
    data = []
    for i in range(args.series):
        lb = labels_from({"__name__": names[i % len(names)], "job": f"job{i % 10}",
                          "instance": f"10.0.{i % 10}.{i // 10 % 25}:{i % 10}",
                          "code": ("200", "500", "404", "503")[i // 250 % 4], "n": str(i)})
        data.append((lb, ts, np.cumsum(rng.poisson(3, len(ts))).astype(np.float64)))
    storage = ChDBStorage(Path(tempfile.mkdtemp(prefix="heron-bench-head-")), "bench_head")
    migrate(storage)
    t0 = time.perf_counter()
    for k in range(0, len(data), 1000):
        write_series(storage, data[k:k + 1000])
    storage.command(f"OPTIMIZE TABLE `{storage.database}`.metric_samples FINAL")
    total = len(ts) * len(data)
    print(f"{len(data)} series x {len(ts)} samples ({total / 1e6:.1f} M) inserted in "
          f"{time.perf_counter() - t0:.1f}s")
    head = Head(int(args.window * 3_600_000), storage=storage)
    t0 = time.perf_counter()
    n = head.load(storage)
    st = head.stats()
    print(f"head ({args.window:g}h): loaded {n / 1e6:.2f} M samples in {time.perf_counter() - t0:.2f}s, "
          f"{st['bytes'] / 2**20:.0f} MiB of sample arrays = {st['bytes'] / max(n, 1):.0f} B/sample; "
          f"coverage from now-{(now - (head.coverage_start or now)) / 3_600_000:.2f}h")
    recent = (now - 2 * 3_600_000, now)
    span = (start, now)
    print(f"\nmedian of {args.rounds} rounds, ms")
    print(f"{'selector':<42} {'samples':>9} {'2h head':>9} {'2h sql':>8} {'ratio':>6} "
          f"{'span head+sql':>14} {'span sql':>9} {'ratio':>6}")
    for text, groups in SELECTORS.items():
        got = select(storage, groups, *recent, head=head)

        def via_head(lo: int, hi: int, g: list[list[Matcher]] = groups) -> Callable[[], Any]:
            return lambda: select(storage, g, lo, hi, head=head)

        def via_sql(lo: int, hi: int, g: list[list[Matcher]] = groups) -> Callable[[], Any]:
            return lambda: select_storage(storage, g, lo, hi)

        h2, s2 = median_ms(via_head(*recent), args.rounds), median_ms(via_sql(*recent), args.rounds)
        hs, ss = median_ms(via_head(*span), args.rounds), median_ms(via_sql(*span), args.rounds)
        print(f"{text:<42} {len(got.ts):>9} {h2:9.1f} {s2:8.1f} {s2 / h2:6.1f} {hs:14.1f} {ss:9.1f} "
              f"{ss / hs:6.2f}")
    head.close()
    storage.command(f"DROP DATABASE IF EXISTS `{storage.database}`")


if __name__ == "__main__":
    main()
