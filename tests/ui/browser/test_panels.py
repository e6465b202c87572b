"""Dashboard features in a real Chromium: reducers and sparklines in stat panels, value mappings
and thresholds, markdown text panels (inert HTML), the absolute time range picker, and each
distinct panel query sent once."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.ui.browser.conftest import HOSTILE, Env, Tab, missing

pytestmark = pytest.mark.peer
RATE = "sum(rate(http_requests_total[5m]))"


def _panel(kind: str, title: str, expr: str, x: int, y: int, w: int = 6, h: int = 5, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "title": title, "gridPos": {"x": x, "y": y, "w": w, "h": h},
            "targets": [{"refId": "A", "expr": expr}], **extra}


def _stat(title: str, expr: str, x: int, y: int, calc: str, **defaults: Any) -> dict[str, Any]:
    return _panel("stat", title, expr, x, y, options={"reduceOptions": {"calcs": [calc]}, "graphMode": "area"},
                  fieldConfig={"defaults": {"unit": "none", **defaults}})


DASH = {"uid": "ui-features", "title": "Features", "time": {"from": "now-1h", "to": "now"}, "panels": [
    _stat("In progress max", "sum(http_requests_in_progress)", 0, 0, "max"),
    _stat("In progress min", "sum(http_requests_in_progress)", 6, 0, "min"),
    _stat("Mapped", "vector(1)", 12, 0, "lastNotNull",
          mappings=[{"type": "value", "options": {"1": {"text": "UP", "color": "green"}}}]),
    _stat("Threshold", "vector(7)", 18, 0, "mean", thresholds={"mode": "absolute", "steps": [
        {"color": "green", "value": None}, {"color": "red", "value": 5}]}),
    _panel("gauge", "Mean in progress", "sum(http_requests_in_progress)", 0, 5,
           options={"reduceOptions": {"calcs": ["mean"]}}, fieldConfig={"defaults": {"unit": "none", "max": 10}}),
    _panel("text", "Runbook", "", 6, 5, w=18, options={"mode": "markdown", "content":
           f"## Runbook\n\n**Check** the [docs](https://example.org/runbook) and [this](javascript:window.__pwned=3)."
           f"\n\n{HOSTILE}\n\n| step | what |\n|---|---|\n| 1 | `kubectl get pods` |"}),
    _panel("timeseries", "Rate A", RATE, 0, 10, w=12, h=7),
    _panel("timeseries", "Rate B (same query)", RATE, 12, 10, w=12, h=7),
]}


def _open(tab: Tab, ui_env: Env, query: str = "") -> list[str]:
    with ui_env.heron.client() as c:
        r = c.post("/api/heron/dashboards", json=DASH)
        assert r.status_code == 200, r.text
    sent: list[str] = []
    tab.page.on("request", lambda r: sent.append(r.url) if "/api/v1/query" in r.url else None)  # type: ignore[attr-defined]
    tab.go("/d/ui-features" + query)
    tab.page.wait_for_function("() => window.heronDashboard && window.heronDashboard.drawnAt !== null")  # type: ignore[attr-defined]
    return sent


def _value(tab: Tab, title: str) -> float:
    panel = tab.page.locator("section.panel", has_text=title)  # type: ignore[attr-defined]
    return float(panel.locator(".stat-item").first.get_attribute("data-value"))


def test_stat_reducers_sparklines_mappings_thresholds(tab: Tab, ui_env: Env) -> None:
    sent = _open(tab, ui_env)
    states = tab.page.locator("[data-panel]").evaluate_all("els => els.map(e => e.dataset.state)")  # type: ignore[attr-defined]
    assert states == ["done"] * len(DASH["panels"])
    # in progress = 3 + 2 sin(k/20) over the hour: max near 5, min near 1, mean near 3
    hi, lo = _value(tab, "In progress max"), _value(tab, "In progress min")
    assert 4.5 < hi <= 5.0001 and 0.9999 <= lo < 1.5
    spark = tab.page.locator("section.panel", has_text="In progress max").locator("svg.stat-spark path")  # type: ignore[attr-defined]
    assert spark.count() == 2 and len(spark.nth(1).get_attribute("d") or "") > 100  # area + line over the range
    mapped = tab.page.locator("section.panel", has_text="Mapped").locator(".stat-value")  # type: ignore[attr-defined]
    assert mapped.inner_text() == "UP"
    assert mapped.evaluate("e => getComputedStyle(e).color") == "rgb(115, 191, 105)"  # Grafana's green
    red = tab.page.locator("section.panel", has_text="Threshold").locator(".stat-value")  # type: ignore[attr-defined]
    assert red.inner_text() == "7" and red.evaluate("e => getComputedStyle(e).color") == "rgb(242, 73, 92)"
    gauge = tab.page.locator("section.panel", has_text="Mean in progress").locator("svg text")  # type: ignore[attr-defined]
    assert 2.5 < float(gauge.text_content() or "") < 3.5
    # the two time series panels ask the same expr+range+step: one request between them
    ranges = [u for u in sent if "/api/v1/query_range" in u and "rate%28http_requests_total" in u]
    assert len(ranges) == 1, ranges
    assert len(sent) == len(set(sent))
    # steps: a 12-column panel at 1400 px wide gets ≤ 1 point per 2 px; start/end on the step grid
    q = {k: v[0] for k, v in parse_qs(urlparse(ranges[0]).query).items()}
    step, start, end = float(q["step"]), float(q["start"]), float(q["end"])
    assert (end - start) / step <= 700 / 2 and start % step == 0 and end % step == 0
    tab.shot("dashboard-stats")
    assert tab.problems(missing(ui_env)) == []


def test_markdown_text_panel_is_rendered_and_inert(tab: Tab, ui_env: Env) -> None:
    _open(tab, ui_env)
    text = tab.page.locator("section.panel", has_text="Runbook").locator(".text-panel")  # type: ignore[attr-defined]
    assert text.locator("h2").inner_text() == "Runbook"
    assert text.locator("strong").inner_text() == "Check"
    assert text.locator("table td code").inner_text() == "kubectl get pods"
    assert text.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href'))") == ["https://example.org/runbook"]
    assert HOSTILE in text.inner_text()  # the HTML shows as text
    assert text.locator("img, script").count() == 0
    assert tab.page.evaluate("window.__pwned") is None  # type: ignore[attr-defined]
    assert tab.problems(missing(ui_env)) == []


def test_absolute_time_range(tab: Tab, ui_env: Env) -> None:
    sent = _open(tab, ui_env)
    tab.page.click("#range-button")  # type: ignore[attr-defined]
    tab.page.fill("#range-from", "yesterday-ish")  # type: ignore[attr-defined]
    tab.page.click("#range-apply")  # type: ignore[attr-defined]
    assert "From: not a time" in tab.page.inner_text("#range-error")  # type: ignore[attr-defined]
    t1 = int(time.time()) // 60 * 60 - 600
    t0 = t1 - 1800
    fmt = "(s) => { const d = new Date(s * 1000); const p = (n) => String(n).padStart(2, '0'); " \
          "return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:00`; }"
    tab.page.fill("#range-from", tab.page.evaluate(fmt, t0))  # type: ignore[attr-defined]
    tab.page.fill("#range-to", tab.page.evaluate(fmt, t1))  # type: ignore[attr-defined]
    sent.clear()
    tab.page.click("#range-apply")  # type: ignore[attr-defined]
    tab.page.wait_for_function(f"() => location.search.includes('from={t0 * 1000}') && "  # type: ignore[attr-defined]
                               f"location.search.includes('to={t1 * 1000}')")
    tab.page.wait_for_function("() => window.heronDashboard.drawnAt !== null")  # type: ignore[attr-defined]
    ranges = [parse_qs(urlparse(u).query) for u in sent if "/api/v1/query_range" in u]
    assert ranges
    for q in ranges:
        step = float(q["step"][0])
        assert t0 - step < float(q["start"][0]) <= t0 and t1 - step < float(q["end"][0]) <= t1
    assert "→" in tab.page.inner_text("#range-button")  # type: ignore[attr-defined]
    # the link holds the absolute range: opening it shows the same bounds
    tab.go("/d/ui-features" + tab.page.url.split("/d/ui-features", 1)[1])  # type: ignore[attr-defined]
    tab.page.click("#range-button")  # type: ignore[attr-defined]
    assert tab.page.input_value("#range-to") == tab.page.evaluate(fmt, t1)  # type: ignore[attr-defined]
    assert tab.problems(missing(ui_env)) == []


def test_drag_on_a_chart_zooms_to_an_absolute_range(tab: Tab, ui_env: Env) -> None:
    _open(tab, ui_env)
    over = tab.page.locator("section.panel", has_text="Rate A").locator(".u-over")  # type: ignore[attr-defined]
    box = over.bounding_box()
    y = box["y"] + box["height"] / 2
    tab.page.mouse.move(box["x"] + box["width"] * 0.4, y)  # type: ignore[attr-defined]
    tab.page.mouse.down()  # type: ignore[attr-defined]
    tab.page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=5)  # type: ignore[attr-defined]
    tab.page.mouse.up()  # type: ignore[attr-defined]
    tab.page.wait_for_function("() => /from=\\d{13}/.test(location.search) && /to=\\d{13}/.test(location.search)")  # type: ignore[attr-defined]
    q = parse_qs(urlparse(tab.page.url).query)  # type: ignore[attr-defined]
    span = (int(q["to"][0]) - int(q["from"][0])) / 1000
    assert 0.1 * 3600 < span < 0.3 * 3600  # a fifth of the hour shown
    tab.page.wait_for_function("() => window.heronDashboard.drawnAt !== null")  # type: ignore[attr-defined]
    assert "→" in tab.page.inner_text("#range-button")  # type: ignore[attr-defined]
    assert tab.problems(missing(ui_env)) == []


def test_explore_absolute_range_from_the_url_and_legacy_links(tab: Tab, ui_env: Env) -> None:
    t1 = int(time.time()) // 60 * 60 - 300
    t0 = t1 - 1200
    sent: list[str] = []
    tab.page.on("request", lambda r: sent.append(r.url) if "/api/v1/query_range" in r.url else None)  # type: ignore[attr-defined]
    tab.go(f"/explore?q=sum(http_requests_in_progress)&from={t0 * 1000}&to={t1 * 1000}")
    tab.page.wait_for_function("() => document.querySelector('#graph canvas') !== null")  # type: ignore[attr-defined]
    q = parse_qs(urlparse(sent[-1]).query)
    assert float(q["start"][0]) == t0 and float(q["end"][0]) == t1
    assert "→" in tab.page.inner_text("#range-button")  # type: ignore[attr-defined]
    # links from before the picker (range=…&end=<unix s>) still open on the same window
    sent.clear()
    tab.go(f"/explore?q=sum(http_requests_in_progress)&range=20m&end={t1}")
    tab.page.wait_for_function("() => document.querySelector('#graph canvas') !== null")  # type: ignore[attr-defined]
    q = parse_qs(urlparse(sent[-1]).query)
    assert float(q["start"][0]) == t0 and float(q["end"][0]) == t1
    assert tab.problems(missing(ui_env)) == []


def test_panels_using_variables_wait_for_them(tab: Tab, ui_env: Env) -> None:
    """${var} and [[var]] forms: such panels are not prefetched with the variable unresolved."""
    dash = {"uid": "ui-vars", "title": "Vars", "time": {"from": "now-1h", "to": "now"},
            "templating": {"list": [{"name": "env", "type": "custom", "query": "api,worker",
                                     "current": {"value": "api"}}]},
            "panels": [_panel("timeseries", "Braces", 'sum(rate(http_requests_total{job="${env}"}[5m]))', 0, 0, w=12),
                       _panel("timeseries", "Brackets", 'count(http_requests_total{job="[[env]]"})', 12, 0, w=12),
                       _panel("timeseries", "Plain", RATE, 0, 8, w=12)]}
    with ui_env.heron.client() as c:
        assert c.post("/api/heron/dashboards", json=dash).status_code == 200
    sent: list[str] = []
    tab.page.on("request", lambda r: sent.append(r.url) if "/api/v1/query" in r.url else None)  # type: ignore[attr-defined]
    tab.go("/d/ui-vars")
    tab.page.wait_for_function("() => window.heronDashboard && window.heronDashboard.drawnAt !== null")  # type: ignore[attr-defined]
    states = tab.page.locator("[data-panel]").evaluate_all("els => els.map(e => e.dataset.state)")  # type: ignore[attr-defined]
    assert states == ["done", "done", "done"]
    exprs = [parse_qs(urlparse(u).query)["query"][0] for u in sent]
    assert not any("env" in e for e in exprs) and sum('job="api"' in e for e in exprs) == 2
    assert tab.problems(missing(ui_env)) == []
