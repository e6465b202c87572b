"""Web UI routes: pages, static assets, login/logout, and the dashboards API.

Pages are server-rendered shells (Jinja2, autoescaped); each page's JS module reads its data from
the JSON APIs. The dashboards API speaks a Heron path (`/api/heron/dashboards`) and Grafana's own
(`/api/dashboards/db`, `/api/dashboards/uid/{uid}`, `/api/search`) so Grafana tooling can push
dashboards to Heron.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from heron.alerting import history
from heron.api import heron_of, requires
from heron.auth import API
from heron.exceptions import BadRequest
from heron.ui import logsearch, session, tracesearch
from heron.ui.assets import Assets
from heron.ui.grafana import DashboardError, panel_count, parse
from heron.ui.markdown import MAX_CHARS as MAX_MARKDOWN
from heron.ui.markdown import render_tree
from heron.ui.store import DashboardStore

if TYPE_CHECKING:
    from heron.server import Heron

log = logging.getLogger("heron.ui")
UI_DIR = Path(__file__).resolve().parents[1] / "ui"
templates = Jinja2Templates(directory=str(UI_DIR / "templates"))
ASSETS = Assets(UI_DIR / "static")  # pages load `{{ assets }}/js/...`: content-hashed, cached for a year
templates.env.globals["assets"] = ASSETS.prefix
MAX_IMPORT_BYTES = 5 * 1024 * 1024
SECURITY_HEADERS = {
    # No inline scripts, nothing from other origins: injected markup cannot run.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
NAV = [("overview", "/", "Overview"), ("explore", "/explore", "Explore"),
       ("dashboards", "/dashboards", "Dashboards"), ("alerts", "/alerts", "Alerts"),
       ("silences", "/silences", "Silences"), ("targets", "/targets", "Targets"),
       ("logs", "/logs", "Logs"), ("traces", "/traces", "Traces"),
       ("issues", "/issues", "Issues"), ("settings", "/settings", "Settings")]


def _store(request: Request) -> DashboardStore:
    return DashboardStore(heron_of(request).control)


def _safe_next(value: str | None) -> str:
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def render(request: Request, template: str, page: str, data: dict[str, Any] | None = None,
           status: int = 200, **context: Any) -> Response:
    heron = heron_of(request)
    ctx = {"page": page, "nav": NAV, "csrf": session.csrf_token(request), "data": data or {},
           "theme": (heron.config.ui or {}).get("default_theme", "auto"), **context}
    resp = templates.TemplateResponse(request, template, ctx, status_code=status)
    resp.headers.update(SECURITY_HEADERS)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def page(template: str, name: str, title: str) -> Any:
    async def handler(request: Request) -> Response:
        if not session.logged_in(heron_of(request), request):
            return RedirectResponse("/login?next=" + quote(request.url.path), 303)
        data: dict[str, Any] = {k: v for k, v in request.path_params.items()}
        if template == "dashboard.html":  # embedded: the page needs no round trip before its queries
            data["model"] = _store(request).get(request.path_params["uid"])
        return render(request, template, name, data, title=title)
    return handler


async def login_page(request: Request) -> Response:
    return render(request, "login.html", "login", title="Log in",
                  next=_safe_next(request.query_params.get("next")), error=None)


async def login_submit(request: Request) -> Response:
    heron = heron_of(request)
    form = await request.form()
    nxt = _safe_next(str(form.get("next", "/")))
    if not session.check_csrf(request, form.get("csrf")):
        return render(request, "login.html", "login", status=403, title="Log in", next=nxt,
                      error="The form expired; please try again.")
    token = str(form.get("token", "")).strip()
    if not token or not session.login(heron, request, token):
        return render(request, "login.html", "login", status=401, title="Log in", next=nxt,
                      error="That is not a valid admin token.")
    return RedirectResponse(nxt, 303)


async def logout_submit(request: Request) -> Response:
    form = await request.form()
    if session.check_csrf(request, form.get("csrf")):
        session.logout(heron_of(request), request)
    return RedirectResponse("/login", 303)


# --- dashboards API ---------------------------------------------------------------------------

def _bad(exc: DashboardError, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": str(exc), "path": exc.path}, status)


async def _json_body(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_IMPORT_BYTES:
        raise DashboardError(f"larger than {MAX_IMPORT_BYTES // 1024 // 1024} MiB")
    return parse(body)


@requires(API, reply="json")
async def dashboards_list(request: Request) -> Response:
    q, tag = request.query_params.get("query", ""), request.query_params.get("tag", "")
    return JSONResponse([{"uid": d.uid, "title": d.title, "tags": d.tags, "source": d.source,
                          "version": d.version, "updated": d.updated_at, "url": f"/d/{d.uid}"}
                         for d in _store(request).list(q, tag)])


@requires(API, reply="json")
async def dashboard_get(request: Request) -> Response:
    model = _store(request).get(request.path_params["uid"])
    if model is None:
        return JSONResponse({"error": "dashboard not found"}, 404)
    return JSONResponse(model)


@requires(API, reply="json")
async def dashboard_save(request: Request) -> Response:
    """Body: a dashboard model, or {"dashboard": model, "overwrite": bool} (Grafana's shape)."""
    try:
        body = await _json_body(request)
        envelope = "dashboard" in body and isinstance(body["dashboard"], dict)
        model = body["dashboard"] if envelope else body
        overwrite = bool(body.get("overwrite", True)) if envelope else True
        version = model.get("version") if request.query_params.get("check_version") else None
        source = "grafana" if request.query_params.get("import") else "user"
        saved = _store(request).save(model, source, uid=request.path_params.get("uid"),
                                     overwrite=overwrite, version=version)
    except DashboardError as exc:
        status = 412 if exc.path == "version" or "already exists" in str(exc) else 400
        return _bad(exc, status)
    return JSONResponse({"status": "success", "uid": saved["uid"], "version": saved["version"],
                         "url": f"/d/{saved['uid']}", "panels": panel_count(saved),
                         "unsupported": [p.get("title", "") for p in saved["panels"] if p.get("heronUnsupported")]})


@requires(API, reply="json")
async def dashboard_delete(request: Request) -> Response:
    if not _store(request).delete(request.path_params["uid"]):
        return JSONResponse({"error": "dashboard not found"}, 404)
    return JSONResponse({"status": "success"})


@requires(API, reply="json")
async def grafana_get(request: Request) -> Response:
    model = _store(request).get(request.path_params["uid"])
    if model is None:
        return JSONResponse({"message": "Dashboard not found"}, 404)
    source = model.pop("heronSource", "")
    return JSONResponse({"dashboard": model, "meta": {"slug": model["uid"], "url": f"/d/{model['uid']}",
                                                      "provisioned": source in ("builtin", "file")}})


@requires(API, reply="json")
async def grafana_search(request: Request) -> Response:
    q, tag = request.query_params.get("query", ""), request.query_params.get("tag", "")
    return JSONResponse([{"uid": d.uid, "title": d.title, "tags": d.tags, "type": "dash-db",
                          "url": f"/d/{d.uid}", "uri": f"db/{d.uid}"} for d in _store(request).list(q, tag)])


@requires(API, reply="json")
async def markdown(request: Request) -> Response:
    """Text panels: markdown → a tree of allowed tags and text (see heron.ui.markdown)."""
    try:
        body = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError as exc:
        return JSONResponse({"error": f"body must be JSON: line {exc.lineno} column {exc.colno}: {exc.msg}"}, 400)
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str):
        return JSONResponse({"error": "text: required, a string"}, 400)
    if len(text) > MAX_MARKDOWN:
        return JSONResponse({"error": f"text: at most {MAX_MARKDOWN} characters"}, 413)
    return JSONResponse({"tree": render_tree(text)})


# --- logs and traces search ---------------------------------------------------------------------

def _range_ns(request: Request) -> tuple[int, int]:
    """start/end query parameters in unix seconds (default: the last hour)."""
    now = time.time()
    out = []
    for name, default in (("start", now - 3600), ("end", now)):
        raw = request.query_params.get(name, "")
        try:
            v = float(raw) if raw else default
        except ValueError:
            raise BadRequest(f"{name}: {raw[:40]!r} is not unix seconds") from None
        if not math.isfinite(v) or v < 0 or v > 1e11:
            raise BadRequest(f"{name}: out of range")
        out.append(int(v * 1e9))
    if out[0] > out[1]:
        raise BadRequest("start must not be after end")
    return out[0], out[1]


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name, "")
    if not raw:
        return default
    if not raw.isdigit():
        raise BadRequest(f"{name}: must be a positive integer")
    return int(raw)


async def _search(request: Request, fn: Any) -> Response:
    try:
        call = fn()
        data = await asyncio.get_running_loop().run_in_executor(None, call)
    except BadRequest as exc:
        return JSONResponse({"status": "error", "error": str(exc)}, 400)
    except Exception as exc:  # e.g. a regular expression RE2 refuses: say so, briefly
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        log.warning("ui search failed: %s", first)
        return JSONResponse({"status": "error", "error": "query failed: " + first}, 422)
    return JSONResponse({"status": "success", "data": data})


@requires(API, reply="json")
async def search_logs(request: Request) -> Response:
    storage, q = heron_of(request).storage, request.query_params

    def prepare() -> Any:
        start, end = _range_ns(request)
        limit = _int(request, "limit", 500)
        return lambda: logsearch.search(storage, q.get("query", ""), start, end, limit,
                                        q.get("service", ""), q.get("level", ""))
    return await _search(request, prepare)


@requires(API, reply="json")
async def search_traces(request: Request) -> Response:
    storage, q = heron_of(request).storage, request.query_params

    def prepare() -> Any:
        start, end = _range_ns(request)
        limit = _int(request, "limit", 50)
        return lambda: tracesearch.search(storage, start, end, q.get("service", ""), q.get("operation", ""),
                                          q.get("min_duration", ""), q.get("max_duration", ""),
                                          q.get("errors", "") in ("1", "true"), limit)
    return await _search(request, prepare)


# --- settings: API tokens -----------------------------------------------------------------------

@requires("admin", reply="json")
async def tokens_list(request: Request) -> Response:
    rows = heron_of(request).control.query(
        "SELECT name, kind, created_at FROM tokens WHERE revoked_at IS NULL AND name != ? ORDER BY created_at",
        (session.SESSION_TOKEN_NAME,))
    return JSONResponse([{"name": r["name"], "kind": r["kind"], "created": r["created_at"]} for r in rows])


@requires("admin", reply="json")
async def tokens_create(request: Request) -> Response:
    try:
        body = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError:
        return JSONResponse({"error": "body must be JSON: {\"name\": ..., \"kind\": \"api\"|\"ingest\"}"}, 400)
    name, kind = body.get("name"), body.get("kind", API)
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        return JSONResponse({"error": "name: required, at most 100 characters"}, 400)
    if kind not in ("api", "ingest"):
        return JSONResponse({"error": "kind: must be 'api' or 'ingest'"}, 400)
    token = heron_of(request).auth.create(kind, name.strip())
    return JSONResponse({"name": name.strip(), "kind": kind, "token": token, "created": time.time()}, 201)


@requires("admin", reply="json")
async def tokens_revoke(request: Request) -> Response:
    name, kind = request.path_params["name"], request.query_params.get("kind", API)
    if kind not in ("api", "ingest"):
        return JSONResponse({"error": "kind: must be 'api' or 'ingest'"}, 400)
    if not heron_of(request).auth.revoke(name, kind):
        return JSONResponse({"error": "no such token"}, 404)
    return JSONResponse({"status": "success"})


@requires(API, reply="json")
async def notifications(request: Request) -> Response:
    """Notification history: every notification sent, failed or dropped, newest first, paginated
    by id (`before` = the previous page's `next`); filters: receiver, integration, outcome."""
    control, q = heron_of(request).control, request.query_params
    if not control.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'am_notification_history'"):
        return JSONResponse({"error": "alerting is not part of this Heron build"}, 404)
    try:
        limit = _int(request, "limit", 50)
        before = _int(request, "before", 0) or None
    except BadRequest as exc:
        return JSONResponse({"error": str(exc)}, 400)
    if not 1 <= limit <= 500:
        return JSONResponse({"error": "limit: between 1 and 500"}, 400)
    outcome = q.get("outcome", "")
    if outcome and outcome not in history.OUTCOMES:
        return JSONResponse({"error": f"outcome: one of {', '.join(history.OUTCOMES)}"}, 400)
    data = await asyncio.get_running_loop().run_in_executor(None, lambda: history.page(
        control, limit, before, q.get("receiver", ""), outcome, q.get("integration", "")))
    return JSONResponse(data)


class _Static(StaticFiles):
    """The same files at stable URLs (links from outside), with a short cache; pages use ASSETS."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        resp = super().file_response(*args, **kwargs)
        resp.headers["Cache-Control"] = "public, max-age=300"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        return resp


def routes(heron: Heron) -> list[BaseRoute]:
    pages = [
        ("/", "overview.html", "overview", "Overview"),
        ("/explore", "explore.html", "explore", "Explore"),
        ("/dashboards", "dashboards.html", "dashboards", "Dashboards"),
        ("/dashboards/import", "import.html", "dashboards", "Import dashboard"),
        ("/d/{uid}", "dashboard.html", "dashboards", "Dashboard"),
        ("/d/{uid}/{slug}", "dashboard.html", "dashboards", "Dashboard"),
        ("/alerts", "alerts.html", "alerts", "Alerts"),
        ("/silences", "silences.html", "silences", "Silences"),
        ("/targets", "targets.html", "targets", "Targets"),
        ("/issues", "issues.html", "issues", "Issues"),
        ("/issues/{issue_id}", "issue.html", "issues", "Issue"),
        ("/settings", "settings.html", "settings", "Settings"),
        ("/logs", "logs.html", "logs", "Logs"),
        ("/traces", "traces.html", "traces", "Traces"),
        ("/traces/{trace_id}", "trace.html", "traces", "Trace"),
    ]
    out: list[BaseRoute] = [Route(path, page(tpl, name, title), methods=["GET"])
                            for path, tpl, name, title in pages]
    out += [
        Route("/login", login_page, methods=["GET"]),
        Route("/errors/issues/{issue_id}", lambda r: RedirectResponse("/issues/" + quote(r.path_params["issue_id"]), 301)),
        Route("/ui/login", login_submit, methods=["POST"]),
        Route("/ui/logout", logout_submit, methods=["POST"]),
        Route("/api/heron/dashboards", dashboards_list, methods=["GET"]),
        Route("/api/heron/dashboards", dashboard_save, methods=["POST"]),
        Route("/api/heron/dashboards/{uid}", dashboard_get, methods=["GET"]),
        Route("/api/heron/dashboards/{uid}", dashboard_save, methods=["PUT"]),
        Route("/api/heron/dashboards/{uid}", dashboard_delete, methods=["DELETE"]),
        Route("/api/heron/notifications", notifications, methods=["GET"]),
        Route("/api/heron/markdown", markdown, methods=["POST"]),
        Route("/api/heron/search/logs", search_logs, methods=["GET"]),
        Route("/api/heron/search/traces", search_traces, methods=["GET"]),
        Route("/api/heron/tokens", tokens_list, methods=["GET"]),
        Route("/api/heron/tokens", tokens_create, methods=["POST"]),
        Route("/api/heron/tokens/{name}", tokens_revoke, methods=["DELETE"]),
        Route("/api/dashboards/db", dashboard_save, methods=["POST"]),
        Route("/api/dashboards/uid/{uid}", grafana_get, methods=["GET"]),
        Route("/api/dashboards/uid/{uid}", dashboard_delete, methods=["DELETE"]),
        Route("/api/search", grafana_search, methods=["GET"]),
        Route("/assets/{version}/{path:path}", ASSETS.endpoint, methods=["GET", "HEAD"]),
        Mount("/static", app=_Static(directory=str(UI_DIR / "static")), name="static"),
    ]
    return out
