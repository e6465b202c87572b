"""The metrics write path after decoding, in process: CPU per remote-write request.

    python bench/metrics_write_path.py [--series 100000] [--batch 2000] [--rounds 3] [--passes 3]
                                       [--base REV] [--limits default|off]

What `bench/remote_write.py` cannot separate: the CPU that `MetricsWriter.write_limited` spends
under the GIL per request (limits, series ids claimed, tables, the head append), the WAL writer
thread's CPU (encode, fsync), and the garbage collector's pauses. The bench's payloads are decoded
first (not measured), then written one request at a time into a started in-process Heron (real
pipeline, WAL and chDB; the garbage collector frozen after the start as `heron up` does, where
the code has `Head.freeze_gc`): round 1 creates the series, later rounds append to known ones.

Printed per round: the decode's CPU per request (for reference; its objects are what the collector
walks) and the CPU of `write_limited` in the event-loop thread (the GIL-bound part), the WAL writer
thread's CPU per request, GC pause time and collections (by generation), and wall time.
`--base REV` runs the same in a subprocess on another revision (`git worktree` of REV, imported
through PYTHONPATH), alternating passes with the current tree, and prints both plus the ratio
of the medians; `--base-src DIR` does the same with a source tree (e.g. a copy of `src` with
some files as they were, compiled extensions included).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _thread_clock(name: str) -> int | None:
    for t in threading.enumerate():
        if t.name == name and t.ident is not None:
            return time.pthread_getcpuclockid(t.ident)
    return None


async def _run(series: int, batch: int, rounds: int, limits: str) -> dict[str, Any]:
    from heron.config import build_config
    from heron.metrics.limits import limiter_of
    from heron.metrics.remote_write import LabelsCache, decode_write_request
    from heron.server import Heron

    sys.path.insert(0, str(ROOT / "bench"))  # after heron: it puts this tree's src first
    import remote_write as rw

    tmp = Path(tempfile.mkdtemp(prefix="heron-wpath-"))
    data: dict[str, Any] = {"storage": {"data_dir": str(tmp / "data"), "chdb_path": str(tmp / "chdb"),
                                        "database": "wpath"},
                            "auth": {"admin_token": "bench-token"}}
    if limits == "off":
        data["limits"] = {"metrics": {"max_series": 0, "max_series_per_metric": 0}}
    h = Heron(build_config(data, environ={}))  # type: ignore[arg-type]
    await h.start()
    limiter_of(h)
    freeze = getattr(h.head, "freeze_gc", None)
    if freeze is not None:  # as `heron up` does once serving (code that has it)
        freeze()
    writer = h.metrics_writer
    wal_clock = _thread_clock("heron-wal-writer")
    gc_time = [0.0]
    gc_count = [0, 0, 0]
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            gc_time[0] += time.perf_counter() - started[0]
            gc_count[info["generation"]] += 1

    out: dict[str, Any] = {"rounds": []}
    cache = LabelsCache()
    now = int(time.time() * 1000)
    try:
        for r in range(rounds):
            bodies = rw.payloads(series, batch, now - (rounds - r) * 15_000)
            gc.callbacks.append(on_gc)
            gc_time[0], gc_count[:] = 0.0, [0, 0, 0]
            loop_cpu = decode_cpu = 0.0
            wal0 = time.clock_gettime(wal_clock) if wal_clock is not None else 0.0
            t0 = time.perf_counter()
            for b in bodies:  # decoded here too: its objects are what the collector sees
                c0 = time.thread_time()
                d = decode_write_request(b, "snappy", cache)
                c1 = time.thread_time()
                await writer.write_limited(d.series, d.counts, d.ts, d.values, ids=d.ids, flat=d.flat)
                loop_cpu += time.thread_time() - c1
                decode_cpu += c1 - c0
                del d
            wall = time.perf_counter() - t0
            wal = (time.clock_gettime(wal_clock) - wal0) if wal_clock is not None else float("nan")
            gc.callbacks.remove(on_gc)
            n = len(bodies)
            out["rounds"].append({"loop_ms": loop_cpu * 1000 / n, "wal_ms": wal * 1000 / n,
                                  "decode_ms": decode_cpu * 1000 / n,
                                  "gc_ms": gc_time[0] * 1000, "gc": list(gc_count), "wall_ms": wall * 1000})
            del bodies
            await asyncio.get_running_loop().run_in_executor(None, h.pipeline.flush, 120)
        out["series_stored"] = h.storage.execute(
            "SELECT count() AS n FROM (SELECT DISTINCT series_id FROM `wpath`.metric_series)").to_pylist()[0]["n"]
    finally:
        await h.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _pass(series: int, batch: int, rounds: int, limits: str, pythonpath: str | None) -> dict[str, Any]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    cmd = [sys.executable, __file__, "--child", "--series", str(series), "--batch", str(batch),
           "--rounds", str(rounds), "--limits", limits]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if res.returncode:
        raise SystemExit(f"pass failed ({pythonpath or 'current'}):\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--base", help="a git revision to compare with (alternating passes)")
    ap.add_argument("--base-src", help="or a source tree (its `src` directory) to compare with")
    ap.add_argument("--limits", choices=("default", "off"), default="default")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_run(args.series, args.batch, args.rounds, args.limits))))
        return
    variants: dict[str, str | None] = {"current": str(ROOT / "src")}
    tree = None
    if args.base:
        tree = Path(tempfile.mkdtemp(prefix="heron-wpath-base-")) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), args.base],
                       check=True)
        variants = {f"base {args.base[:10]}": str(tree / "src"), **variants}
    elif args.base_src:
        variants = {"base": args.base_src, **variants}
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in variants}
    try:
        for p in range(args.passes):
            order = list(variants) if p % 2 == 0 else list(reversed(variants))
            for name in order:
                load = Path("/proc/loadavg").read_text().split()[0]
                res = _pass(args.series, args.batch, args.rounds, args.limits, variants[name])
                results[name].append(res)
                print(f"pass {p + 1} {name:18} load {load}: " + "  ".join(
                    f"r{i + 1} dec {r['decode_ms']:.2f} loop {r['loop_ms']:.2f} wal {r['wal_ms']:.2f} gc {r['gc_ms']:.0f} ms {r['gc']}"
                    for i, r in enumerate(res["rounds"])) + f"  stored {res['series_stored']}", flush=True)
    finally:
        if tree is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
            shutil.rmtree(tree.parent, ignore_errors=True)
    print(f"\n{args.series} series, {args.batch} per request, medians of {args.passes} passes "
          f"(ms of CPU per request; gc: pause ms per round)")
    head = f"{'variant':20}{'round':>6}{'decode':>8}{'write':>8}{'WAL CPU':>10}{'GC ms':>8}{'GC (g0/g1/g2)':>16}{'wall ms':>10}"
    print(head)
    med: dict[str, list[float]] = {}
    for name, runs in results.items():
        for i in range(args.rounds):
            rs = [run["rounds"][i] for run in runs]
            loop = statistics.median(r["loop_ms"] for r in rs)
            med.setdefault(name, []).append(loop)
            gcs = "/".join(str(int(statistics.median(r["gc"][g] for r in rs))) for g in range(3))
            print(f"{name:20}{i + 1:>6}{statistics.median(r['decode_ms'] for r in rs):>8.2f}{loop:>8.2f}{statistics.median(r['wal_ms'] for r in rs):>10.2f}"
                  f"{statistics.median(r['gc_ms'] for r in rs):>8.1f}{gcs:>16}"
                  f"{statistics.median(r['wall_ms'] for r in rs):>10.0f}")
    if len(med) == 2:
        a, b = med.values()
        print("loop CPU ratio current / base per round: " + "  ".join(f"{y / x:.2f}" for x, y in zip(a, b, strict=True)))


if __name__ == "__main__":
    main()
