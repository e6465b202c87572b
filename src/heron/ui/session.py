"""Browser sessions: a signed cookie (Starlette SessionMiddleware) and CSRF protection.

Logging in with the admin token mints a per-session admin token (named `ui-session`) and keeps
only that in the cookie: the real admin token never travels back to the browser, logout revokes
the session server-side, and rotating the admin token ends every session. The cookie is
HttpOnly and SameSite=Strict. Unsafe requests authenticated by the cookie must also carry the
session's CSRF token (header `X-CSRF-Token`, or the `csrf` field of the UI's own forms, checked
by their handlers): without it the cookie simply does not authenticate the request.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from typing import TYPE_CHECKING, Any

from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from heron.auth import ADMIN
from heron.ui.querycache import QueryCacheMiddleware

if TYPE_CHECKING:
    from heron.server import Heron

COOKIE = "heron_session"
MAX_AGE = 7 * 86400
SESSION_TOKEN_NAME = "ui-session"
FORM_PREFIX = "/ui/"  # the UI's own form posts: their handlers check the form's csrf field
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def session_secret(heron: Heron) -> str:
    """Generated at first start and kept in the control store, so sessions survive restarts."""
    secret = heron.control.get("ui.session_secret")
    if not secret:
        secret = secrets.token_urlsafe(48)
        heron.control.put("ui.session_secret", secret)
    return secret


class CSRFGuard:
    """Strips the session from unsafe requests that lack the CSRF token (see module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            session = scope.get("session") or {}
            if session.get("token") and not scope["path"].startswith(FORM_PREFIX):
                headers = dict(scope["headers"])
                sent = headers.get(b"x-csrf-token", b"").decode("latin-1")
                if b"authorization" not in headers and not (
                        sent and hmac.compare_digest(sent, str(session.get("csrf", "")))):
                    # A copy: the outer SessionMiddleware still sees (and keeps) the real session.
                    scope = {**scope, "session": {}}
        await self.app(scope, receive, send)


# Machine-to-machine ingest paths (remote write, OTLP, Sentry envelopes): no browser session or
# query cache applies, and skipping that stack saves a large share of their per-request CPU.
INGEST = re.compile(r"^/(?:api/v1/write|v1/(?:metrics|logs|traces)|api/[^/]+/(?:envelope|store)/)$")


class BrowserOnly:
    """Runs the wrapped middleware for every request except the ingest paths (INGEST)."""

    def __init__(self, app: ASGIApp, /, inner: Any, **options: Any) -> None:
        self.app = app
        self.wrapped = inner(app, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and INGEST.match(scope["path"]):
            await self.app(scope, receive, send)
        else:
            await self.wrapped(scope, receive, send)


def middleware(heron: Heron) -> list[Middleware]:
    return [
        Middleware(BrowserOnly, inner=SessionMiddleware, secret_key=session_secret(heron),
                   session_cookie=COOKIE, max_age=MAX_AGE, same_site="strict", https_only=False),
        Middleware(BrowserOnly, inner=CSRFGuard),
        Middleware(BrowserOnly, inner=QueryCacheMiddleware, heron=heron),  # inside: sessions authenticate
    ]


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return str(token)


def check_csrf(request: Request, sent: Any) -> bool:
    expected = request.session.get("csrf")
    return bool(expected) and isinstance(sent, str) and hmac.compare_digest(sent, str(expected))


def login(heron: Heron, request: Request, admin_token: str) -> bool:
    """Start a session when `admin_token` is a valid admin token."""
    if heron.auth.kind_of(admin_token) != ADMIN:
        return False
    # Sessions older than the cookie lifetime can no longer be presented: revoke their tokens.
    heron.control.execute("UPDATE tokens SET revoked_at = ? WHERE name = ? AND kind = ? AND revoked_at IS NULL "
                          "AND created_at < ?", (time.time(), SESSION_TOKEN_NAME, ADMIN, time.time() - MAX_AGE))
    request.session.clear()
    request.session["token"] = heron.auth.create(ADMIN, SESSION_TOKEN_NAME)
    request.session["csrf"] = secrets.token_urlsafe(24)
    return True


def logout(heron: Heron, request: Request) -> None:
    from heron.auth import hash_token

    token = request.session.get("token")
    if token:
        heron.control.execute("UPDATE tokens SET revoked_at = ? WHERE token_hash = ? AND name = ? "
                              "AND revoked_at IS NULL", (time.time(), hash_token(token), SESSION_TOKEN_NAME))
    request.session.clear()


def logged_in(heron: Heron, request: Request) -> bool:
    token = request.session.get("token")
    return bool(token) and heron.auth.kind_of(str(token)) == ADMIN
