"""A real `heron up` with demo data and a headless Chromium (Debian's, never `playwright install`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from heron.testing import HeronProcess
from tests.notify.recorder import Recorder
from tests.ui.helpers import CHROMIUM, SCREENSHOTS, launch, login, push
from tests.ui.otel import send as send_otel

HOSTILE = '<img src=x onerror="window.__pwned=1">"><script>window.__pwned=2</script>'


def _demo_series(now_ms: int) -> list[tuple[dict[str, str], np.ndarray, np.ndarray]]:
    """An hour of HTTP metrics in the seeds' names, one label value hostile."""
    ts = np.arange(now_ms - 3_600_000, now_ms + 1, 15_000, dtype=np.int64)
    k = np.arange(len(ts), dtype=np.float64)
    out = []
    for handler, rate in (("/api/chat", 5.0), ("/api/upload", 2.0), (HOSTILE, 1.0)):
        for status, frac in (("200", 0.97), ("500", 0.03)):
            labels = {"__name__": "http_requests_total", "job": "api", "instance": "app:8000",
                      "handler": handler, "status": status}
            out.append((labels, ts, np.cumsum(np.full(len(ts), rate * frac * 15))))
        for le, frac in (("0.1", 0.5), ("0.5", 0.9), ("1", 0.97), ("2.5", 0.99), ("+Inf", 1.0)):
            labels = {"__name__": "http_request_duration_seconds_bucket", "job": "api", "instance": "app:8000",
                      "handler": handler, "le": le}
            out.append((labels, ts, np.cumsum(np.full(len(ts), rate * frac * 15))))
    out.append(({"__name__": "http_requests_in_progress", "job": "api", "instance": "app:8000"}, ts,
                3 + 2 * np.sin(k / 20)))
    return out


@dataclass
class Env:
    heron: HeronProcess
    hook: Recorder
    apis: dict[str, bool] = field(default_factory=dict)
    otel: dict[str, str] = field(default_factory=dict)  # ids of the logs and traces sent by the OTel SDK

    def has(self, path: str) -> bool:
        return self.apis.get(path, False)


@pytest.fixture(scope="package")
def ui_env() -> Iterator[Env]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (scripts/test installs it)")
    hook = Recorder().__enter__()
    heron = HeronProcess(config={
        "rule_files": ["rules.yml"],
        "alertmanager": {"route": {"receiver": "hook", "group_by": ["alertname"], "group_wait": "200ms"},
                         "receivers": [{"name": "hook", "webhook_configs": [{"url": hook.url}]}]}})
    heron.data_dir.mkdir(parents=True, exist_ok=True)
    (heron.data_dir / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "ui", "interval": "1s", "rules": [
        {"alert": "AlwaysFiring", "expr": "vector(1)", "labels": {"severity": "page"},
         "annotations": {"summary": "always on"}},
        {"alert": "SlowBurn", "expr": "vector(2)", "for": "1h"},
        {"record": "job:http_requests:rate5m", "expr": "sum by (job) (rate(http_requests_total[5m]))"}]}]}))
    try:
        heron.start()
        push(heron.url, heron.headers, _demo_series(int(time.time() * 1000)))
        env = Env(heron, hook, otel=send_otel(heron.otlp_url, heron.headers, HOSTILE))
        with heron.client() as c:
            for path in ("/api/v1/query?query=1", "/api/v1/query_range?query=1&start=0&end=60&step=15",
                         "/api/v1/label/job/values", "/api/v1/labels", "/api/v1/series?match[]=up",
                         "/api/v1/rules", "/api/v1/alerts", "/api/v2/alerts", "/api/v2/silences",
                         "/api/v1/targets", "/api/0/projects/", "/api/heron/notifications"):
                env.apis[path.split("?")[0].replace("/job/values", "/")] = c.get(path).status_code not in (404, 405)
        yield env
    finally:
        heron.stop()
        hook.__exit__(None, None, None)


@pytest.fixture(scope="package")
def browser(ui_env: Env) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@dataclass
class Tab:
    """A logged-in page that records console errors and failed requests."""

    page: object
    base: str
    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)  # type: ignore[attr-defined]

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=False)  # type: ignore[attr-defined]
        return path

    def problems(self, allow_missing: set[str] | None = None) -> list[str]:
        """Console errors and failed requests, except 404s from APIs this build lacks."""
        allowed = allow_missing or set()
        failed = [f for f in self.failed if not any(a in f for a in allowed)]
        errors = [e for e in self.errors if not ("404" in e and allowed)]
        return failed + errors


@pytest.fixture
def tab(browser, ui_env: Env) -> Iterator[Tab]:  # type: ignore[no-untyped-def]
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    t = Tab(page, ui_env.heron.url)
    page.on("console", lambda m: t.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: t.errors.append(f"pageerror: {e}"))
    page.on("requestfailed", lambda r: t.failed.append(f"{r.url} {r.failure}"))
    page.on("response", lambda r: t.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    login(page, ui_env.heron.url, ui_env.heron.token)
    page.wait_for_load_state("networkidle")
    t.errors.clear()
    t.failed.clear()
    yield t
    ctx.close()


def missing(env: Env) -> set[str]:
    return {p for p, ok in env.apis.items() if not ok}


__all__ = ["HOSTILE", "Env", "Tab", "httpx", "missing"]
