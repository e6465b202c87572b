"""Every page loads in a real Chromium without console errors or failed requests; screenshots."""

from __future__ import annotations

import pytest

from tests.ui.browser.conftest import Env, Tab, missing

pytestmark = pytest.mark.peer

PAGES = [("/", "overview"), ("/logs", "logs-page"), ("/traces", "traces-page"), ("/explore?q=sum%20by%20(status)%20(rate(http_requests_total%5B5m%5D))&range=1h",
         "explore"), ("/dashboards", "dashboards"), ("/dashboards/import", "import"),
         ("/d/heron-app-performance", "dashboard-app-performance"), ("/alerts", "alerts"),
         ("/silences", "silences"), ("/targets", "targets"), ("/issues", "issues"), ("/settings", "settings")]


@pytest.mark.parametrize(("path", "name"), PAGES, ids=[n for _, n in PAGES])
def test_page_loads_cleanly(tab: Tab, ui_env: Env, path: str, name: str) -> None:
    tab.go(path)
    tab.page.wait_for_load_state("networkidle")  # type: ignore[attr-defined]
    assert tab.page.locator("header.topbar nav a.active").count() == 1  # type: ignore[attr-defined]
    tab.shot(name)
    assert tab.problems(missing(ui_env)) == []
