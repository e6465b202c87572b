"""Pie chart and heatmap panels in a real Chromium, over the package's seed-named HTTP metrics
(three handlers at 5, 2 and 1 requests/s, one of them hostile; latency buckets 50/40/7/2/1 %)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.ui.browser.conftest import HOSTILE, Env, Tab, missing

pytestmark = pytest.mark.peer


def _panel(kind: str, title: str, expr: str, x: int, y: int, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "title": title, "gridPos": {"x": x, "y": y, "w": 12, "h": 8},
            "targets": [{"refId": "A", "expr": expr, "legendFormat": "{{handler}}"}], **extra}


DASH = {"uid": "ui-distribution", "title": "Distribution", "time": {"from": "now-1h", "to": "now"}, "panels": [
    _panel("piechart", "By handler", "sum by (handler) (rate(http_requests_total[5m]))", 0, 0,
           options={"pieType": "donut", "reduceOptions": {"calcs": ["lastNotNull"]},
                    "legend": {"values": ["value", "percent"]}}),
    # the old plugin's shape: converted on save (valueName -> reduceOptions, pieType)
    {"type": "grafana-piechart-panel", "title": "Old plugin", "gridPos": {"x": 12, "y": 0, "w": 12, "h": 8},
     "valueName": "avg", "pieType": "pie", "targets": [{"expr": "sum by (status) (rate(http_requests_total[5m]))",
                                                        "legendFormat": "{{status}}"}]},
    _panel("heatmap", "Latency buckets", "sum by (le) (rate(http_request_duration_seconds_bucket[5m]))", 0, 8,
           options={"color": {"scheme": "Blues"}}),
    _panel("heatmap", "In progress (calculated)", "sum(http_requests_in_progress)", 12, 8),
    # Grafana's calculate options: 6 buckets on a log2 scale, no colour legend
    _panel("heatmap", "Request rates (log buckets)", "rate(http_requests_total[5m])", 0, 16,
           options={"calculation": {"yBuckets": {"mode": "count", "value": "6", "scale": {"type": "log", "log": 2}}},
                    "legend": {"show": False}}),
]}


def _lit(tab: Tab, selector: str) -> int:
    """Non-transparent pixels of a canvas."""
    return int(tab.page.locator(selector).evaluate(  # type: ignore[attr-defined]
        "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"))


def test_piechart_and_heatmap_panels(tab: Tab, ui_env: Env) -> None:
    with ui_env.heron.client() as c:
        r = c.post("/api/heron/dashboards", json=DASH)
        assert r.status_code == 200, r.text
        assert r.json()["unsupported"] == []
    tab.go("/d/ui-distribution")
    tab.page.wait_for_function("() => window.heronDashboard && window.heronDashboard.drawnAt !== null")  # type: ignore[attr-defined]
    states = tab.page.locator("[data-panel]").evaluate_all("els => els.map(e => e.dataset.state)")  # type: ignore[attr-defined]
    assert states == ["done"] * 5, states

    pie = tab.page.locator("section.panel", has_text="By handler")  # type: ignore[attr-defined]
    slices = pie.locator(".pie-slice")
    assert slices.count() == 3
    got = {s.get_attribute("data-name"): float(s.get_attribute("data-value") or 0) for s in slices.all()}
    assert set(got) == {"/api/chat", "/api/upload", HOSTILE}
    assert got["/api/chat"] == pytest.approx(5.0, rel=0.02) and got[HOSTILE] == pytest.approx(1.0, rel=0.02)
    names = [s.get_attribute("data-name") for s in slices.all()]
    assert names[0] == "/api/chat"  # largest first
    legend = pie.locator(".pie-legend").inner_text()
    assert "62.5%" in legend and "12.5%" in legend and HOSTILE in legend  # the hostile name is text
    assert pie.locator("path.pie-slice").count() == 3  # donut: ring segments
    old = tab.page.locator("section.panel", has_text="Old plugin")  # type: ignore[attr-defined]
    assert sorted(s.get_attribute("data-name") for s in old.locator(".pie-slice").all()) == ["200", "500"]

    buckets = tab.page.locator("section.panel", has_text="Latency buckets")  # type: ignore[attr-defined]
    body = buckets.locator("[data-buckets]")
    assert body.get_attribute("data-buckets") == "5"  # 0.1, 0.5, 1, 2.5, +Inf
    assert float(body.get_attribute("data-max") or 0) == pytest.approx(4.0, rel=0.05)  # 50 % of 8/s under 0.1 s
    assert _lit(tab, "section.panel:has-text('Latency buckets') canvas") > 2000
    calc = tab.page.locator("section.panel", has_text="In progress (calculated)")  # type: ignore[attr-defined]
    assert calc.locator("[data-buckets]").get_attribute("data-buckets") == "16"
    assert _lit(tab, "section.panel:has-text('In progress (calculated)') canvas") > 500
    assert buckets.locator(".heatmap-legend").count() == 1  # the colour legend, on by default
    assert buckets.locator(".heatmap-legend").inner_text().startswith("0")
    logged = tab.page.locator("section.panel", has_text="Request rates (log buckets)")  # type: ignore[attr-defined]
    assert logged.locator("[data-buckets]").get_attribute("data-buckets") == "6"
    assert logged.locator("[data-buckets]").get_attribute("data-scale") == "log"
    assert logged.locator(".heatmap-legend").count() == 0
    assert _lit(tab, "section.panel:has-text('Request rates (log buckets)') canvas") > 200
    canvas = buckets.locator("canvas")
    canvas.hover()
    tip = buckets.locator(".heatmap-tip")
    assert "≤" in tip.inner_text()
    assert tab.page.evaluate("window.__pwned") is None  # type: ignore[attr-defined]
    assert tab.page.locator("img[src=x]").count() == 0  # type: ignore[attr-defined]
    tab.shot("dashboard-distribution")
    assert tab.problems(missing(ui_env)) == []
