"""After seconds of quiet, who pays? Two identical Herons (A, B) and Prometheus (P), one round each.

    python bench/remote_write_idle.py [--idle 9] [--series 10000] [--runs 2] [--before none ping other]

What bench/remote_write.py's `--no-ping` is about. All three receivers start and take the same
warm-up; after `--idle` seconds of quiet, each gets `--series` new series (2000 per request,
concurrency 4), 3.5 s apart, in the order A, B, P. Printed per receiver: wall ms, samples/s and its
threads' CPU (schedstat, ms) and minor faults over the round and 0.5 s after. `--before` says what
happens right before each receiver's round: `none`; `ping` (one request of 100 known series to
that receiver, what bench/remote_write.py does); `other` (the same request to the receiver sent
to after it, so A's own process stays cold). A and B run the same code: a gap between them is
the machine, not Heron.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import remote_write as rw  # bench/remote_write.py

from heron.testing import HeronProcess


def threads(pid: int) -> tuple[float, int]:
    """CPU ms (schedstat, ns resolution) and minor faults over the process' threads."""
    cpu, faults = 0.0, 0
    for st in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            faults += int(st.read_text().rsplit(")", 1)[1].split()[7])
            cpu += int((st.parent / "schedstat").read_text().split()[0]) / 1e6
        except OSError:
            continue
    return cpu, faults


def run(args: argparse.Namespace, before: str) -> None:
    now = int(time.time() * 1000) - 3_600_000
    bodies = rw.payloads(args.series, 2000, now)
    warm = rw.payloads(100, 100, now - 60_000, job="warmup")
    config = {"self_scrape": False, "limits": {"metrics": {"max_series": 0, "max_series_per_metric": 0}}}
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(HeronProcess(config=config))
        b = stack.enter_context(HeronProcess(config=config))
        p = stack.enter_context(rw.Prometheus())
        assert a.proc is not None and b.proc is not None
        targets = [("A", a.url + "/api/v1/write", a.headers, a.proc.pid),
                   ("B", b.url + "/api/v1/write", b.headers, b.proc.pid),
                   ("P", f"http://127.0.0.1:{p.port}/api/v1/write", {}, p.proc.pid)]
        for _, url, headers, _ in targets:
            asyncio.run(rw.send(url, headers, warm, 1))
        time.sleep(args.idle)
        for i, (name, url, headers, pid) in enumerate(targets):
            if before == "ping":
                asyncio.run(rw.send(url, headers, warm, 1))
            elif before == "other":
                _, o_url, o_headers, _ = targets[(i + 1) % len(targets)]
                asyncio.run(rw.send(o_url, o_headers, warm, 1))
            cpu0, faults0 = threads(pid)
            wall = asyncio.run(rw.send(url, headers, bodies, 4))
            time.sleep(0.5)
            cpu1, faults1 = threads(pid)
            print(f"{before:>6} {name:>3} {wall * 1000:8.0f} {args.series / wall:12,.0f} {cpu1 - cpu0:8.0f} "
                  f"{faults1 - faults0:8d}", flush=True)
            time.sleep(3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--idle", type=float, default=9.0, help="seconds of quiet before the first round")
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--before", nargs="+", default=["none", "ping", "other"], choices=["none", "ping", "other"])
    args = ap.parse_args()
    print(f"load average at start: {Path('/proc/loadavg').read_text().split()[:3]}; idle {args.idle} s")
    print(f"{'before':>6} {'rcv':>3} {'wall ms':>8} {'samples/s':>12} {'cpu ms':>8} {'minflt':>8}")
    for _ in range(args.runs):
        for before in args.before:
            run(args, before)
    print(f"load average at end: {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()
