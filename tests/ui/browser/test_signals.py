"""The Logs and Traces pages in a real Chromium over logs and spans sent by the OpenTelemetry SDK:
search and filters, the trace waterfall, and a hostile log line and span attribute rendered inert."""

from __future__ import annotations

import pytest

from tests.ui.browser.conftest import HOSTILE, Env, Tab, missing

pytestmark = pytest.mark.peer


def _logs(tab: Tab) -> list[str]:
    tab.page.wait_for_function("() => document.body.dataset.logs === 'done'")  # type: ignore[attr-defined]
    return tab.page.locator(".log-body").all_inner_texts()  # type: ignore[attr-defined]


def test_logs_search_filters_and_hostile_lines(tab: Tab, ui_env: Env) -> None:
    tab.go("/logs?from=now-1h")
    lines = _logs(tab)
    assert {"order received id=42", "payment failed: " + HOSTILE, "slow checkout took 1200ms"} <= set(lines)
    assert tab.page.locator(".log-list img, .log-list script").count() == 0  # type: ignore[attr-defined]
    assert tab.page.evaluate("window.__pwned") is None  # type: ignore[attr-defined]
    assert tab.page.locator("#log-volume .vbar-err").count() >= 1  # type: ignore[attr-defined]
    tab.shot("logs")
    tab.page.fill("#log-query", '{service="checkout"} |= "payment"')  # type: ignore[attr-defined]
    tab.page.click("#log-run")  # type: ignore[attr-defined]
    tab.page.wait_for_function("() => location.search.includes('query=')")  # type: ignore[attr-defined]
    assert _logs(tab) == ["payment failed: " + HOSTILE]
    tab.page.fill("#log-query", "")  # type: ignore[attr-defined]
    tab.page.select_option("#log-level", "warn")  # type: ignore[attr-defined]
    tab.page.wait_for_function("() => location.search.includes('level=warn')")  # type: ignore[attr-defined]
    assert _logs(tab) == ["slow checkout took 1200ms"]
    tab.page.fill("#log-query", '{service="checkout"')  # type: ignore[attr-defined]
    tab.page.click("#log-run")  # type: ignore[attr-defined]
    tab.page.locator("#log-status .state.error").wait_for()  # type: ignore[attr-defined]
    assert "column 20: expected }" in tab.page.inner_text("#log-status")  # type: ignore[attr-defined]
    # a record inside a span links to its trace
    tab.go("/logs?from=now-1h&query=payment")
    _logs(tab)
    tab.page.click(".log-row")  # type: ignore[attr-defined]
    tab.page.click(f'.log-detail a[href="/traces/{ui_env.otel["trace_id"]}"]')  # type: ignore[attr-defined]
    tab.page.wait_for_function("() => document.body.dataset.trace === 'done'")  # type: ignore[attr-defined]
    allowed = missing(ui_env) | {"/api/heron/search/logs"}  # the deliberate bad query above answered 400
    assert [p for p in tab.problems(allowed) if "400" not in p] == []


def test_trace_search_and_waterfall(tab: Tab, ui_env: Env) -> None:
    tab.go("/traces?from=now-1h")
    tab.page.wait_for_function("() => document.body.dataset.traces === 'done'")  # type: ignore[attr-defined]
    assert tab.page.locator("tr.trace-row").count() >= 2, tab.page.inner_html("#trace-form")  # type: ignore[attr-defined]
    tab.page.select_option("#trace-service", "checkout")  # type: ignore[attr-defined]
    tab.page.wait_for_function("() => location.search.includes('service=checkout')")  # type: ignore[attr-defined]
    tab.page.fill("#trace-min", "40ms")  # type: ignore[attr-defined]
    tab.page.click("#trace-run")  # type: ignore[attr-defined]
    tab.page.wait_for_function("() => location.search.includes('min=40ms') && document.body.dataset.traces === 'done'")  # type: ignore[attr-defined]
    rows = tab.page.locator("tr.trace-row")  # type: ignore[attr-defined]
    assert rows.count() == 1 and rows.first.get_attribute("data-trace") == ui_env.otel["trace_id"]
    assert "checkout: POST /orders" in rows.first.inner_text() and "1 error" in rows.first.inner_text()
    tab.shot("traces")
    rows.first.locator("a").first.click()
    tab.page.wait_for_function("() => document.body.dataset.trace === 'done'")  # type: ignore[attr-defined]
    names = tab.page.locator(".wf-row[data-span] .wf-name").all_inner_texts()  # type: ignore[attr-defined]
    assert names == ["checkout POST /orders", "checkout SELECT orders", "checkout charge card", "payments POST /charge"]
    pads = tab.page.locator(".wf-row[data-span] .wf-name").evaluate_all("els => els.map(e => e.style.paddingLeft)")  # type: ignore[attr-defined]
    assert pads == ["4px", "18px", "18px", "32px"]  # children indented under their parent
    bars = tab.page.locator(".wf-bar").evaluate_all(  # type: ignore[attr-defined]
        "els => els.map(e => [parseFloat(e.style.left), parseFloat(e.style.width)])")
    assert bars[0] == [0, 100] and 0 < bars[1][0] < bars[2][0] < bars[3][0] and bars[2][0] + bars[2][1] <= 100.001
    assert bars[3][0] + bars[3][1] <= bars[2][0] + bars[2][1] + 0.001  # the downstream call inside its parent
    assert tab.page.locator(".wf-row.wf-error").count() == 1  # type: ignore[attr-defined]
    tab.page.click(".wf-row[data-span] >> nth=0")  # type: ignore[attr-defined]
    detail = tab.page.locator(".wf-detail:not(.hidden)")  # type: ignore[attr-defined]
    assert HOSTILE in detail.inner_text() and detail.locator("img, script").count() == 0
    assert tab.page.evaluate("window.__pwned") is None  # type: ignore[attr-defined]
    tab.shot("trace-waterfall")
    assert tab.problems(missing(ui_env)) == []
