"""The real Prometheus as a peer: same data in its TSDB and in Heron, queries on both.

`web_backend_data` generates a typical web backend's metrics (request counters with resets,
latency histograms, gauges, a series that stops), with sample timestamps half a scrape interval
off the query step grid so Prometheus 2.x (closed windows) and 3.x (left-open windows) select
the same samples. `PrometheusProcess` builds TSDB blocks with `promtool tsdb create-blocks-from
openmetrics` and serves them with /usr/bin/prometheus on a free loopback port.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from heron.metrics.model import Labels, labels_from
from heron.testing import free_port

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")

Data = list[tuple[Labels, np.ndarray, np.ndarray]]


def web_backend_data(base_ms: int, minutes: int = 120, scrape_s: int = 15, services: int = 3,
                     instances: int = 3, seed: int = 1, batch_stop_minutes: int = 40) -> Data:
    """Deterministic request/latency/gauge series over `minutes`, samples at +scrape/2 offsets."""
    rng = np.random.default_rng(seed)
    n = minutes * 60 // scrape_s
    ts = base_ms + scrape_s * 500 + np.arange(n, dtype=np.int64) * scrape_s * 1000
    out: Data = []
    buckets = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"]
    for s in range(services):
        job = f"svc{s}"
        for i in range(instances):
            inst = f"10.0.{s}.{i}:8080"
            for method in ("GET", "POST"):
                for code in ("200", "404", "500"):
                    rate = {"200": 20.0, "404": 2.0, "500": 0.5}[code] * (1 + s) * (1 + 0.3 * i)
                    inc = rng.poisson(rate * scrape_s, n).astype(np.float64)
                    vals = np.cumsum(inc)
                    if (s + i) % 4 == 1:  # a restart: counter reset mid-way
                        cut = n // 2 + (7 * i) % (n // 2)  # stays inside the series for many instances
                        vals[cut:] -= vals[cut - 1]
                    out.append((labels_from({"__name__": "http_requests_total", "job": job,
                                             "instance": inst, "method": method, "code": code}), ts, vals))
            counts = rng.poisson(30 * (1 + s), (n, len(buckets) - 1)).astype(np.float64)
            cum = np.cumsum(np.cumsum(counts, axis=1), axis=0)
            for b, le in enumerate(buckets):
                col = cum[:, min(b, len(buckets) - 2)]
                out.append((labels_from({"__name__": "http_request_duration_seconds_bucket", "job": job,
                                         "instance": inst, "le": le}), ts, col))
            total = cum[:, -1]
            out.append((labels_from({"__name__": "http_request_duration_seconds_count", "job": job,
                                     "instance": inst}), ts, total))
            out.append((labels_from({"__name__": "http_request_duration_seconds_sum", "job": job,
                                     "instance": inst}), ts, np.cumsum(rng.random(n) * 10)))
            mem = 2e8 + np.cumsum(rng.normal(0, 1e6, n))
            out.append((labels_from({"__name__": "process_resident_memory_bytes", "job": job,
                                     "instance": inst}), ts, mem))
            up = np.ones(n)
            if i == 2 and s == 1:
                up[n // 3: n // 3 + 20] = 0
            out.append((labels_from({"__name__": "up", "job": job, "instance": inst}), ts, up))
    # a series that disappears (absent, lookback edges)
    k = batch_stop_minutes * 60 // scrape_s
    out.append((labels_from({"__name__": "batch_last_success_timestamp", "job": "batch"}), ts[:k],
                (ts[:k] // 1000).astype(np.float64)))
    return out


def to_openmetrics(data: Data, path: Path) -> None:
    with path.open("w") as f:
        for labels, ts, vals in data:
            name = dict(labels)["__name__"]
            lbl = ",".join(f'{k}="{v}"' for k, v in labels if k != "__name__")
            prefix = f"{name}{{{lbl}}} "
            secs = ts / 1000.0
            f.writelines(f"{prefix}{v!r} {t:.3f}\n" for t, v in zip(secs.tolist(), vals.tolist(),
                                                                   strict=True))
        f.write("# EOF\n")


class PrometheusProcess:
    """A real Prometheus serving pre-built blocks on 127.0.0.1 (no scraping)."""

    def __init__(self, data: Data, lookback: str = "5m") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="heron-prom-"))
        self.port = free_port()
        self.lookback = lookback
        self.proc: subprocess.Popen[bytes] | None = None
        om = self.dir / "data.om"
        to_openmetrics(data, om)
        assert PROMTOOL
        subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(om),
                        str(self.dir / "tsdb")], check=True, capture_output=True, timeout=600)
        om.unlink()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrometheusProcess:
        assert PROMETHEUS
        cfg = self.dir / "prometheus.yml"
        cfg.write_text("global:\n  scrape_interval: 15s\n")
        self.log = (self.dir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={self.dir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=100y",
             f"--query.lookback-delta={self.lookback}", "--query.max-samples=500000000",
             "--enable-feature=promql-at-modifier,promql-negative-offset"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError("prometheus did not start: " + (self.dir / "prometheus.log").read_text()[-2000:])

    def query(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        r = httpx.post(self.url + "/api/v1/" + path, data=params, timeout=120)
        return r.json()  # type: ignore[no-any-return]

    def rss_kb(self) -> int:
        """Peak resident set (VmHWM) of the Prometheus process, in KiB."""
        assert self.proc
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "log"):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrometheusProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
