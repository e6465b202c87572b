"""Remote-write ingest: Heron vs the real Prometheus receiver, same payloads, same machine.

    python bench/remote_write.py [--series 10000 100000] [--rounds 3] [--batch 2000] [--concurrency 4]
                                 [--settle 3] [--decode-workers 0 1] [--repeat 3]

For each series count, the same snappy WriteRequests (`--batch` series x 1 sample each, as
Prometheus' queue manager sends them) are POSTed `--rounds` times with increasing timestamps:
round 1 creates the series, later rounds append to known ones. Printed: samples/s acknowledged
(Heron: durable in its WAL, fsynced; Prometheus: appended to its head and WAL) and the ratio.
Prometheus runs with --web.enable-remote-write-receiver; Heron is a real `heron up` process. Both
run at once; rounds alternate between them, with `--settle` seconds of quiet before each.
`--decode-workers 0 1` runs one Heron per value (HERON_DECODE_WORKERS: decoding in that many
worker processes; 0 = in a thread; -1 = on the event loop), all side by side with the same Prometheus.
`--variant old:PYTHONPATH=/tmp/base/src new:` runs one Heron per variant (its environment; here
the code of a `git archive` against the working tree), side by side in the same way.
`--variant c: py:HERON_NO_NATIVE=1` compares the C remote-write decoder with the Python one.
`--repeat N` runs N passes, each with fresh receivers (round 1 creates the series again), and
prints the median per round over the passes: single runs on the shared machine swing by +-0.3
in ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cramjam
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from heron.metrics.proto import remote_pb2
from heron.testing import HeronProcess, free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def payloads(n_series: int, batch: int, ts_ms: int, job: str = "bench") -> list[bytes]:
    out = []
    for start in range(0, n_series, batch):
        req = remote_pb2.WriteRequest()
        for i in range(start, min(n_series, start + batch)):
            t = req.timeseries.add()
            for k, v in (("__name__", f"bench_metric_{i % 200}"), ("instance", f"host-{i % 50}:9100"),
                         ("job", job), ("path", f"/api/v1/items/{i % 37}"), ("series", str(i))):
                t.labels.add(name=k, value=v)
            t.samples.add(timestamp=ts_ms, value=float(i))
        out.append(bytes(cramjam.snappy.compress_raw(req.SerializeToString())))
    return out


async def send(url: str, headers: dict[str, str], bodies: list[bytes], concurrency: int) -> float:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    hdrs = {**headers, "Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
            "X-Prometheus-Remote-Write-Version": "0.1.0"}
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as client:
        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                while True:
                    r = await client.post(url, content=body, headers=hdrs)
                    if r.status_code in (429, 503):
                        await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                        continue
                    if r.status_code >= 300:
                        raise RuntimeError(f"{url}: {r.status_code} {r.text[:200]}")
                    break
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its descendants (decode workers), from /proc:
    unlike throughput it barely depends on what else the shared machine runs."""
    parent: dict[int, int] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        p = int(stat.parent.name)
        parent[p] = int(fields[1])
        times[p] = (int(fields[11]) + int(fields[12])) / TICK
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += times.get(p, 0.0)
        todo += [c for c, pp in parent.items() if pp == p]
    return total


class Prometheus:
    def __enter__(self) -> Prometheus:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-prom-"))
        self.port = free_port()
        (self.dir / "prometheus.yml").write_text("global: {}\n")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.dir / 'prometheus.yml'}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-remote-write-receiver",
             "--log.level=error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("prometheus did not start")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds of quiet before each measured round")
    ap.add_argument("--repeat", type=int, default=1,
                    help="passes, each with fresh receivers; with > 1, medians over the passes are printed")
    ap.add_argument("--decode-workers", type=int, nargs="+", default=[0],
                    help="one Heron per value: remote-write decoding in N worker processes (0: a thread)")
    ap.add_argument("--variant", nargs="+", default=[],
                    help="one Heron per NAME:K=V,K=V (its environment; PYTHONPATH=<a git archive>/src runs "
                         "other code), all side by side; replaces --decode-workers")
    ap.add_argument("--no-ping", dest="ping", action="store_false",
                    help="do not send the receiver one small request (the warm-up's 100 known series) right "
                         "before each measured round: after seconds of quiet this machine ran the next "
                         "~100 ms slowly, for whichever process went first (two identical Herons, 10k round 1 "
                         "after 9 s idle: 150-200 ms for the first against 100-140 for the second; "
                         "bench/remote_write_idle.py); a request to the receiver just before removed most of "
                         "it, and a sender's remote-write traffic is continuous in practice")
    args = ap.parse_args()
    print(f"load average at start: {Path('/proc/loadavg').read_text().split()[:3]}")
    print("throughput: samples/s acknowledged; cpu: CPU ms (process + children, until its next round)"
          " per 10k samples; net: the same less the receiver's idle CPU over that time;"
          " cpu ratio = prometheus cpu / heron cpu (> 1: Heron spends less)")
    print(f"{'series':>8} {'round':>6} {'heron':>8} {'heron samples/s':>16} {'prometheus samples/s':>21} "
          f"{'ratio':>6} {'heron cpu':>10} {'prom cpu':>9} {'cpu ratio':>10} {'heron net':>10} {'load1':>6}")
    passes: dict[int, list[Pass]] = {n: [] for n in args.series}
    for k in range(args.repeat):
        for n in args.series:
            p = run_pass(n, args, k)
            passes[n].append(p)
            if args.repeat > 1:
                print(f"pass {k + 1} of {args.repeat}:")
            p.print(args)
    if args.repeat > 1:
        summary(passes, args)


class Pass:
    """One pass: fresh receivers, `args.rounds` rounds of `n` series each, side by side."""

    def __init__(self, n: int, results: dict[str, list[float]], cpu: dict[str, list[float]],
                 cpu_at: dict[str, list[float]], idle: dict[str, float], loads: list[str]) -> None:
        self.n, self.results, self.cpu, self.cpu_at, self.idle, self.loads = n, results, cpu, cpu_at, idle, loads
        self.herons = [name for name in results if name != "prometheus"]

    def rate(self, name: str, r: int | None, rounds: int) -> float:
        """Samples/s in round r (None: all rounds)."""
        return self.n * (rounds if r is None else 1) / (sum(self.results[name]) if r is None else self.results[name][r])

    def per10k(self, name: str, r: int | None, rounds: int, net: bool = False) -> float:
        """CPU ms per 10k samples in round r (None: all rounds); with `net`, less the receiver's
        idle CPU over the same time (Heron's chDB threads use ~10-20 ms/s idle, which
        dominates the 10k-series rounds; idle varies, so small net figures are noisy)."""
        a, b = (0, -1) if r is None else (r, r + 1)
        used = self.cpu[name][b] - self.cpu[name][a]
        if net:
            used -= self.idle[name] / 1000 * (self.cpu_at[name][b] - self.cpu_at[name][a])
        return used * 1000 / (self.n * (rounds if r is None else 1) / 10_000)

    def print(self, args: argparse.Namespace) -> None:
        n, rounds = self.n, args.rounds
        print(f"{n:>8} idle cpu ms/s: " + ", ".join(f"{name} {v:.0f}" for name, v in self.idle.items()))
        for name in self.herons:
            for r in [*range(rounds), None]:
                h, p = self.rate(name, r, rounds), self.rate("prometheus", r, rounds)
                hc, pc = self.per10k(name, r, rounds), self.per10k("prometheus", r, rounds)
                label = "all" if r is None else r + 1
                load = "" if r is None else self.loads[r]
                print(f"{n:>8} {label:>6} {name:>8} {h:>16,.0f} {p:>21,.0f} {h / p:>6.2f} {hc:>10.0f} {pc:>9.0f} "
                      f"{pc / hc:>10.2f} {self.per10k(name, r, rounds, net=True):>10.0f} {load:>6}")


def summary(passes: dict[int, list[Pass]], args: argparse.Namespace) -> None:
    """Medians over the passes (each pass's ratio is measured side by side, so the median of
    ratios beats the machine's load swings better than a ratio of medians)."""
    print(f"\nmedian of {args.repeat} passes (min-max of the ratio in brackets)")
    print(f"{'series':>8} {'round':>6} {'heron':>8} {'heron samples/s':>16} {'prometheus samples/s':>21} "
          f"{'ratio':>6} {'ratio range':>12} {'heron cpu':>10} {'prom cpu':>9} {'cpu ratio':>10}")
    for n, ps in passes.items():
        for name in ps[0].herons:
            for r in [*range(args.rounds), None]:
                h = [p.rate(name, r, args.rounds) for p in ps]
                pr = [p.rate("prometheus", r, args.rounds) for p in ps]
                ratio = [a / b for a, b in zip(h, pr, strict=True)]
                hc = [p.per10k(name, r, args.rounds) for p in ps]
                pc = [p.per10k("prometheus", r, args.rounds) for p in ps]
                cr = [b / a for a, b in zip(hc, pc, strict=True)]
                label = "all" if r is None else r + 1
                rng = f"{min(ratio):.2f}-{max(ratio):.2f}"
                print(f"{n:>8} {label:>6} {name:>8} {statistics.median(h):>16,.0f} {statistics.median(pr):>21,.0f} "
                      f"{statistics.median(ratio):>6.2f} {rng:>12} {statistics.median(hc):>10.0f} "
                      f"{statistics.median(pc):>9.0f} {statistics.median(cr):>10.2f}")
    print(f"load average at end: {Path('/proc/loadavg').read_text().split()[:3]}")


def variants(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """Heron name -> environment: `--variant name:K=V,K=V`, else one per `--decode-workers`."""
    if not args.variant:
        return {f"w={w}": {"HERON_DECODE_WORKERS": str(w)} for w in args.decode_workers}
    out = {}
    for spec in args.variant:
        name, _, env = spec.partition(":")
        out[name] = dict(kv.split("=", 1) for kv in env.split(",") if kv)
    return out


def run_pass(n: int, args: argparse.Namespace, k: int = 0) -> Pass:
    now = int(time.time() * 1000) - 3_600_000
    rounds = [payloads(n, args.batch, now + r * 15_000) for r in range(args.rounds)]
    herons = {name: HeronProcess(config={"self_scrape": False, "limits": {"metrics": {
        "max_series": 0, "max_series_per_metric": 0}}}, env=env) for name, env in variants(args).items()}
    results: dict[str, list[float]] = {name: [] for name in [*herons, "prometheus"]}
    cpu: dict[str, list[float]] = {name: [] for name in results}
    cpu_at: dict[str, list[float]] = {name: [] for name in results}
    loads: list[str] = []
    warmup = payloads(100, 100, now - 60_000, job="warmup")  # first-request costs out of the figures
    # All receivers run side by side and each round goes to one then the other, so a change
    # in machine load hits them alike.
    with contextlib.ExitStack() as stack:
        for h in herons.values():
            stack.enter_context(h)
        prom = stack.enter_context(Prometheus())
        targets = [(name, h.url + "/api/v1/write", h.headers) for name, h in herons.items()]
        targets.append(("prometheus", f"http://127.0.0.1:{prom.port}/api/v1/write", {}))
        pids = {name: h.proc.pid for name, h in herons.items() if h.proc is not None}
        pids["prometheus"] = prom.proc.pid
        for _, url, headers in targets:
            asyncio.run(send(url, headers, warmup, 1))
        # Idle CPU (background threads, timers): part of every round's figure, shown apart.
        time.sleep(args.settle)
        idle0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        time.sleep(args.settle * 2)
        idle = {name: (cpu_seconds(pid) - idle0[name]) * 1000 / (args.settle * 2) for name, pid in pids.items()}
        for r, bodies in enumerate(rounds):
            loads.append(Path("/proc/loadavg").read_text().split()[0])
            # The receiver sent to first in a round pays a penalty (two identical Herons, 10k
            # round 1: 0.60 first, 1.13 second): the order alternates by round and by pass, so
            # with an even --repeat each receiver is first equally often in every round.
            for name, url, headers in (targets if (r + k) % 2 == 0 else targets[::-1]):
                time.sleep(args.settle)  # the other's background work (inserts, head) settles
                if args.ping:  # see --no-ping
                    asyncio.run(send(url, headers, warmup, 1))
                cpu[name].append(cpu_seconds(pids[name]))
                cpu_at[name].append(time.monotonic())
                results[name].append(asyncio.run(send(url, headers, bodies, args.concurrency)))
        time.sleep(args.settle * 2)  # background work of the last round counts too
        for name in cpu:
            cpu[name].append(cpu_seconds(pids[name]))
            cpu_at[name].append(time.monotonic())
    for h in herons.values():
        shutil.rmtree(h.data_dir, ignore_errors=True)
    return Pass(n, results, cpu, cpu_at, idle, loads)

if __name__ == "__main__":
    main()
