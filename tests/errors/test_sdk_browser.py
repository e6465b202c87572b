"""`@sentry/browser` (npm, bundled with esbuild) in headless Chromium, on a page of another origin
than Heron: handled and unhandled errors, messages, user and breadcrumbs arrive through CORS."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from heron.testing import HeronProcess
from tests.ui.helpers import CHROMIUM, launch

from .conftest import create_project
from .helpers import wait_until

NPM = shutil.which("npm")
pytestmark = [pytest.mark.peer,
              pytest.mark.skipif(not NPM, reason="npm not installed (scripts/test installs it)"),
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed")]

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>shop</title>
<script src="/sentry.js"></script></head><body><button id="buy">Buy</button><script>
Sentry.init({ dsn: %(dsn)s, release: "web-shop@2.0.0", environment: "production" });
Sentry.setUser({ id: "b1", email: "b1@example.com" });
console.log("basket loaded");
function checkout(n) { throw new TypeError("cart.items is undefined (attempt " + n + ")"); }
for (let i = 0; i < 2; i++) { try { checkout(i); } catch (e) { Sentry.captureException(e); } }
Sentry.captureMessage("payment widget slow", "warning");
document.getElementById("buy").addEventListener("click", () => { window.renderTotals(); });
</script></body></html>"""


def test_browser_sdk_across_origins(heron_proc: HeronProcess, sentry_browser_bundle: Path,
                                    browser_site: str) -> None:
    from playwright.sync_api import sync_playwright

    dsn = create_project(heron_proc, "web-shop")
    (sentry_browser_bundle / "shop.html").write_text(PAGE % {"dsn": json.dumps(dsn)})
    origin = browser_site
    failed: list[str] = []
    console_errors: list[str] = []
    envelopes: list[dict[str, Any]] = []
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        page.on("requestfailed", lambda r: failed.append(f"{r.url} {r.failure}"))
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        page.on("response", lambda r: envelopes.append(
            {"status": r.status, "acao": r.headers.get("access-control-allow-origin")})
            if "/envelope/" in r.url else None)
        page.goto(origin + "/shop.html")
        page.click("#buy")  # an unhandled TypeError: the SDK's global handler reports it
        assert page.evaluate("Sentry.flush(10000)") is True
        browser.close()
    assert not failed, failed
    # the SDK's own requests must not be blocked: every envelope answered 200 and readable cross-origin
    assert len(envelopes) >= 4 and all(e["status"] == 200 for e in envelopes), envelopes
    assert all(e["acao"] in ("*", origin) for e in envelopes), envelopes
    assert not [t for t in console_errors if "CORS" in t or "Sentry" in t], console_errors

    with heron_proc.client() as c:
        def issues() -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = c.get("/api/0/projects/heron/web-shop/issues/").json()
            return got if sum(int(i["count"]) for i in got) >= 4 else []

        got = wait_until(issues)
        summary = sorted((i["title"], i["count"], i["level"]) for i in got)
        # the two handled errors differ in message only (so the SDK's Dedupe sends both): one issue
        assert sorted(s[1:] for s in summary) == [("1", "error"), ("1", "warning"), ("2", "error")], summary
        titles = {s[0] for s in summary}
        assert "payment widget slow" in titles
        handled = next(i for i in got if i["count"] == "2")
        unhandled = next(i for i in got if i["count"] == "1" and i["level"] == "error")
        assert handled["title"].startswith("TypeError") and unhandled["title"].startswith("TypeError")
        assert handled["userCount"] == 1 and handled["firstRelease"] == {"version": "web-shop@2.0.0"}
        assert handled["isUnhandled"] is False and unhandled["isUnhandled"] is True  # Sentry's badge
        ev = c.get(f"/api/0/issues/{handled['id']}/events/latest/").json()
        assert ev["platform"] == "javascript" and ev["sdk"]["name"] == "sentry.javascript.browser"
        entries = {e["type"]: e["data"] for e in ev["entries"]}
        frames = entries["exception"]["values"][-1]["stacktrace"]["frames"]
        assert any(f["function"] == "checkout" for f in frames), frames
        assert entries["request"]["url"] == origin + "/shop.html"
        assert any(b.get("category") == "console" and b.get("message") == "basket loaded"
                   for b in entries["breadcrumbs"]["values"])
        assert ev["user"]["id"] == "b1"
        ev = c.get(f"/api/0/issues/{unhandled['id']}/events/latest/").json()
        exc = {e["type"]: e["data"] for e in ev["entries"]}["exception"]["values"][-1]
        assert exc["mechanism"]["handled"] is False and "renderTotals" in exc["value"]
        tags = dict((t["key"], t["value"]) for t in ev["tags"])
        assert (tags["handled"], tags["mechanism"]) == ("no", "instrument"), tags  # the wrapped click handler
