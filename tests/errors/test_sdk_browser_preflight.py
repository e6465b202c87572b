"""`@sentry/browser` (npm, bundled at test time with esbuild) in real Chromium, served from another
origin than Heron, next to test_sdk_browser.py: here the envelope request that needs a CORS
preflight (Sentry's auth header, the envelope content type, as tunnels and custom transports send
it), captured and uncaught exceptions as issues, and the preflight answer itself."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from heron.testing import HeronProcess

from .conftest import create_project
from .helpers import wait_until

NODE, NPM = shutil.which("node"), shutil.which("npm")
CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.peer,
              pytest.mark.skipif(not (NODE and NPM), reason="node/npm not installed"),
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed")]

PAGE = """<!doctype html><html><head><meta charset="utf-8"><script src="/sentry.js"></script></head><body>
<script>
Sentry.init({ dsn: DSN, release: "web@2.1.0", environment: "production" });
Sentry.setUser({ id: "b1", email: "b1@example.com" });
Sentry.addBreadcrumb({ category: "auth", message: "login", data: { password: "pw-123456" } });
function renderCart(cart) { return cart.items.length; }
window.results = {};
(async () => {
  try { renderCart({}); } catch (e) { Sentry.captureException(e); }
  setTimeout(() => { applyCoupon("SPRING"); }, 0);  // uncaught: the SDK's global handler reports it
  await new Promise((resolve) => setTimeout(resolve, 200));
  window.results.flushed = await Sentry.flush(10000);
  // what a tunnel or a custom transport does: auth in a header, an envelope content type
  const url = new URL(DSN);
  const env = JSON.stringify({}) + "\\n" + JSON.stringify({ type: "event" }) + "\\n" +
              JSON.stringify({ message: "sent by fetch", level: "warning", platform: "javascript" }) + "\\n";
  const r = await fetch(url.origin + "/api" + url.pathname + "/envelope/", { method: "POST", body: env,
    headers: { "Content-Type": "application/x-sentry-envelope",
               "X-Sentry-Auth": "Sentry sentry_version=7, sentry_key=" + url.username } });
  window.results.fetch = { status: r.status, body: await r.json() };
})().catch((e) => { window.results.error = String(e); });
</script></body></html>"""


def test_browser_envelope_with_auth_header_passes_cors_preflight(heron_proc: HeronProcess, sentry_browser_bundle: Path,
                                                                 browser_site: str) -> None:
    bundle, site = sentry_browser_bundle, browser_site
    from playwright.sync_api import sync_playwright

    dsn = create_project(heron_proc, "web-preflight")
    (bundle / "preflight.html").write_text(PAGE.replace("DSN", json.dumps(dsn), 1).replace("new URL(DSN)",
                                                                                       f"new URL({json.dumps(dsn)})"))
    requests: list[tuple[str, str]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append((r.method, r.url)) if "/envelope/" in r.url else None)
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(site + "/preflight.html")
            page.wait_for_function("window.results.fetch || window.results.error", timeout=30_000)
            results: dict[str, Any] = page.evaluate("window.results")
        finally:
            browser.close()
    assert "error" not in results, results
    assert results["flushed"] is True
    assert results["fetch"]["status"] == 200 and len(results["fetch"]["body"]["id"]) == 32
    # The SDK's own requests are "simple" (key in the query string). The fetch with X-Sentry-Auth
    # and an envelope content type is not: Chromium sends it only after a successful CORS
    # preflight (which Playwright does not list), and lets the page read the answer.
    assert {m for m, _ in requests} == {"POST"}, requests
    assert sum("sentry_key=" in u for _, u in requests) >= 2 and requests[-1][1].endswith("/envelope/"), requests
    assert not [e for e in errors if "CORS" in e or "Access-Control" in e], errors
    origin = {"Origin": site, "Access-Control-Request-Method": "POST",
              "Access-Control-Request-Headers": "content-type,x-sentry-auth"}
    with heron_proc.client() as c:
        pre = c.options(f"/api/{dsn.rsplit('/', 1)[1]}/envelope/", headers=origin)
    assert pre.status_code in (200, 204)
    assert pre.headers["access-control-allow-origin"] in ("*", site)
    assert {"content-type", "x-sentry-auth"} <= {h.strip() for h in pre.headers["access-control-allow-headers"].split(",")}

    with heron_proc.client() as c:
        def issues() -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = c.get("/api/0/projects/heron/web-preflight/issues/").json()
            return got if sum(int(i["count"]) for i in got) >= 3 else []

        got = wait_until(issues)
        by_title = {i["title"]: i for i in got}
        assert set(by_title) == {"TypeError: Cannot read properties of undefined (reading 'length')",
                                 "ReferenceError: applyCoupon is not defined", "sent by fetch"}, list(by_title)
        issue = by_title["TypeError: Cannot read properties of undefined (reading 'length')"]
        assert (issue["count"], issue["userCount"], issue["level"]) == ("1", 1, "error")
        assert issue["firstRelease"] == {"version": "web@2.1.0"}
        ev = wait_until(lambda: c.get(f"/api/0/issues/{issue['id']}/events/latest/").json().get("entries"))
        ev = c.get(f"/api/0/issues/{issue['id']}/events/latest/").json()
        entries = {e["type"]: e["data"] for e in ev["entries"]}
        frames = entries["exception"]["values"][-1]["stacktrace"]["frames"]
        assert any(f.get("function") == "renderCart" for f in frames), frames
        crumb = next(b for b in entries["breadcrumbs"]["values"] if b.get("category") == "auth")
        assert crumb["data"] == {"password": "[Filtered]"}
        assert ev["platform"] == "javascript" and ev["sdk"]["name"] == "sentry.javascript.browser"
        assert "pw-123456" not in json.dumps(ev)
