"""What people do in the UI, in a real Chromium against a real `heron up`: silence an alert,
resolve an issue, import a Grafana dashboard, complete PromQL, switch theme; hostile input inert."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.ui.browser.conftest import HOSTILE, Env, Tab, missing

pytestmark = pytest.mark.peer
SEED = Path(__file__).parents[1] / "testdata" / "app_performance.grafana.json"


def _pwned(tab: Tab) -> Any:
    return tab.page.evaluate("window.__pwned")  # type: ignore[attr-defined]


def test_create_a_silence_from_an_alert_and_expire_it(tab: Tab, ui_env: Env) -> None:
    if not ui_env.has("/api/v2/silences"):
        pytest.fail("Alertmanager API v2 is part of this build and must serve /api/v2/silences")
    with ui_env.heron.client() as c:
        now = time.time()
        r = c.post("/api/v2/alerts", json=[{
            "labels": {"alertname": "HighErrorRate", "job": "api", "handler": HOSTILE},
            "annotations": {"summary": "5xx ratio above 5% " + HOSTILE},
            "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60))}])
        assert r.status_code == 200, r.text
    tab.go("/alerts")
    row = tab.page.locator("tr.alert-row", has_text="HighErrorRate")  # type: ignore[attr-defined]
    row.wait_for()
    assert HOSTILE in row.inner_text()  # shown as text ...
    assert _pwned(tab) is None  # ... never run
    tab.shot("alerts-firing")
    row.get_by_role("link", name="Silence").click()
    tab.page.wait_for_url("**/silences?**")  # type: ignore[attr-defined]
    names = tab.page.locator(".m-name").evaluate_all("els => els.map(e => e.value)")  # type: ignore[attr-defined]
    values = tab.page.locator(".m-value").evaluate_all("els => els.map(e => e.value)")  # type: ignore[attr-defined]
    assert dict(zip(names, values, strict=True)) == {"alertname": "HighErrorRate", "job": "api", "handler": HOSTILE}
    tab.page.fill("#comment", "deploy in progress")  # type: ignore[attr-defined]
    tab.page.fill("#duration", "1h30m")  # type: ignore[attr-defined]
    tab.page.click("#create-silence")  # type: ignore[attr-defined]
    tab.page.locator("#page-status .state.ok").wait_for()  # type: ignore[attr-defined]
    tab.shot("silences")
    with ui_env.heron.client() as c:
        silences = [s for s in c.get("/api/v2/silences").json() if s["comment"] == "deploy in progress"]
    assert len(silences) == 1 and silences[0]["status"]["state"] == "active"
    s = silences[0]
    assert {(m["name"], m["value"], m["isRegex"], m["isEqual"]) for m in s["matchers"]} == {
        ("alertname", "HighErrorRate", False, True), ("job", "api", False, True), ("handler", HOSTILE, False, True)}
    assert s["createdBy"] == "heron-ui"
    assert 5350 < (_ts(s["endsAt"]) - _ts(s["startsAt"])) < 5450
    tab.page.locator(f'tr[data-id="{s["id"]}"] button', has_text="Expire").click()  # type: ignore[attr-defined]
    tab.page.locator(f'tr[data-id="{s["id"]}"] .badge.expired').wait_for()  # type: ignore[attr-defined]
    with ui_env.heron.client() as c:
        assert c.get(f"/api/v2/silence/{s['id']}").json()["status"]["state"] == "expired"
    assert _pwned(tab) is None
    assert tab.problems(missing(ui_env)) == []


def _ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _send_error(dsn: str) -> None:
    import sentry_sdk

    sentry_sdk.init(dsn=dsn, release="web@1.0.0", environment="prod", send_default_pii=True,
                    default_integrations=False)
    try:
        sentry_sdk.set_user({"id": "42", "email": "ada@example.com"})
        sentry_sdk.set_tag("feature", "checkout")
        sentry_sdk.add_breadcrumb(category="http", message="GET /cart " + HOSTILE, level="info")

        def charge(amount: int) -> None:
            raise ValueError("payment declined " + HOSTILE)

        try:
            charge(42)
        except ValueError as exc:
            sentry_sdk.capture_exception(exc)
        sentry_sdk.flush(10)
    finally:
        sentry_sdk.init()


def test_resolve_an_issue(tab: Tab, ui_env: Env) -> None:
    if not ui_env.has("/api/0/projects/"):
        tab.go("/issues")
        tab.page.locator("#status .state").wait_for()  # type: ignore[attr-defined]
        assert "not available" in tab.page.inner_text("#status")  # type: ignore[attr-defined]
        return
    from tests.errors.conftest import create_project

    _send_error(create_project(ui_env.heron, "web"))
    deadline = time.monotonic() + 20
    issues: list[dict[str, Any]] = []
    with ui_env.heron.client() as c:
        while not issues and time.monotonic() < deadline:
            issues = c.get("/api/0/projects/heron/web/issues/").json()
            time.sleep(0.2)
    assert issues, "the error event did not become an issue"
    issue_id = issues[0]["id"]
    # An issue's counters are updated on acknowledgement; its events are readable once the
    # pipeline has flushed them (up to its flush interval later). Open the page after that.
    events: list[dict[str, Any]] = []
    with ui_env.heron.client() as c:
        while not events and time.monotonic() < deadline + 10:
            events = c.get(f"/api/0/issues/{issue_id}/events/").json()
            time.sleep(0.2)
    assert events, "the issue's event never became readable"
    tab.go("/issues?project=web")
    row = tab.page.locator(f'tr[data-issue="{issue_id}"]')  # type: ignore[attr-defined]
    row.wait_for()
    assert "ValueError" in row.inner_text() and HOSTILE in row.inner_text()
    assert row.locator("svg.spark polyline").count() == 1
    tab.shot("issues")
    row.locator("a.issue-title").click()
    tab.page.locator("#stacktrace").wait_for()  # type: ignore[attr-defined]
    trace = tab.page.inner_text("#stacktrace")  # type: ignore[attr-defined]
    assert "charge" in trace and 'raise ValueError("payment declined " + HOSTILE)' in trace  # context line
    assert HOSTILE in tab.page.inner_text("#breadcrumbs")  # type: ignore[attr-defined]
    assert "checkout" in tab.page.inner_text("#tags")  # type: ignore[attr-defined]
    assert "ada@example.com" in tab.page.inner_text("#user")  # type: ignore[attr-defined]
    tab.shot("issue-detail")
    tab.page.click('button[data-action="resolved"]')  # type: ignore[attr-defined]
    tab.page.locator("#issue-status.resolved").wait_for()  # type: ignore[attr-defined]
    with ui_env.heron.client() as c:
        assert c.get(f"/api/0/issues/{issue_id}/").json()["status"] == "resolved"
    assert _pwned(tab) is None
    assert tab.problems(missing(ui_env)) == []


def _canvas_drawn(tab: Tab, selector: str) -> bool:
    """True when the canvas has non-background pixels (a chart was drawn, not just a blank)."""
    page: Any = tab.page
    return bool(page.evaluate("""(sel) => {
        const c = document.querySelector(sel + ' canvas');
        if (!c || !c.width) return false;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n > 200;
    }""", selector))


def test_import_grafana_dashboard_and_see_panels_draw(tab: Tab, ui_env: Env) -> None:
    doc = json.loads(SEED.read_text())
    doc["dashboard"]["uid"] = "seed-import-ui"
    tab.go("/dashboards/import")
    tab.page.fill("#json", json.dumps(doc))  # type: ignore[attr-defined]
    tab.page.click("#import")  # type: ignore[attr-defined]
    tab.page.locator("#status .state.warn").wait_for()  # type: ignore[attr-defined]
    assert "Service map" in tab.page.inner_text("#status")  # type: ignore[attr-defined]
    tab.page.get_by_role("link", name="Open dashboard").click()  # type: ignore[attr-defined]
    tab.page.wait_for_url("**/d/seed-import-ui")  # type: ignore[attr-defined]
    tab.page.wait_for_function("() => window.heronDashboard && window.heronDashboard.drawnAt !== null")  # type: ignore[attr-defined]
    panels = tab.page.locator("[data-panel]")  # type: ignore[attr-defined]
    states = dict(zip(panels.evaluate_all("els => els.map(e => e.dataset.type || 'row')"),
                      panels.evaluate_all("els => els.map(e => e.dataset.state)"), strict=False))
    assert states["nodeGraph"] == "unsupported"
    assert "Unsupported panel" in tab.page.inner_text('[data-type="nodeGraph"]')  # type: ignore[attr-defined]
    assert tab.page.locator('[data-type="table"]').count() == 0  # type: ignore[attr-defined]  # in the collapsed row
    if ui_env.has("/api/v1/query_range"):
        assert states["timeseries"] == "done" and states["stat"] == "done"
        assert _canvas_drawn(tab, '[data-panel="0"]') and _canvas_drawn(tab, '[data-panel="1"]')
        job = tab.page.locator('[data-var="job"] input[type=checkbox]')  # type: ignore[attr-defined]
        assert job.evaluate_all("els => els.map(e => e.value)") == ["$__all", "api"]
        # Picking one value re-queries with it and keeps it in the URL.
        tab.page.click('[data-var="job"] summary')  # type: ignore[attr-defined]
        job.nth(1).check()
        tab.page.wait_for_function("() => location.search.includes('var-job=api')")  # type: ignore[attr-defined]
        tab.page.wait_for_function("() => window.heronDashboard.drawnAt !== null")  # type: ignore[attr-defined]
        assert _canvas_drawn(tab, '[data-panel="0"]')
    else:  # no PromQL HTTP API in this build yet: each panel says so instead of failing silently
        assert "Query API not available" in tab.page.inner_text('[data-panel="0"]')  # type: ignore[attr-defined]
    tab.page.locator(".row-panel", has_text="Details").click()  # type: ignore[attr-defined]
    tab.page.locator('[data-type="table"]').wait_for()  # type: ignore[attr-defined]
    tab.page.wait_for_function("() => window.heronDashboard.drawnAt !== null")  # type: ignore[attr-defined]
    if ui_env.has("/api/v1/query"):
        assert tab.page.locator('[data-type="table"]').get_attribute("data-state") == "done"  # type: ignore[attr-defined]
        assert "/api/chat" in tab.page.inner_text('[data-type="table"]')  # type: ignore[attr-defined]
    tab.shot("dashboard-imported")
    assert tab.problems(missing(ui_env)) == []


def test_builtin_dashboard_draws(tab: Tab, ui_env: Env) -> None:
    tab.go("/d/heron-app-performance?from=now-1h")
    tab.page.wait_for_function("() => window.heronDashboard && window.heronDashboard.drawnAt !== null")  # type: ignore[attr-defined]
    if ui_env.has("/api/v1/query_range"):
        assert _canvas_drawn(tab, '[data-panel="4"]')
        table = tab.page.inner_text('[data-panel="9"]')  # type: ignore[attr-defined]
        assert HOSTILE in table  # the hostile handler label, as text
    assert _pwned(tab) is None
    tab.shot("dashboard-builtin")
    assert tab.problems(missing(ui_env)) == []


def test_explore_completes_promql_and_keeps_state_in_the_url(tab: Tab, ui_env: Env) -> None:
    tab.go("/explore")
    editor = tab.page.locator("#editor .cm-content")  # type: ignore[attr-defined]
    editor.click()
    tab.page.keyboard.type("histogram_q")  # type: ignore[attr-defined]
    option = tab.page.locator(".cm-tooltip-autocomplete li", has_text="histogram_quantile")  # type: ignore[attr-defined]
    option.first.wait_for()
    if ui_env.has("/api/v1/label/"):  # metric names and label values come from Heron's Prometheus API
        tab.page.keyboard.press("Control+a")  # type: ignore[attr-defined]
        tab.page.keyboard.type("http_req")  # type: ignore[attr-defined]
        tab.page.locator(".cm-tooltip-autocomplete li", has_text="http_requests_total").first.wait_for()  # type: ignore[attr-defined]
        tab.page.keyboard.press("Escape")  # type: ignore[attr-defined]
        tab.page.keyboard.press("Control+a")  # type: ignore[attr-defined]
        tab.page.keyboard.type('http_requests_total{status="')  # type: ignore[attr-defined]
        tab.page.locator(".cm-tooltip-autocomplete li", has_text="500").first.wait_for()  # type: ignore[attr-defined]
        tab.page.keyboard.press("Escape")  # type: ignore[attr-defined]
    tab.page.keyboard.press("Control+a")  # type: ignore[attr-defined]
    tab.page.keyboard.type("sum by (handler) (rate(http_requests_total[5m]))")  # type: ignore[attr-defined]
    tab.page.keyboard.press("Escape")  # type: ignore[attr-defined]
    tab.page.click("#range-button")  # type: ignore[attr-defined]
    tab.page.click('#range-menu [data-range="30m"]')  # type: ignore[attr-defined]
    tab.page.wait_for_function("() => location.search.includes('from=now-30m')")  # type: ignore[attr-defined]
    assert "q=sum+by+%28handler%29" in tab.page.url  # type: ignore[attr-defined]
    if ui_env.has("/api/v1/query_range"):
        tab.page.wait_for_function("() => document.querySelector('#graph canvas') !== null")  # type: ignore[attr-defined]
        assert _canvas_drawn(tab, "#graph")
        tab.page.click("#tab-table")  # type: ignore[attr-defined]
        tab.page.locator("#table table").wait_for()  # type: ignore[attr-defined]
        assert HOSTILE in tab.page.inner_text("#table")  # type: ignore[attr-defined]
    else:
        tab.page.locator("#status .state").wait_for()  # type: ignore[attr-defined]
        assert "not available" in tab.page.inner_text("#status")  # type: ignore[attr-defined]
    # The URL is shareable: opening it restores the query and the range.
    tab.go("/explore" + tab.page.url.split("/explore", 1)[1])  # type: ignore[attr-defined]
    assert "rate(http_requests_total[5m])" in tab.page.inner_text("#editor")  # type: ignore[attr-defined]
    assert tab.page.inner_text("#range-button").endswith("Last 30m")  # type: ignore[attr-defined]
    tab.shot("explore")
    assert _pwned(tab) is None
    assert tab.problems(missing(ui_env)) == []


def test_theme_toggle_persists(tab: Tab) -> None:
    tab.go("/settings")
    before = tab.page.get_attribute("html", "data-theme")  # type: ignore[attr-defined]
    tab.page.click("#theme-toggle")  # type: ignore[attr-defined]
    after = tab.page.get_attribute("html", "data-theme")  # type: ignore[attr-defined]
    assert {before, after} == {"light", "dark"}
    tab.go("/dashboards")
    assert tab.page.get_attribute("html", "data-theme") == after  # type: ignore[attr-defined]
    bg = tab.page.evaluate("getComputedStyle(document.body).backgroundColor")  # type: ignore[attr-defined]
    assert bg == ("rgb(17, 19, 24)" if after == "dark" else "rgb(246, 247, 249)")
    tab.page.click("#theme-toggle")  # type: ignore[attr-defined]


def test_hostile_dashboard_content_is_inert(tab: Tab, ui_env: Env) -> None:
    with ui_env.heron.client() as c:
        r = c.post("/api/heron/dashboards", json={"title": HOSTILE, "uid": "hostile", "tags": [HOSTILE],
                                                  "panels": [{"type": "text", "title": HOSTILE,
                                                              "options": {"content": HOSTILE}}]})
        assert r.status_code == 200, r.text
    tab.go("/dashboards")
    tab.page.locator('tr[data-uid="hostile"]').wait_for()  # type: ignore[attr-defined]
    assert HOSTILE in tab.page.inner_text('tr[data-uid="hostile"]')  # type: ignore[attr-defined]
    tab.go("/d/hostile")
    tab.page.wait_for_function("() => window.heronDashboard && window.heronDashboard.drawnAt !== null")  # type: ignore[attr-defined]
    assert tab.page.inner_text("#title") == HOSTILE  # type: ignore[attr-defined]
    assert HOSTILE in tab.page.inner_text(".text-panel")  # type: ignore[attr-defined]
    assert tab.page.locator("#panels img, #panels script").count() == 0  # type: ignore[attr-defined]
    assert _pwned(tab) is None


def test_edit_a_panel_query_and_the_json(tab: Tab, ui_env: Env) -> None:
    with ui_env.heron.client() as c:
        r = c.post("/api/heron/dashboards", json={"title": "Editable", "uid": "editable", "panels": [
            {"type": "timeseries", "title": "Old", "targets": [{"expr": "up", "refId": "A"}]}]})
        assert r.status_code == 200, r.text
    tab.go("/d/editable")
    tab.page.wait_for_function("() => window.heronDashboard && window.heronDashboard.drawnAt !== null")  # type: ignore[attr-defined]
    tab.page.locator('[data-panel="0"]').hover()  # type: ignore[attr-defined]
    tab.page.locator('[data-panel="0"] button', has_text="Edit").click()  # type: ignore[attr-defined]
    tab.page.fill("#panel-title", "Requests by handler")  # type: ignore[attr-defined]
    tab.page.fill(".panel-expr", "sum by (handler) (rate(http_requests_total[5m]))")  # type: ignore[attr-defined]
    tab.page.select_option("#panel-type", "table")  # type: ignore[attr-defined]
    tab.page.click("#dialog-save")  # type: ignore[attr-defined]
    tab.page.locator('[data-panel="0"][data-type="table"]').wait_for()  # type: ignore[attr-defined]
    with ui_env.heron.client() as c:
        saved = c.get("/api/heron/dashboards/editable").json()
    assert saved["version"] == 2 and saved["panels"][0]["title"] == "Requests by handler"
    assert saved["panels"][0]["type"] == "table"
    assert saved["panels"][0]["targets"][0]["expr"] == "sum by (handler) (rate(http_requests_total[5m]))"
    # The whole model as JSON; a broken document is refused with the parser's message.
    tab.page.click("#edit-json")  # type: ignore[attr-defined]
    tab.page.fill("#dashboard-json", '{"title": ')  # type: ignore[attr-defined]
    tab.page.click("#dialog-save")  # type: ignore[attr-defined]
    tab.page.locator("#editor-form .error", has_text="Invalid JSON").wait_for()  # type: ignore[attr-defined]
    model = dict(saved, title="Edited as JSON")
    tab.page.fill("#dashboard-json", json.dumps(model))  # type: ignore[attr-defined]
    tab.page.click("#dialog-save")  # type: ignore[attr-defined]
    tab.page.wait_for_function("() => document.querySelector('#title').textContent === 'Edited as JSON'")  # type: ignore[attr-defined]
    with ui_env.heron.client() as c:
        assert c.get("/api/heron/dashboards/editable").json()["version"] == 3


def test_dark_theme_screenshots(tab: Tab, ui_env: Env) -> None:
    tab.go("/settings")
    tab.page.click('[data-theme-set="dark"]')  # type: ignore[attr-defined]
    tab.go("/d/heron-app-performance?from=now-1h")
    tab.page.wait_for_function("() => window.heronDashboard && window.heronDashboard.drawnAt !== null")  # type: ignore[attr-defined]
    assert tab.page.get_attribute("html", "data-theme") == "dark"  # type: ignore[attr-defined]
    tab.shot("dashboard-dark")
    tab.go("/explore?q=sum%20by%20(handler)%20(rate(http_requests_total%5B5m%5D))&range=1h")
    tab.page.locator("#stats").wait_for()  # type: ignore[attr-defined]
    tab.page.wait_for_function("() => document.querySelector('#stats').textContent !== ''")  # type: ignore[attr-defined]
    tab.shot("explore-dark")
    assert tab.problems(missing(ui_env)) == []


def test_settings_tokens_and_dsns(tab: Tab, ui_env: Env) -> None:
    tab.go("/settings")
    tab.page.fill("#token-name", "grafana-reader")  # type: ignore[attr-defined]
    tab.page.click("#create-token")  # type: ignore[attr-defined]
    token = tab.page.locator("#created-token")  # type: ignore[attr-defined]
    token.wait_for()
    value = token.inner_text()
    assert value.startswith("heron_api_")
    with ui_env.heron.client() as c:  # the new token works against the API
        r = c.get("/api/heron/dashboards", headers={"Authorization": f"Bearer {value}"})
        assert r.status_code == 200
    assert "grafana-reader" in tab.page.inner_text("#tokens")  # type: ignore[attr-defined]
    if ui_env.has("/api/0/projects/"):
        tab.page.fill("#project-name", "Checkout API")  # type: ignore[attr-defined]
        tab.page.click("#create-project")  # type: ignore[attr-defined]
        row = tab.page.locator("#projects tr", has_text="checkout-api")  # type: ignore[attr-defined]
        row.wait_for()
        dsn = row.locator(".secret").first.inner_text()
        assert dsn.startswith("http://") and dsn.endswith(f"@127.0.0.1:{ui_env.heron.port}/" + dsn.rsplit("/", 1)[1])
    tab.page.once("dialog", lambda d: d.accept())  # type: ignore[attr-defined]
    tab.page.locator("#tokens tr", has_text="grafana-reader").locator("button").click()  # type: ignore[attr-defined]
    tab.page.wait_for_function("() => !document.querySelector('#tokens').textContent.includes('grafana-reader')")  # type: ignore[attr-defined]
    with ui_env.heron.client() as c:
        assert c.get("/api/heron/dashboards", headers={"Authorization": f"Bearer {value}"}).status_code == 401
    tab.shot("settings")
    assert tab.problems(missing(ui_env)) == []


def test_targets_show_scrape_health_per_job(tab: Tab, ui_env: Env) -> None:
    tab.go("/targets")
    if not ui_env.has("/api/v1/targets"):
        tab.page.locator("#status .state").wait_for()  # type: ignore[attr-defined]
        return
    job = tab.page.locator('section[data-job="heron"]')  # type: ignore[attr-defined]
    job.wait_for()  # Heron scrapes itself as job "heron" by default
    assert "/metrics" in job.inner_text()
    assert job.locator(".badge").first.inner_text() in ("1/1 up", "0/1 up")
    tab.shot("targets")
    assert tab.problems(missing(ui_env)) == []


def test_logout_ends_the_session(tab: Tab, ui_env: Env) -> None:
    tab.go("/dashboards")
    tab.page.click("#logout")  # type: ignore[attr-defined]
    tab.page.wait_for_url("**/login")  # type: ignore[attr-defined]
    tab.go("/explore")
    assert "/login?next=/explore" in tab.page.url  # type: ignore[attr-defined]


def test_alerts_page_rules_states_and_notification_history(tab: Tab, ui_env: Env) -> None:
    ui_env.hook.wait(1, timeout=30)  # the always-firing rule went through routing to the webhook
    tab.go("/alerts")
    firing = tab.page.locator("tr.alert-row", has_text="AlwaysFiring")  # type: ignore[attr-defined]
    firing.wait_for()
    assert "firing" in firing.inner_text() and "always on" in firing.inner_text()
    if ui_env.has("/api/v1/alerts"):
        pending = tab.page.locator("tr.alert-row", has_text="SlowBurn")  # type: ignore[attr-defined]
        pending.wait_for()
        assert "pending" in pending.inner_text()
    tab.page.click('.tab[data-tab="rules"]')  # type: ignore[attr-defined]
    rules = tab.page.locator("#rules-list")  # type: ignore[attr-defined]
    if ui_env.has("/api/v1/rules"):
        rules.locator("h2", has_text="ui").wait_for()
        text = rules.inner_text()
        assert "AlwaysFiring" in text and "SlowBurn" in text and "job:http_requests:rate5m" in text
        assert "last evaluation" in text and "never" not in text.split("\n")[1]
        assert rules.locator(".badge.ok").count() == 3  # every rule healthy
        tab.shot("alerts-rules")
    tab.page.click('.tab[data-tab="history"]')  # type: ignore[attr-defined]
    history = tab.page.locator("#history-list")  # type: ignore[attr-defined]
    history.locator("tr", has_text="hook").first.wait_for()
    assert "AlwaysFiring" in history.inner_text()
    row = history.locator("tr.history-row[data-outcome=sent]").first
    assert "webhook" in row.inner_text() and row.locator(".badge.ok").inner_text() == "sent"
    tab.page.select_option("#history-outcome", "failed")  # type: ignore[attr-defined]
    history.locator(".state.empty").wait_for()  # nothing failed: the filter empties the list
    assert history.locator("tr.history-row").count() == 0
    assert tab.problems(missing(ui_env)) == []


def test_auto_refresh_redraws(tab: Tab, ui_env: Env) -> None:
    with ui_env.heron.client() as c:
        r = c.post("/api/heron/dashboards", json={"title": "Refreshing", "uid": "refreshing", "refresh": "5s",
                                                  "panels": [{"type": "stat", "title": "n",
                                                              "targets": [{"expr": "vector(1)"}]}]})
        assert r.status_code == 200, r.text
    tab.go("/d/refreshing")
    tab.page.wait_for_function("() => window.heronDashboard && window.heronDashboard.drawnAt !== null")  # type: ignore[attr-defined]
    first = tab.page.evaluate("window.heronDashboard.drawnAt")  # type: ignore[attr-defined]
    assert tab.page.input_value("#refresh") == "5s"  # type: ignore[attr-defined]
    tab.page.wait_for_function(  # type: ignore[attr-defined]
        f"() => window.heronDashboard.drawnAt !== null && window.heronDashboard.drawnAt > {first} + 4000",
        timeout=15_000)
    tab.page.select_option("#refresh", "")  # type: ignore[attr-defined]
    assert "refresh=" in tab.page.url  # type: ignore[attr-defined]


def test_add_a_panel(tab: Tab, ui_env: Env) -> None:
    with ui_env.heron.client() as c:
        assert c.post("/api/heron/dashboards", json={"title": "Growing", "uid": "growing"}).status_code == 200
    tab.go("/d/growing")
    tab.page.wait_for_function("() => window.heronDashboard && window.heronDashboard.drawnAt !== null")  # type: ignore[attr-defined]
    tab.page.click("#add-panel")  # type: ignore[attr-defined]
    tab.page.keyboard.press("Escape")  # type: ignore[attr-defined]  # cancelled: nothing is added
    tab.page.click("#add-panel")  # type: ignore[attr-defined]
    tab.page.fill("#panel-title", "Up")  # type: ignore[attr-defined]
    tab.page.fill(".panel-expr", "up")  # type: ignore[attr-defined]
    tab.page.click("#dialog-save")  # type: ignore[attr-defined]
    tab.page.locator('[data-panel="0"]', has_text="Up").wait_for()  # type: ignore[attr-defined]
    with ui_env.heron.client() as c:
        panels = c.get("/api/heron/dashboards/growing").json()["panels"]
    assert [(p["title"], p["targets"][0]["expr"]) for p in panels] == [("Up", "up")]


def test_chained_variables(tab: Tab, ui_env: Env) -> None:
    if not ui_env.has("/api/v1/label/"):
        pytest.skip("no label values API in this build")
    with ui_env.heron.client() as c:
        r = c.post("/api/heron/dashboards", json={"title": "Chained", "uid": "chained", "templating": {"list": [
            {"name": "job", "type": "query", "query": "label_values(http_requests_total, job)"},
            {"name": "handler", "type": "query", "query": 'label_values(http_requests_total{job=~"$job"}, handler)',
             "multi": True, "includeAll": True}]},
            "panels": [{"type": "stat", "title": "rps", "targets": [
                {"expr": 'sum(rate(http_requests_total{job=~"$job", handler=~"$handler"}[5m]))'}]}]})
        assert r.status_code == 200, r.text
    tab.go("/d/chained")
    tab.page.wait_for_function("() => window.heronDashboard && window.heronDashboard.drawnAt !== null")  # type: ignore[attr-defined]
    handlers = tab.page.locator('[data-var="handler"] input').evaluate_all("els => els.map(e => e.value)")  # type: ignore[attr-defined]
    assert set(handlers) == {"$__all", "/api/chat", "/api/upload", HOSTILE}  # resolved with $job = api
    assert tab.page.locator('[data-panel="0"]').get_attribute("data-state") == "done"  # type: ignore[attr-defined]
    assert _pwned(tab) is None
