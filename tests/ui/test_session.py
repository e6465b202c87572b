"""Login with the admin token, the signed session cookie, CSRF on forms and on API writes."""

from __future__ import annotations

import base64
import json
import re

import httpx

from heron.server import Heron
from heron.ui.session import COOKIE


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html) or re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


async def _browser(heron: Heron) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=heron.app()), base_url="http://heron")


async def _login(c: httpx.AsyncClient, token: str = "test-admin-token", next_: str = "/") -> httpx.Response:
    page = await c.get("/login")
    return await c.post("/ui/login", data={"csrf": _csrf(page.text), "token": token, "next": next_})


async def test_pages_redirect_to_login_and_login_works(heron: Heron) -> None:
    async with await _browser(heron) as c:
        r = await c.get("/explore")
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/explore"
        r = await _login(c, "wrong")
        assert r.status_code == 401 and "not a valid admin token" in r.text
        r = await _login(c, next_="/explore")
        assert r.status_code == 303 and r.headers["location"] == "/explore"
        page = await c.get("/explore")
        assert page.status_code == 200 and "/vendor/promql-editor.min.js" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"


async def test_cookie_holds_a_session_token_not_the_admin_token(heron: Heron) -> None:
    async with await _browser(heron) as c:
        await _login(c)
        raw = c.cookies[COOKIE]
        payload = json.loads(base64.b64decode(raw.split(".")[0] + "=="))
        assert payload["token"] != "test-admin-token" and payload["token"].startswith("heron_admin_")
        assert "test-admin-token" not in raw
        # The session token works for the APIs (GET needs no CSRF token) ...
        assert (await c.get("/api/heron/dashboards")).status_code == 200
        # ... and logout revokes it server-side: a replayed cookie no longer authenticates.
        stolen = raw
        page = await c.get("/settings")
        r = await c.post("/ui/logout", data={"csrf": _csrf(page.text)})
        assert r.status_code == 303
    async with await _browser(heron) as c2:
        c2.cookies.set(COOKIE, stolen)
        assert (await c2.get("/api/heron/dashboards")).status_code == 401
        assert (await c2.get("/")).status_code == 303


async def test_login_form_needs_its_csrf_token(heron: Heron) -> None:
    async with await _browser(heron) as c:
        await c.get("/login")
        r = await c.post("/ui/login", data={"csrf": "forged", "token": "test-admin-token"})
        assert r.status_code == 403
        assert COOKIE not in c.cookies or "token" not in base64.b64decode(c.cookies[COOKIE].split(".")[0] + "==").decode()


async def test_cookie_writes_need_the_csrf_header(heron: Heron) -> None:
    async with await _browser(heron) as c:
        await _login(c)
        body = {"title": "CSRF check"}
        assert (await c.post("/api/heron/dashboards", json=body)).status_code == 401
        assert (await c.post("/api/heron/dashboards", json=body, headers={"X-CSRF-Token": "nope"})).status_code == 401
        token = _csrf((await c.get("/")).text)
        r = await c.post("/api/heron/dashboards", json=body, headers={"X-CSRF-Token": token})
        assert r.status_code == 200 and r.json()["uid"] == "csrf-check"
        # The session survived the rejected requests (the guard strips it per request only).
        assert (await c.get("/dashboards")).status_code == 200


async def test_open_redirects_are_refused(heron: Heron) -> None:
    async with await _browser(heron) as c:
        for bad in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
            r = await _login(c, next_=bad)
            assert r.headers["location"] == "/"


async def test_session_secret_is_generated_once_and_kept(heron: Heron) -> None:
    heron.app()
    secret = heron.control.get("ui.session_secret")
    heron.app()
    assert secret and heron.control.get("ui.session_secret") == secret and len(secret) >= 48


async def test_ingest_paths_skip_the_browser_stack(heron: Heron) -> None:
    """Remote write, OTLP and Sentry ingest take tokens only: a logged-in cookie (even with its
    CSRF header) authenticates nothing there, and no session cookie is ever set on them."""
    async with await _browser(heron) as c:
        await _login(c)
        token = _csrf((await c.get("/")).text)
        for path in ("/api/v1/write", "/v1/metrics", "/v1/logs", "/v1/traces"):
            r = await c.post(path, content=b"x", headers={"X-CSRF-Token": token})
            assert r.status_code == 401, (path, r.status_code, r.text)
            assert "set-cookie" not in r.headers, path
        r = await c.post("/api/v1/write", content=b"x",
                         headers={"Authorization": "Bearer test-admin-token"})
        assert r.status_code == 400 and "set-cookie" not in r.headers
        # The browser paths still see the session.
        assert (await c.get("/dashboards")).status_code == 200
