"""The first dashboard after a start against the second one, with and without `ui.warmup`.

    python bench/ui_cold.py [--series 10000] [--hours 6] [--restarts 6]

Same data and 12-panel dashboard as bench/ui_dashboard.py (loaded once into one data dir). Each
restart alternates `ui.warmup: true` / `false`, waits for the warm-up to finish (when on) and
2 s more, opens a new browser context (empty
cache), logs in and loads the dashboard twice on two ranges never asked before. Printed per load:
time to all panels drawn, Heron's user and system CPU and its minor page faults during the load
(from /proc: far steadier than times on a shared machine). The ratio first/second is the cold
penalty: ~1 when the warm-up works.
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
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.promql import LOADER  # noqa: E402
from bench.ui_dashboard import WARMED, dashboard, wait_warm  # noqa: E402
from tests.promql.peer import web_backend_data  # noqa: E402
from tests.ui.helpers import launch, login  # noqa: E402

from heron.testing import HeronProcess  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cost(pid: int) -> tuple[float, float, int]:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(f[11]) / TICK, int(f[12]) / TICK, int(f[7])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--hours", type=float, default=6)
    ap.add_argument("--restarts", type=int, default=6)
    args = ap.parse_args()
    pairs = max(1, args.series // 17)
    services = max(1, int(math.sqrt(pairs / 1.5)))
    now = int(time.time()) // 60 * 60
    minutes = int(args.hours * 60) + 10
    data = web_backend_data((now - minutes * 60) * 1000, minutes=minutes, scrape_s=30, services=services,
                            instances=max(1, pairs // services))
    tmp = Path(tempfile.mkdtemp(prefix="heron-bench-ui-cold-"))
    with (tmp / "data.pkl").open("wb") as f:
        pickle.dump(data, f)
    print(f"data: {len(data)} series, {sum(len(t) for _, t, _ in data)} samples over {args.hours:g} h", flush=True)
    del data
    subprocess.run([sys.executable, "-c", LOADER.format(src=str(ROOT / "src"), pkl=str(tmp / "data.pkl"),
                                                        dd=str(tmp / "heron"))], check=True)
    from playwright.sync_api import sync_playwright

    rows: dict[bool, list[tuple[tuple[float, float, float, int], ...]]] = {True: [], False: []}
    with sync_playwright() as p:
        browser = launch(p)
        for i in range(args.restarts):
            warm = i % 2 == 0
            heron = HeronProcess(data_dir=tmp / "heron", config={"ui": {"warmup": warm}})
            warmed = heron.log().count(WARMED)
            heron.start()
            if warm:
                wait_warm(heron, warmed)
            try:
                assert heron.proc is not None
                httpx.post(heron.url + "/api/heron/dashboards", json=dashboard(), headers=heron.headers,
                           timeout=30).raise_for_status()
                time.sleep(2)
                ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
                page = ctx.new_page()
                login(page, heron.url, heron.token)
                loads = []
                for k in (1, 2):
                    shift = 600 * (2 * i + k)
                    c0 = cost(heron.proc.pid)
                    page.goto(f"{heron.url}/d/bench-12?from={(now - args.hours * 3600 - shift) * 1000:.0f}"
                              f"&to={(now - shift) * 1000:.0f}&refresh=")
                    page.wait_for_function("() => window.heronDashboard && window.heronDashboard.drawnAt !== null",
                                           timeout=180_000)
                    c1 = cost(heron.proc.pid)
                    loads.append((page.evaluate("window.heronDashboard.drawnAt") / 1000, c1[0] - c0[0],
                                  c1[1] - c0[1], c1[2] - c0[2]))
                ctx.close()
                rows[warm].append(tuple(loads))
                print(f"  warmup {'on ' if warm else 'off'}: " + "  ".join(
                    f"{name} {t:.2f} s, user {u:.2f} s, sys {s:.2f} s, {fl / 1000:.1f}k faults"
                    for name, (t, u, s, fl) in zip(("first", "second"), loads, strict=True))
                    + f"  load {os.getloadavg()[0]:.1f}", flush=True)
            finally:
                heron.stop()
        browser.close()
    print(f"\nfirst vs second dashboard after a start, {args.series} series, {args.hours:g} h "
          f"(load average now {' '.join(f'{x:.1f}' for x in os.getloadavg())}, 2 cores shared); medians")
    print(f"{'':14}{'first s':>9}{'second s':>9}{'ratio':>7}{'sys 1st':>9}{'sys 2nd':>9}{'faults 1st':>12}"
          f"{'faults 2nd':>12}")
    for warm in (True, False):
        r = rows[warm]
        if not r:
            continue
        med = [statistics.median(x[k][j] for x in r) for k in (0, 1) for j in range(4)]
        ratio = statistics.median(x[0][0] / x[1][0] for x in r)
        print(f"{'warmup on' if warm else 'warmup off':14}{med[0]:9.2f}{med[4]:9.2f}{ratio:7.2f}{med[2]:9.2f}"
              f"{med[6]:9.2f}{med[3] / 1000:11.1f}k{med[7] / 1000:11.1f}k")


if __name__ == "__main__":
    main()
