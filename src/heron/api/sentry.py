"""Sentry's protocol at the edge: SDK ingest (`/api/<project>/envelope/`, `/store/`, with CORS)
and the parts of the `/api/0/` web API that tools use (sentry-cli releases and deploys, issue
and event listing, issue status updates), authenticated with a Heron API token.

Ingest replies as Relay does: 200 `{"id": ...}` once the raw envelope is durable in the envelope
queue (processing follows behind it); 400 `{"detail": reason}` for a bad encoding or framing;
401/403 for keys; 429 with `Retry-After` and `X-Sentry-Rate-Limits` (project limits and queue
backpressure).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from heron.api import heron_of
from heron.errors.ingest import ErrorTracking, RateLimited, tracking
from heron.errors.projects import AuthFailed, Project, base_url, dsn, iso, key_from_request
from heron.errors.queries import ErrorQueries, IssueFilter, parse_query, period_seconds
from heron.errors.releases import Releases
from heron.exceptions import Backpressure, BadRequest, PipelineClosed
from heron.server import Heron

CORS = {"Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": "content-type, content-encoding, x-sentry-auth, authentication, "
                                        "authorization, sentry-trace, baggage, origin, accept, x-requested-with",
        "Access-Control-Expose-Headers": "x-sentry-error, x-sentry-rate-limits, retry-after",
        "Access-Control-Max-Age": "3600"}
MAX_REQUEST = 50 << 20
INLINE_DECODE = 256 << 10


def detail(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status, headers={**CORS, "X-Sentry-Error": message[:200],
                                                              **(headers or {})})


# ---- ingest --------------------------------------------------------------------------------
async def preflight(request: Request) -> Response:
    return Response(status_code=200, headers=CORS)


class Ingest:
    """`/api/<id>/envelope/` and `/store/` as a bare ASGI app (Starlette routes a class instance
    to it as is): no Request or Response objects, a fixed header list for the 200 reply. The
    ack path is most of a busy instance's request CPU; replies and headers are byte for byte
    what `detail()` and a JSONResponse send."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._ingest(scope, receive)
        if isinstance(response, bytes):
            await send({"type": "http.response.start", "status": 200,
                        "headers": [*_CORS_RAW, (b"content-length", b"%d" % len(response)), _JSON]})
            await send({"type": "http.response.body", "body": response})
        elif response is not None:
            await response(scope, receive, send)

    async def _ingest(self, scope: Scope, receive: Receive) -> Response | bytes | None:
        heron: Heron = scope["app"].state.heron
        et = tracking(heron)
        try:
            pid = int(scope["path_params"]["project_id"])
        except ValueError:
            return detail(404, "unknown project")
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect: nobody left to answer
                return None
            chunk = message.get("body", b"")
            if chunk:
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_REQUEST:  # answered now: the rest is never buffered (nor read)
                    return detail(413, f"request body larger than {MAX_REQUEST} bytes")
            more = message.get("more_body", False)
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        headers: dict[str, str] = {}
        for k, v in scope["headers"]:
            if k in _WANTED:
                name = k.decode("latin-1")
                if name not in headers:  # the first one, as Starlette's Headers.get
                    headers[name] = v.decode("latin-1")
        encoding = headers.get("content-encoding")
        bad: BadRequest | None = None
        try:
            # Decompressing is the one costly check left in the request path (~30 µs for a 3 KB
            # gzip body); big bodies go to a thread so the event loop keeps serving.
            data = et.decode(body, encoding) if size < INLINE_DECODE else \
                await asyncio.get_running_loop().run_in_executor(None, et.decode, body, encoding)
        except BadRequest as exc:
            data, bad = b"", exc
        env, env_dsn = None, None
        if self.kind == "envelope" and data:
            env, bad_env, env_dsn = et.parse(data)
            bad = bad or bad_env
        qs = scope.get("query_string", b"")
        try:
            et.projects.authenticate(key_from_request(headers, QueryParams(qs) if qs else {}, env_dsn), pid)
        except AuthFailed as exc:
            return detail(exc.status, str(exc))
        project = et.projects.cached(pid)
        if project is None:
            return detail(403, "event submission rejected with_reason: ProjectId")
        client = scope.get("client")
        ip = client[0] if client else None
        try:
            if bad is not None:
                raise bad
            eid = await et.accept(project, self.kind, body, encoding, data, ip, env)
        except BadRequest as exc:
            heron.metrics.ingest_rejected.labels("errors", "bad_request").inc()
            return detail(400, str(exc))
        except RateLimited as exc:
            heron.metrics.ingest_rejected.labels("errors", "rate_limited").inc()
            return detail(429, str(exc), {"Retry-After": str(exc.retry_after),
                                          "X-Sentry-Rate-Limits": f"{exc.retry_after}:{exc.categories}:project"})
        except Backpressure as exc:
            return detail(429, str(exc), {"Retry-After": str(exc.retry_after),
                                          "X-Sentry-Rate-Limits": f"{exc.retry_after}::organization"})
        except PipelineClosed as exc:
            return detail(503, str(exc), {"Retry-After": "5"})
        return b'{"id":%s}' % json.dumps(eid).encode() if eid else b"{}"


_PATH = re.compile(r"/api/([^/]+)/(envelope|store)/")


def front(app: ASGIApp) -> ASGIApp:
    """The app's middleware stack with the two ingest endpoints ahead of it: POSTs to them skip
    the error, browser-session and exception middleware and the route table (~10% of their
    CPU). Every other request, and these paths with another method, go through the stack."""
    ingest = {"envelope": Ingest("envelope"), "store": Ingest("store")}

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            m = _PATH.fullmatch(scope["path"])
            if m:
                scope["path_params"] = {"project_id": m[1]}
                await ingest[m[2]](scope, receive, send)
                return
        await app(scope, receive, send)

    return dispatch


_WANTED = {b"content-encoding", b"x-sentry-auth", b"authorization"}
"""The request headers ingest reads (`key_from_request`, the encoding)."""
_CORS_RAW = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in CORS.items()]
_JSON = (b"content-type", b"application/json")


# ---- web API helpers ----------------------------------------------------------------------
def api(fn: Any) -> Any:
    """Guard with a Heron API (or admin) token, run the (synchronous) handler in a worker thread
    and map domain errors to Sentry's `{"detail"}`."""

    async def wrapper(request: Request) -> Response:
        heron = heron_of(request)
        if not heron.auth.allows(request, "api"):
            return JSONResponse({"detail": "Authentication credentials were not provided."}, 401)
        request.state.body = await request.body()
        try:
            # storage and control-store reads block: never on the event loop
            return await asyncio.get_running_loop().run_in_executor(  # type: ignore[no-any-return]
                None, fn, request, tracking(heron))
        except BadRequest as exc:
            return JSONResponse({"detail": str(exc)}, 400)
        except KeyError as exc:
            return JSONResponse({"detail": f"The requested resource does not exist: {exc.args[0]}"}, 404)
        except (ValueError, json.JSONDecodeError) as exc:
            return JSONResponse({"detail": f"invalid request: {exc}"}, 400)

    return wrapper


def _json(request: Request) -> dict[str, Any]:
    body: bytes = request.state.body
    if not body:
        return {}
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def _project(et: ErrorTracking, ref: str) -> Project:
    p = et.projects.get(ref)
    if p is None:
        raise KeyError(f"project {ref}")
    return p


def _queries(heron: Heron) -> ErrorQueries:
    return ErrorQueries(heron.control, heron.storage)


def _issue_api(heron: Heron, row: dict[str, Any], stats: list[list[int]] | None = None,
               period: str = "24h") -> dict[str, Any]:
    details = json.loads(row.get("status_details") or "{}")
    status = row["status"]
    out = {"id": str(row["id"]), "shortId": f"{row['project_slug'].upper()}-{row['short_id']}",
           "title": row["title"], "culprit": row["culprit"], "level": row["level"], "status": status,
           "substatus": row["substatus"], "statusDetails": {k: v for k, v in details.items() if k != "ignoreBase"},
           "type": row["type"], "metadata": json.loads(row["metadata"]), "platform": row["platform"],
           "count": str(row["times_seen"]), "userCount": row["user_count"],
           "firstSeen": iso(row["first_seen"]), "lastSeen": iso(row["last_seen"]),
           "firstRelease": {"version": row["first_release"]} if row["first_release"] else None,
           "lastRelease": {"version": row["last_release"]} if row["last_release"] else None,
           "permalink": f"{base_url(heron.config)}/errors/issues/{row['id']}",
           "project": {"id": str(row["project_id"]), "slug": row["project_slug"], "name": row["project_name"]},
           "isUnhandled": bool(row.get("unhandled")), "hasSeen": False, "isBookmarked": False, "isPublic": False,
           "annotations": [], "numComments": 0, "assignedTo": None, "logger": None}
    if "ignoreUntil" in details:
        out["statusDetails"]["ignoreUntil"] = iso(details["ignoreUntil"])
    if stats is not None:
        out["stats"] = {period: stats}
    return out


def _issue_row(heron: Heron, et: ErrorTracking, issue_id: str) -> dict[str, Any]:
    try:
        iid = int(issue_id)
    except ValueError:
        raise KeyError(f"issue {issue_id}") from None
    row = et.issues.get(iid)
    if row is None:
        raise KeyError(f"issue {issue_id}")
    p = et.projects.get(row["project_id"])
    row["project_slug"], row["project_name"] = (p.slug, p.name) if p else ("?", "?")
    return row


def event_api(ev: dict[str, Any], project_id: int) -> dict[str, Any]:
    """A stored event in Sentry's event-detail shape (entries, tags as key/value pairs)."""
    entries: list[dict[str, Any]] = []
    if ev.get("exception"):
        entries.append({"type": "exception", "data": {"values": ev["exception"]["values"], "hasSystemFrames": True}})
    if ev.get("logentry"):
        entries.append({"type": "message", "data": ev["logentry"]})
    if ev.get("breadcrumbs"):
        crumbs = [{**b, "timestamp": iso(b.get("timestamp"))} for b in ev["breadcrumbs"]["values"]]
        entries.append({"type": "breadcrumbs", "data": {"values": crumbs}})
    if ev.get("request"):
        entries.append({"type": "request", "data": ev["request"]})
    if ev.get("threads"):
        entries.append({"type": "threads", "data": ev["threads"]})
    tags = [{"key": k, "value": v} for k, v in sorted((ev.get("tags") or {}).items())]
    for key in ("environment", "release", "level"):
        if ev.get(key) and not any(t["key"] == key for t in tags):
            tags.append({"key": key, "value": ev[key]})
    return {"id": ev.get("event_id"), "eventID": ev.get("event_id"), "groupID": str(ev.get("_issue", "")),
            "projectID": str(project_id), "title": ev.get("title"), "culprit": ev.get("culprit"),
            "message": (ev.get("logentry") or {}).get("formatted", ""), "platform": ev.get("platform"),
            "type": ev.get("type"), "metadata": ev.get("metadata", {}), "level": ev.get("level"),
            "dateCreated": iso(ev.get("timestamp")), "dateReceived": iso(ev.get("received")),
            "release": {"version": ev["release"]} if ev.get("release") else None,
            "environment": ev.get("environment"), "dist": ev.get("dist"),
            "user": ev.get("user"), "contexts": ev.get("contexts", {}), "sdk": ev.get("sdk"),
            "tags": tags, "fingerprints": ev.get("fingerprint") or ["{{ default }}"],
            "entries": entries, "context": ev.get("extra", {}), "size": 0, "errors": []}


# ---- web API handlers ---------------------------------------------------------------------
@api
def api_root(request: Request, et: ErrorTracking) -> Response:
    return JSONResponse({"version": "0", "auth": {"scopes": ["project:releases", "project:read",
                                                             "project:write", "event:read", "event:write",
                                                             "org:read"]},
                         "user": {"id": "1", "name": "heron", "username": "heron", "email": ""}})


@api
def organizations(request: Request, et: ErrorTracking) -> Response:
    org = {"id": "1", "slug": "heron", "name": "Heron", "status": {"id": "active", "name": "active"},
           "features": [], "require2FA": False, "isEarlyAdopter": False}
    if "org" in request.path_params:
        return JSONResponse(org)
    return JSONResponse([org])


@api
def projects_list(request: Request, et: ErrorTracking) -> Response:
    if request.method == "POST":
        data = _json(request)
        from heron.exceptions import HeronError

        try:
            project, _ = et.projects.create(str(data.get("name") or data.get("slug") or ""),
                                            str(data.get("platform") or ""))
        except HeronError as exc:
            return JSONResponse({"detail": str(exc)}, 409)
        return JSONResponse(project.api(), 201)
    return JSONResponse([p.api() for p in et.projects.all()])


@api
def project_detail(request: Request, et: ErrorTracking) -> Response:
    return JSONResponse(_project(et, request.path_params["project"]).api())


@api
def project_keys(request: Request, et: ErrorTracking) -> Response:
    p = _project(et, request.path_params["project"])
    if request.method == "POST":
        data = _json(request)
        et.projects.add_key(p.id, str(data.get("name") or "Default")[:64])
    base = base_url(heron_of(request).config)
    return JSONResponse([{"id": k["public_key"], "name": k["label"], "label": k["label"], "public": k["public_key"],
                          "secret": None, "projectId": p.id, "isActive": k["revoked_at"] is None,
                          "dateCreated": iso(k["created_at"]),
                          "dsn": {"public": dsn(k["public_key"], p.id, base), "secret": dsn(k["public_key"], p.id, base)}}
                         for k in et.projects.keys(p.id)], 201 if request.method == "POST" else 200)


@api
def project_key_delete(request: Request, et: ErrorTracking) -> Response:
    _project(et, request.path_params["project"])
    if not et.projects.revoke_key(request.path_params["key"]):
        raise KeyError(f"key {request.path_params['key']}")
    return Response(status_code=204)


def _filter(request: Request, project_ids: list[int]) -> IssueFilter:
    q = request.query_params
    f = IssueFilter(project_ids=project_ids, sort=q.get("sort", "date"))
    try:
        f.limit = max(1, min(100, int(q.get("limit", "25"))))
        f.offset = max(0, int(q.get("cursor", "0").split(":")[-2] if ":" in q.get("cursor", "") else q.get("cursor", "0") or 0))
    except ValueError:
        raise BadRequest("limit and cursor must be integers") from None
    parse_query(q.get("query", "is:unresolved"), f)
    if q.get("environment"):
        f.environment = q["environment"]
    return f


def _issue_list(request: Request, et: ErrorTracking, project_ids: list[int]) -> Response:
    heron = heron_of(request)
    if request.method == "PUT":  # bulk update: ?id=1&id=2
        data = _json(request)
        ids = request.query_params.getlist("id")
        for iid in ids:
            row = _issue_row(heron, et, iid)
            _apply_status(heron, et, row, data)
        return JSONResponse({"status": data.get("status"), "statusDetails": data.get("statusDetails", {})})
    f = _filter(request, project_ids)
    period_name = request.query_params.get("statsPeriod", "24h") or "24h"
    period = period_seconds(period_name)
    q = _queries(heron)
    rows = q.issues(f)
    stats = q.sparklines(rows, period, 24)
    body = [_issue_api(heron, r, stats.get(r["id"]), period_name) for r in rows]
    headers = {}
    if len(rows) == f.limit:
        nxt = f.offset + f.limit
        headers["Link"] = (f'<{request.url.remove_query_params("cursor")}>; rel="previous"; results="false"; '
                           f'cursor="0:0:1", <{request.url.include_query_params(cursor=f"0:{nxt}:0")}>; '
                           f'rel="next"; results="true"; cursor="0:{nxt}:0"')
    return JSONResponse(body, headers=headers)


@api
def project_issues(request: Request, et: ErrorTracking) -> Response:
    p = _project(et, request.path_params["project"])
    return _issue_list(request, et, [p.id])


@api
def org_issues(request: Request, et: ErrorTracking) -> Response:
    refs = request.query_params.getlist("project")
    ids = [_project(et, r).id for r in refs]
    return _issue_list(request, et, ids)


def _apply_status(heron: Heron, et: ErrorTracking, row: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    status = data.get("status")
    if status is None:
        return row
    if not isinstance(status, str):
        raise BadRequest("status must be a string")
    latest = Releases(heron.control).latest(row["project_id"])
    details = data.get("statusDetails") if isinstance(data.get("statusDetails"), dict) else {}
    new = et.issues.set_status(row["id"], status, details, latest)
    new["project_slug"], new["project_name"] = row["project_slug"], row["project_name"]
    return new


@api
def issue_detail(request: Request, et: ErrorTracking) -> Response:
    heron = heron_of(request)
    row = _issue_row(heron, et, request.path_params["issue"])
    if request.method == "DELETE":
        et.issues.delete(row["id"])
        return Response(status_code=202)
    if request.method == "PUT":
        row = _apply_status(heron, et, row, _json(request))
        return JSONResponse(_issue_api(heron, row))
    q = _queries(heron)
    out = _issue_api(heron, row, q.sparklines([row], 86400, 24).get(row["id"]))
    facets = et.issues.facets(row["id"])
    out["environments"] = facets.get("environment", [])
    out["releases"] = facets.get("release", [])
    out["tags"] = q.tag_facets(row["project_id"], row["id"])
    return JSONResponse(out)


@api
def issue_events(request: Request, et: ErrorTracking) -> Response:
    heron = heron_of(request)
    row = _issue_row(heron, et, request.path_params["issue"])
    q = _queries(heron)
    which = request.path_params.get("event")
    if which is not None:
        if which in ("latest", "recommended"):
            ev = q.latest_event(row["project_id"], row["id"])
        elif which == "oldest":
            evs = q.events(row["project_id"], row["id"], limit=1_000_000)
            ev = q.event(row["project_id"], evs[-1]["event_id"], row["id"]) if evs else None
        else:
            ev = q.event(row["project_id"], which, row["id"])
        if ev is None:
            raise KeyError(f"event {which}")
        return JSONResponse(event_api(ev, row["project_id"]))
    full = request.query_params.get("full") in ("1", "true")
    try:
        limit = max(1, min(100, int(request.query_params.get("limit", "100"))))
    except ValueError:
        raise BadRequest("limit must be an integer") from None
    out = []
    for r in q.events(row["project_id"], row["id"], limit=limit, full=full):
        if full:
            ev = json.loads(r["data"])
            ev["_issue"] = row["id"]
            out.append(event_api(ev, row["project_id"]))
        else:
            user_key = r["user_key"]
            out.append({"id": r["event_id"], "eventID": r["event_id"], "groupID": str(row["id"]),
                        "title": r["title"], "message": r["message"], "platform": r["platform"],
                        "dateCreated": iso(r["ts"].timestamp()), "event.type": "error" if row["type"] == "error" else "default",
                        "tags": [{"key": k, "value": v} for k, v in sorted(r["tags"])],
                        "user": {"id": user_key} if user_key else None, "projectID": str(row["project_id"])})
    return JSONResponse(out)


@api
def issue_tags(request: Request, et: ErrorTracking) -> Response:
    heron = heron_of(request)
    row = _issue_row(heron, et, request.path_params["issue"])
    return JSONResponse(_queries(heron).tag_facets(row["project_id"], row["id"]))


@api
def project_event(request: Request, et: ErrorTracking) -> Response:
    p = _project(et, request.path_params["project"])
    ev = _queries(heron_of(request)).event(p.id, request.path_params["event"])
    if ev is None:
        raise KeyError(f"event {request.path_params['event']}")
    return JSONResponse(event_api(ev, p.id))


@api
def project_transactions(request: Request, et: ErrorTracking) -> Response:
    p = _project(et, request.path_params["project"])
    period = period_seconds(request.query_params.get("statsPeriod"), 86400)
    return JSONResponse(_queries(heron_of(request)).transactions(p.slug, period))


@api
def releases(request: Request, et: ErrorTracking) -> Response:
    rel = Releases(heron_of(request).control)
    fixed = request.path_params.get("project")
    if request.method == "POST":
        data = _json(request)
        refs = [fixed] if fixed else list(data.get("projects") or [])
        if not refs:
            raise BadRequest("projects: at least one project slug is required")
        ids = [_project(et, str(r)).id for r in refs]
        exists = rel.get(str(data.get("version", ""))) is not None
        out = rel.upsert(str(data.get("version") or ""), ids, data.get("ref"), data.get("url"), data.get("dateReleased"))
        return JSONResponse(out, 208 if exists else 201)
    pid = _project(et, fixed).id if fixed else None
    return JSONResponse(rel.all(pid))


@api
def release_detail(request: Request, et: ErrorTracking) -> Response:
    rel = Releases(heron_of(request).control)
    version = request.path_params["version"]
    current = rel.get(version)
    if request.method == "DELETE":
        if not rel.delete(version):
            raise KeyError(f"release {version}")
        return Response(status_code=204)
    if request.method == "PUT":
        data = _json(request)
        ids = [_project(et, str(r)).id for r in data.get("projects") or []]
        if request.path_params.get("project"):
            ids.append(_project(et, request.path_params["project"]).id)
        if current is None and not ids:
            raise KeyError(f"release {version}")
        return JSONResponse(rel.upsert(version, ids, data.get("ref"), data.get("url"), data.get("dateReleased")))
    if current is None:
        raise KeyError(f"release {version}")
    return JSONResponse(current)


@api
def release_deploys(request: Request, et: ErrorTracking) -> Response:
    rel = Releases(heron_of(request).control)
    version = request.path_params["version"]
    if request.method == "POST":
        data = _json(request)
        return JSONResponse(rel.add_deploy(version, str(data.get("environment") or ""), data.get("name"), data.get("url"),
                                           data.get("dateStarted"), data.get("dateFinished")), 201)
    if rel.get(version) is None:
        raise KeyError(f"release {version}")
    return JSONResponse(rel.deploys(version))


@api
def user_feedback(request: Request, et: ErrorTracking) -> Response:
    p = _project(et, request.path_params["project"])
    rows = heron_of(request).control.query(
        "SELECT id, event_id, name, email, comments, ts FROM error_user_reports WHERE project_id = ? "
        "ORDER BY ts DESC LIMIT 100", (p.id,))
    return JSONResponse([{"id": str(r["id"]), "eventID": r["event_id"], "name": r["name"], "email": r["email"],
                          "comments": r["comments"], "dateCreated": iso(r["ts"])} for r in rows])


def _safe_filename(name: str) -> str:
    """SDK-sent file names go into a header: keep printable ASCII without quotes or separators."""
    return "".join(c if 32 < ord(c) < 127 and c not in '"\\;' else "_" for c in name)[:128] or "attachment"


@api
def event_attachments(request: Request, et: ErrorTracking) -> Response:
    """List an event's attachments; `.../attachments/{name}/?download=1` returns the bytes."""
    p = _project(et, request.path_params["project"])
    heron = heron_of(request)
    db = f"`{heron.storage.database}`"
    event_id = request.path_params["event"].replace("-", "").lower()
    name = request.path_params.get("name")
    cols = "name, content_type, attachment_type, size, ts" + (", data" if name else "")
    t = heron.storage.execute(
        f"SELECT {cols} FROM {db}.error_attachments WHERE project = {{p:UInt32}} AND event_id = {{e:String}}"
        + (" AND name = {n:String}" if name else "") + " ORDER BY ts",
        {"p": p.id, "e": event_id, **({"n": name} if name else {})})
    rows = t.to_pylist() if t.num_rows else []
    if name:
        if not rows:
            raise KeyError(f"attachment {name}")
        data = rows[0]["data"]
        return Response(data if isinstance(data, bytes) else str(data).encode(), media_type=rows[0]["content_type"],
                        headers={"Content-Disposition": f'attachment; filename="{_safe_filename(rows[0]["name"])}"'})
    return JSONResponse([{"id": r["name"], "name": r["name"], "mimetype": r["content_type"], "type": r["attachment_type"],
                          "size": r["size"], "dateCreated": iso(r["ts"].timestamp())} for r in rows])


@api
def monitors(request: Request, et: ErrorTracking) -> Response:
    return JSONResponse([{"slug": m["slug"], "status": m["status"], "projectId": m["project_id"],
                          "config": {"schedule_type": m["schedule_type"], "schedule": m["schedule"],
                                     "checkin_margin": m["checkin_margin"], "max_runtime": m["max_runtime"]},
                          "lastCheckIn": iso(m["last_checkin"]), "nextCheckIn": iso(m["next_expected"])}
                         for m in et.crons.monitors()])


def routes(heron: Heron) -> list[BaseRoute]:
    a = "/api/0"
    org = a + "/organizations/{org}"
    prj = a + "/projects/{org}/{project}"
    rw = ["GET", "PUT", "DELETE"]
    return [
        Route("/api/{project_id}/envelope/", Ingest("envelope"), methods=["POST"]),
        Route("/api/{project_id}/store/", Ingest("store"), methods=["POST"]),
        Route("/api/{project_id}/envelope/", preflight, methods=["OPTIONS"]),
        Route("/api/{project_id}/store/", preflight, methods=["OPTIONS"]),
        Route(a + "/", api_root),
        Route(a + "/organizations/", organizations),
        Route(org + "/", organizations),
        Route(a + "/projects/", projects_list),
        Route(org + "/projects/", projects_list),
        Route(a + "/teams/{org}/{team}/projects/", projects_list, methods=["GET", "POST"]),
        Route(prj + "/", project_detail),
        Route(prj + "/keys/", project_keys, methods=["GET", "POST"]),
        Route(prj + "/keys/{key}/", project_key_delete, methods=["DELETE"]),
        Route(prj + "/issues/", project_issues, methods=["GET", "PUT"]),
        Route(org + "/issues/", org_issues, methods=["GET", "PUT"]),
        Route(a + "/issues/{issue}/", issue_detail, methods=rw),
        Route(org + "/issues/{issue}/", issue_detail, methods=rw),
        Route(a + "/issues/{issue}/events/", issue_events),
        Route(a + "/issues/{issue}/events/{event}/", issue_events),
        Route(org + "/issues/{issue}/events/", issue_events),
        Route(org + "/issues/{issue}/events/{event}/", issue_events),
        Route(a + "/issues/{issue}/tags/", issue_tags),
        Route(prj + "/events/{event}/", project_event),
        Route(prj + "/transactions/", project_transactions),
        Route(prj + "/user-feedback/", user_feedback),
        Route(prj + "/events/{event}/attachments/", event_attachments),
        Route(prj + "/events/{event}/attachments/{name}/", event_attachments),
        Route(org + "/releases/", releases, methods=["GET", "POST"]),
        Route(prj + "/releases/", releases, methods=["GET", "POST"]),
        Route(org + "/releases/{version}/", release_detail, methods=rw),
        Route(prj + "/releases/{version}/", release_detail, methods=rw),
        Route(org + "/releases/{version}/deploys/", release_deploys, methods=["GET", "POST"]),
        Route(org + "/monitors/", monitors),
    ]
