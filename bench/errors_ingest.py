"""Sentry ingest throughput: realistic Python exception events (50 frames with context lines and
locals, 30 breadcrumbs, request, user, tags), one gzip envelope per request as sentry_sdk sends
them, against a real `heron up`; an event counts once Heron answered 200 (durable in the WAL).

    python bench/errors_ingest.py [--seconds 20] [--clients 1] [--concurrency 64]

Two figures, honestly apart: events/s *acknowledged* (durable in the envelope queue: what the
SDK waits for) and events/s *processed* (normalized, scrubbed, stored, counted: visible in the
issue list), plus the backlog left at the end of the run and the time to drain it.

No Sentry/Relay can run on this machine (self-hosted Sentry needs Docker and ~20 services), so
there is no side-by-side peer column: the goal from the issue (>= 2000 events/s) is the yardstick.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import gzip
import json
import multiprocessing as mp
import os
import queue as queue_mod
import struct
import subprocess
import sys
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import httpx
import uvloop
from zlib_ng.zlib_ng import crc32_combine

from heron.testing import HeronProcess


def payload(i: int) -> dict[str, Any]:
    frames = []
    for f in range(50):
        lib = f < 35
        frames.append({
            "filename": f"/usr/lib/python3.11/site-packages/framework/layer{f}.py" if lib else f"app/service{f}.py",
            "abs_path": f"/srv/app/{'venv/lib/site-packages/framework' if lib else 'app'}/mod{f}.py",
            "module": f"framework.layer{f}" if lib else f"app.service{f}", "function": f"handle_{f}",
            "lineno": 100 + f, "in_app": not lib,
            "context_line": f"    result = await self.next_handler(request, ctx_{f})",
            "pre_context": [f"    # step {f}", "    ctx = build_context(request)", "    log.debug('x')",
                            "    validate(ctx)", "    try:"],
            "post_context": ["    except Exception:", "        raise", "    return result", "", "def other():"],
            "vars": {"request": "<Request GET /api/orders>", "ctx": {"user_id": i % 1000, "tenant": "acme"},
                     "self": f"<Handler{f} object at 0x7f00{f:04x}>", "password": "hunter2"}})
    return {
        "event_id": uuid.uuid4().hex, "timestamp": time.time(), "platform": "python", "level": "error",
        "release": "shop@3.4.1", "environment": "production", "server_name": "web-1",
        "exception": {"values": [{"type": f"OrderError{i % 50}", "value": f"order {i} could not be charged",
                                  "module": "app.errors", "mechanism": {"type": "starlette", "handled": False},
                                  "stacktrace": {"frames": frames}}]},
        "breadcrumbs": {"values": [{"timestamp": time.time() - 30 + b, "category": "httplib", "type": "http",
                                    "level": "info", "data": {"url": f"https://psp.example/v1/charge/{b}",
                                                              "method": "POST", "status_code": 200}}
                                   for b in range(30)]},
        "request": {"url": "https://shop.example/api/orders", "method": "POST",
                    "headers": {"User-Agent": "Mozilla/5.0", "Authorization": "Bearer abc.def.ghi",
                                "Content-Type": "application/json"}, "data": {"items": [1, 2, 3]}},
        "user": {"id": str(i % 1000), "email": f"user{i % 1000}@example.com", "ip_address": "10.1.2.3"},
        "tags": {"region": "eu-west-1", "route": "/api/orders"},
        "contexts": {"runtime": {"name": "CPython", "version": "3.11.7"}, "os": {"name": "Linux"},
                     "trace": {"trace_id": uuid.uuid4().hex, "span_id": uuid.uuid4().hex[:16]}},
        "sdk": {"name": "sentry.python.fastapi", "version": "2.19.0"},
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its threads) from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def cpu_tree(pid: int) -> tuple[float, float]:
    """CPU seconds of the server process and of its worker processes."""
    return cpu_seconds(pid), sum(cpu_seconds(c) for c in children(pid))


def body(i: int) -> bytes:
    ev = payload(i)
    raw = (json.dumps({"event_id": ev["event_id"], "sent_at": "2026-01-01T00:00:00Z"}) + "\n"
           + json.dumps({"type": "event", "content_type": "application/json"}) + "\n" + json.dumps(ev) + "\n")
    return gzip.compress(raw.encode(), 6)


class UniqueBodies:
    """Gzip envelopes with a fresh event id each, for a few µs of client CPU instead of ~1 ms.

    The event id goes in the envelope header only (Relay takes it from there, as Heron does);
    the rest is deflated once. A deflate stream may be cut into independently compressed parts
    at byte boundaries, so each request is: gzip header + the new header line as a stored
    (uncompressed) deflate block + the precompressed rest + CRC32 (combined with the rest's, which
    is computed once) and size trailer. Heron inflates exactly the same envelope bytes."""

    def __init__(self, i: int) -> None:
        ev = payload(i)
        del ev["event_id"]
        self.rest = (json.dumps({"type": "event", "content_type": "application/json"}) + "\n"
                     + json.dumps(ev) + "\n").encode()
        c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        self.rest_deflated = c.compress(self.rest) + c.flush(zlib.Z_FINISH)
        self.rest_crc = zlib.crc32(self.rest)

    def make(self) -> bytes:
        head = HEAD % uuid.uuid4().hex.encode()  # json.dumps({"event_id": ..., "sent_at": ...}) + "\n"
        crc = crc32_combine(zlib.crc32(head), self.rest_crc, len(self.rest))
        return b"".join((GZIP_HEADER, struct.pack("<BHH", 0, len(head), len(head) ^ 0xFFFF), head,
                         self.rest_deflated, struct.pack("<II", crc, (len(head) + len(self.rest)) & 0xFFFFFFFF)))


HEAD = b'{"event_id": "%s", "sent_at": "2026-01-01T00:00:00Z"}\n'
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


class _Conn(asyncio.Protocol):
    """One keep-alive connection: send a request, wait for its whole response, repeat.

    A bare protocol (no StreamReader, no task per connection, no readline per header line):
    ~30 µs of client CPU per request instead of ~100, so the cores go to Heron."""

    def __init__(self, gen: _Generator) -> None:
        self.gen, self.buf, self.t0 = gen, b"", 0.0
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport subclasses

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].lower()
        cl = head.find(b"content-length:")
        length = int(head[cl + 15:].split(b"\r\n", 1)[0]) if cl >= 0 else 0
        if len(self.buf) < end + 4 + length:
            return
        status, self.buf = head[9:12], self.buf[end + 4 + length:]
        self.gen.answered(self, status == b"200", time.perf_counter() - self.t0)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gen.lost(self)

    def send(self, request: bytes) -> None:
        self.t0 = time.perf_counter()
        self.transport.write(request)


class _Generator:
    """`conc` connections; with `rate` (requests/s), request k leaves at start + k/rate or as soon
    as a connection is free after that (a steady offered load), else as fast as answers come."""

    def __init__(self, request: Any, seconds: float, conc: int, rate: float) -> None:
        self.request, self.seconds, self.conc, self.rate = request, seconds, conc, rate
        self.ok = self.rejected = self.sent = 0
        self.lat: list[float] = []
        self.done: asyncio.Future[None] | None = None
        self.open = 0

    def next(self, conn: _Conn) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now >= self.deadline:
            return self.close(conn)
        if not self.rate:
            conn.send(self.request(self.sent))
            self.sent += 1
            return None
        due = self.start + self.sent / self.rate
        if due >= self.deadline:
            return self.close(conn)
        n = self.sent
        self.sent += 1
        if due > now:
            loop.call_at(due, lambda: conn.send(self.request(n)))
        else:
            conn.send(self.request(n))
        return None

    def answered(self, conn: _Conn, ok: bool, latency: float) -> None:
        self.lat.append(latency)
        if ok:
            self.ok += 1
        else:
            self.rejected += 1
        self.next(conn)

    def close(self, conn: _Conn) -> None:
        if conn.transport is not None and not conn.transport.is_closing():
            conn.transport.close()

    def lost(self, conn: _Conn) -> None:
        self.open -= 1
        if self.open == 0 and self.done is not None and not self.done.done():
            self.done.set_result(None)

    async def run(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        conns = []
        for _ in range(self.conc):
            _, conn = await loop.create_connection(lambda: _Conn(self), host, port)
            conns.append(conn)
        self.open = len(conns)
        self.start = loop.time()
        self.deadline = self.start + self.seconds
        for conn in conns:
            self.next(conn)
        await self.done


async def client_loop(url: str, headers: dict[str, str], seconds: float, conc: int, offset: int,
                      out: Any, rate: float = 0.0) -> None:
    """`conc` keep-alive connections sending pre-built requests, each waiting for its answer
    (as an SDK's transport does), measured in the client's own CPU seconds too."""
    u = httpx.URL(url)
    head = (f"POST {u.raw_path.decode()} HTTP/1.1\r\nHost: {u.host}:{u.port}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())).encode()
    bases = [UniqueBodies(offset + i) for i in range(100)]  # each request still gets a new event id

    def request(n: int) -> bytes:
        b = bases[n % len(bases)].make()
        return b"".join((head, b"Content-Length: %d\r\n\r\n" % len(b), b))
    gen = _Generator(request, seconds, conc, rate)
    cpu0 = os.times()
    await gen.run(u.host, u.port or 80)
    cpu1 = os.times()
    out.put((gen.ok, gen.rejected, gen.lat, cpu1.user - cpu0.user, cpu1.system - cpu0.system))


def run_client(*args: Any) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # ~half the CPU of asyncio's loop
        runner.run(client_loop(*args))


def cpu_per_event(n: int = 300) -> dict[str, float]:
    """Milliseconds of one core per event for each ingest stage (no HTTP, no storage). CPU time of
    this thread, not wall time: on a machine shared with other work, waiting for a core is
    not the stage's cost (nor is the CPU of allocator threads, which made the figures jump)."""
    from heron.errors import rows
    from heron.errors.envelope import decompress, parse_envelope
    from heron.errors.grouping import group
    from heron.errors.normalize import normalize
    from heron.errors.scrub import Scrubber

    bodies = [body(i) for i in range(n)]
    scrub = Scrubber()
    out = dict.fromkeys(("decode", "normalize", "scrub", "group", "rows"), 0.0)
    for b in bodies[:20]:  # warm up (lazy imports, caches)
        raw = parse_envelope(decompress(b, "gzip")).items[0].json()
        ev = normalize(raw, time.time(), "10.0.0.1")
        rows.event_rows(1, [(group(1, scrub.event(ev)), ev)])
    made = []
    gc.disable()  # as digest() runs
    for b in bodies:
        t0 = time.thread_time()
        raw = parse_envelope(decompress(b, "gzip")).items[0].json()
        t1 = time.thread_time()
        ev = normalize(raw, time.time(), "10.0.0.1")
        t2 = time.thread_time()
        scrub.event(ev)
        t3 = time.thread_time()
        gid = group(1, ev)
        t4 = time.thread_time()
        made.append(rows.event_row(gid, ev))  # as digest does: a row per event, one table per chunk
        t5 = time.thread_time()
        for k, dt in zip(out, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            out[k] += dt * 1000 / n
    t0 = time.thread_time()
    rows.event_table(1, made)
    out["rows"] += (time.thread_time() - t0) * 1000 / n
    gc.enable()
    return out


def metric(c: httpx.Client, name: str) -> float:
    try:
        text = c.get("/metrics").text
    except httpx.TransportError:  # a keep-alive connection the server closed just then: once more
        text = c.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--drain", type=float, default=120, help="seconds to wait for the backlog after the run")
    ap.add_argument("--workers", default="auto", help="errors.queue.workers (auto: one per core, up to 4)")
    ap.add_argument("--batch", type=int, default=0, help="errors.queue.batch (0: Heron's default)")
    ap.add_argument("--rate", type=float, default=0,
                    help="offered events/s in all (0: as fast as Heron acknowledges); with it, a backlog "
                         "that stays small at the end of the run means the rate is sustained")
    ap.add_argument("--warmup", type=int, default=300,
                    help="envelopes sent and processed before the run (starts the worker processes)")
    ap.add_argument("--every", type=float, default=3, help="seconds between timeline samples during the run")
    ap.add_argument("--split", action="store_true",
                    help="hold processing back during the run (ack path alone), then drain (processing alone)")
    args = ap.parse_args()
    raw_size = len(json.dumps(payload(0)))
    load0 = os.getloadavg()
    workers: Any = args.workers if args.workers == "auto" else int(args.workers)
    queue: dict[str, Any] = {"workers": workers, **({"batch": args.batch} if args.batch else {})}
    held = {**queue, "batch": 100_000, "flush_interval": "1h"} if args.split else queue
    with HeronProcess(config={"errors": {"queue": held}}) as proc, proc.client() as c:
        out = subprocess.run([sys.executable, "-m", "heron", "project", "create", "bench", "--config",
                              str(proc.data_dir / "heron.yml")], capture_output=True, text=True, check=True)
        dsn = out.stdout.strip()
        key, pid = dsn.split("//")[1].split("@")[0], dsn.rsplit("/", 1)[1]
        url = f"{proc.url}/api/{pid}/envelope/"
        headers = {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={key}", "Content-Encoding": "gzip",
                   "Content-Type": "application/x-sentry-envelope"}
        q: Any = mp.Queue()
        procs = [mp.Process(target=run_client, args=(url, headers, args.seconds, args.concurrency, i * 1000, q,
                                                         args.rate / args.clients))
                 for i in range(args.clients)]
        assert proc.proc is not None
        warm = 0
        if not args.split and args.warmup:  # steady state: the worker processes started, imports done
            warm_bodies = UniqueBodies(999_999)
            for _ in range(args.warmup):
                c.post(url, content=warm_bodies.make(), headers=headers).raise_for_status()
                warm += 1
            deadline = time.monotonic() + 60
            while metric(c, "heron_errors_queue_envelopes") > 0 and time.monotonic() < deadline:
                time.sleep(0.2)
        # the idle server's own CPU (other domains' background work), to tell it from ingest's
        idle0, t_idle = cpu_seconds(proc.proc.pid), time.monotonic()
        time.sleep(3)
        idle_rate = (cpu_seconds(proc.proc.pid) - idle0) / (time.monotonic() - t_idle)
        main0, work0 = cpu_tree(proc.proc.pid)
        processed0 = metric(c, "heron_errors_processed_events_total")
        t0 = time.monotonic()
        for p in procs:
            p.start()
        results: list[Any] = []
        timeline: list[tuple[float, float, float, float, float]] = []  # t, processed, backlog, CPU
        next_tick = t0 + args.every
        while len(results) < len(procs):
            try:
                results.append(q.get(timeout=max(0.05, next_tick - time.monotonic())))
            except queue_mod.Empty:
                pass
            if time.monotonic() >= next_tick:
                next_tick += args.every
                timeline.append((time.monotonic() - t0, metric(c, "heron_errors_processed_events_total")
                                 - processed0, metric(c, "heron_errors_queue_envelopes"), *cpu_tree(proc.proc.pid)))
        t_end = time.monotonic()
        for p in procs:
            p.join()
        processed_in_run = metric(c, "heron_errors_processed_events_total") - processed0
        backlog_end = metric(c, "heron_errors_queue_envelopes")
        main1, work1 = cpu_tree(proc.proc.pid)
        load_run = os.getloadavg()
        ok = sum(r[0] for r in results)
        rejected = sum(r[1] for r in results)
        lat = sorted(x for r in results for x in r[2])
        if args.split:  # release the queue: batches of 1000 again (a config reload)
            proc.extra_config = {"errors": {"queue": queue}}
            proc.write_config()
            c.post("/-/reload").raise_for_status()
        # drain: everything acknowledged becomes visible in the issue list
        deadline = time.monotonic() + args.drain
        while metric(c, "heron_errors_queue_envelopes") > 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        t_drained = time.monotonic()
        backlog_final = metric(c, "heron_errors_queue_envelopes")
        main2, work2 = cpu_tree(proc.proc.pid)
        issues = c.get("/api/0/projects/heron/bench/issues/", params={"limit": 100}).json()
        counted = sum(int(i["count"]) for i in issues) - warm
        try:  # the queue's last WAL record number: requests per group commit
            records = int(json.loads((proc.data_dir / "errors-queue" / "checkpoint.json").read_text())["done"])
        except (OSError, ValueError, KeyError, TypeError):
            records = 0
        stages = {st: metric(c, f'heron_errors_processing_seconds_total{{stage="{st}"}}')
                  for st in ("digest", "store", "count")}
    run = t_end - t0
    w = 44
    print(f"{'metric':{w}} {'heron':>12}")
    print(f"{'event JSON size (bytes, uncompressed)':{w}} {raw_size:>12}")
    print(f"{'events acknowledged (200, durable)':{w}} {ok:>12}")
    print(f"{'events refused (429/5xx)':{w}} {rejected:>12}")
    print(f"{'ACK events/s (durable, during the run)':{w}} {ok / run:>12.0f}")
    print(f"{'PROCESSED events/s (during the run)':{w}} {processed_in_run / run:>12.0f}")
    print(f"{'backlog at end of run (envelopes)':{w}} {backlog_end:>12.0f}"
          + (f"  (= {backlog_end / args.rate:.1f} s of the offered rate)" if args.rate else ""))
    print(f"{'processed events/s incl. drain (end to end)':{w}} {counted / (t_drained - t0):>12.0f}  "
          f"(drained {t_drained - t_end:.1f}s after the run)")
    drained = counted - processed_in_run
    print(f"{'processed events/s while draining':{w}} {drained / max(t_drained - t_end, 1e-9):>12.0f}")
    print(f"{'request latency p50 (ms)':{w}} {lat[len(lat) // 2] * 1000:>12.1f}")
    print(f"{'request latency p95 (ms)':{w}} {lat[int(len(lat) * 0.95)] * 1000:>12.1f}")
    if records:
        print(f"{'envelope queue WAL records (requests each)':{w}} {records:>12}  ({ok / records:.1f})")
    client_cpu = sum(r[3] + r[4] for r in results)
    print(f"{'load generator CPU s (ms/request)':{w}} {client_cpu:>12.2f}  ({client_cpu * 1000 / max(ok + rejected, 1):.3f}"
          f" ms/request, {client_cpu * 100 / run:.0f}% of a core; kernel {sum(r[4] for r in results):.2f} s of it)")
    note = "  (all acknowledged)" if counted == ok else \
        f"  ({backlog_final:.0f} envelopes still queued at the --drain limit)" if backlog_final else \
        f"  (MISSING {ok - counted})"
    print(f"{'issues / events counted in issues':{w}} {len(issues):>5} / {counted:<6}{note}")
    total_cpu = main2 - main0 + work2 - work0
    if args.split:
        print(f"{'ack path CPU ms/event (server, run)':{w}} {(main1 - main0) * 1000 / max(ok, 1):>12.3f}  "
              f"(= {ok / max(main1 - main0, 1e-9):.0f} acks per CPU-second)")
        print(f"{'processing CPU ms/event (drain, all)':{w}} "
              f"{(main2 - main1 + work2 - work1) * 1000 / max(drained, 1):>12.3f}  "
              f"(= {drained / max(main2 - main1 + work2 - work1, 1e-9):.0f} events per CPU-second)")
    print(f"{'CPU s: server process during run / drain':{w}} {main1 - main0:>12.2f} / {main2 - main1:.2f}")
    if args.split:
        drain_s = t_drained - t_end
        print(f"{'server CPU ms/event: ack / drain':{w}} {(main1 - main0) * 1000 / max(ok, 1):>12.3f} / "
              f"{(main2 - main1) * 1000 / max(drained, 1):.3f}  (net of the idle server's "
              f"{idle_rate * 1000:.0f} ms/s: {(main1 - main0 - idle_rate * run) * 1000 / max(ok, 1):.3f} / "
              f"{(main2 - main1 - idle_rate * drain_s) * 1000 / max(drained, 1):.3f})")
    print(f"{'CPU s: worker processes during run / drain':{w}} {work1 - work0:>12.2f} / {work2 - work1:.2f}")
    print(f"{'CPU ms per event, all Heron processes':{w}} {total_cpu * 1000 / max(ok, 1):>12.2f}  "
          f"(= {ok / max(total_cpu, 1e-9):.0f} events per CPU-second; 2000/s needs <= 1.0 on 2 cores)")
    for st, secs in stages.items():
        print(f"{'processing wall ms/event: ' + st:{w}} {secs * 1000 / max(counted, 1):>12.3f}")
    if timeline:
        print("timeline during the run: t (s) | processed/s in the interval | backlog (envelopes) | server, workers CPU (cores)")
        prev = (0.0, 0.0, 0.0, main0, work0)
        for t, done, backlog, srv, wrk in timeline:
            dt = t - prev[0]
            print(f"  {t:6.1f} | {(done - prev[1]) / dt:6.0f} | {backlog:7.0f} | {(srv - prev[3]) / dt:4.2f}, "
                  f"{(wrk - prev[4]) / dt:4.2f}")
            prev = (t, done, backlog, srv, wrk)
    cpu = cpu_per_event()
    for k, v in cpu.items():
        print(f"{'cpu ms/event: ' + k:{w}} {v:>12.3f}")
    total = sum(cpu.values())
    print(f"{'cpu ms/event: domain total (one core)':{w}} {total:>12.3f}  (= {1000 / total:.0f} events/s/core)")
    print(f"(mode: {'split: ack alone, then processing alone' if args.split else 'mixed: ack and processing at once'}; "
          f"workers {args.workers}; batch {args.batch or 'default'})")
    offered = f"offered {args.rate:.0f} events/s" if args.rate else "as fast as acknowledged"
    print(f"(run {run:.1f}s, {args.clients} client process(es) x {args.concurrency} keep-alive connections, "
          f"{offered}; "
          f"goal >= 2000 events/s; no Sentry peer runs here)")
    print(f"(load average before: {' '.join(f'{x:.2f}' for x in load0)}; at end of run: "
          f"{' '.join(f'{x:.2f}' for x in load_run)}; {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
