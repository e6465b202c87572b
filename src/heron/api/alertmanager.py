"""Alertmanager API v2: alerts, alert groups, silences, status, receivers.

Shapes follow Alertmanager's OpenAPI spec (api/v2/openapi.yaml) so Prometheus (as a sender),
amtool, Grafana and Karma work against Heron unchanged. Errors are JSON strings, as there.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from heron import __version__
from heron.alerting import service as alerting_service
from heron.alerting.matchers import Matcher, MatcherError, matches_all, parse_matchers
from heron.alerting.model import Alert, format_time, parse_time
from heron.alerting.silence import Silence, SilenceError, SilenceNotFound, matchers_from_api
from heron.api import heron_of, requires


def _am(request: Request) -> alerting_service.Alerting:
    return alerting_service.get(heron_of(request))


def _err(status: int, message: str) -> JSONResponse:
    return JSONResponse(message, status)


def _bool(request: Request, name: str, default: bool = True) -> bool:
    v = request.query_params.get(name)
    if v is None:
        return default
    return v.lower() in ("1", "true", "yes")


def _filters(request: Request) -> list[Matcher]:
    out: list[Matcher] = []
    for f in request.query_params.getlist("filter"):
        out.extend(parse_matchers(f))
    return out


def _receiver_re(request: Request) -> re.Pattern[str] | None:
    r = request.query_params.get("receiver")
    if not r:
        return None
    try:
        return re.compile(f"^(?:{r})$")
    except re.error as exc:
        raise MatcherError(f"failed to parse receiver param: {exc}") from None


def gettable_alert(am: alerting_service.Alerting, a: Alert, now: float) -> dict[str, Any]:
    silenced = am.silences.mutes(a.labels, now)
    inhibited = am.inhibitor.mutes(a.labels, now)
    return {"annotations": a.annotations, "endsAt": format_time(a.ends_at), "fingerprint": a.fingerprint_hex,
            "receivers": [{"name": r} for r in am.receivers_of(a.labels)], "startsAt": format_time(a.starts_at),
            "status": {"inhibitedBy": inhibited, "silencedBy": silenced,
                       "state": "suppressed" if silenced or inhibited else "active"},
            "updatedAt": format_time(a.updated_at), "generatorURL": a.generator_url, "labels": a.labels}


def _keep(g: dict[str, Any], request: Request, matchers: list[Matcher], recv: re.Pattern[str] | None) -> bool:
    st = g["status"]
    if st["silencedBy"] and not _bool(request, "silenced"):
        return False
    if st["inhibitedBy"] and not _bool(request, "inhibited"):
        return False
    if st["state"] == "active" and not _bool(request, "active"):
        return False
    if recv is not None and not any(recv.match(r["name"]) for r in g["receivers"]):
        return False
    return matches_all(matchers, g["labels"])


def _shown(am: alerting_service.Alerting, alerts: Iterable[Alert], request: Request, matchers: list[Matcher],
           recv: re.Pattern[str] | None) -> list[dict[str, Any]]:
    """The unresolved `alerts` that pass the request's filters, as API alerts by fingerprint
    (what GET /alerts lists and each group of GET /alerts/groups holds)."""
    now = time.time()
    out = [g for g in (gettable_alert(am, a, now) for a in alerts if not a.resolved_at(now))
           if _keep(g, request, matchers, recv)]
    out.sort(key=lambda g: g["fingerprint"])
    return out


@requires("api", reply="json")
async def get_alerts(request: Request) -> Response:
    am = _am(request)
    try:
        matchers, recv = _filters(request), _receiver_re(request)
    except MatcherError as exc:
        return _err(400, str(exc))
    return JSONResponse(_shown(am, am.store, request, matchers, recv))


@requires("ingest", reply="json")
async def post_alerts(request: Request) -> Response:
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _err(400, f"parsing alerts body: {exc}")
    if not isinstance(body, list):
        return _err(400, "the body must be a JSON array of alerts")
    errors = _am(request).put_alerts(body)
    if errors:
        return _err(400, "; ".join(errors))
    return Response(status_code=200)


@requires("api", reply="json")
async def get_groups(request: Request) -> Response:
    am = _am(request)
    try:
        matchers, recv = _filters(request), _receiver_re(request)
    except MatcherError as exc:
        return _err(400, str(exc))
    out = []
    for ag in list(am.dispatcher.groups.values()):
        if recv is not None and not recv.match(ag.route.receiver):
            continue
        alerts = _shown(am, list(ag.alerts.values()), request, matchers, None)
        if alerts:
            out.append({"labels": ag.labels, "receiver": {"name": ag.route.receiver}, "alerts": alerts})
    return JSONResponse(out)


@requires("api", reply="json")
async def get_silences(request: Request) -> Response:
    am = _am(request)
    try:
        matchers = _filters(request)
    except MatcherError as exc:
        return _err(400, str(exc))
    now = time.time()
    sils = []
    for s in am.silences.all():
        labels = {m.name: m.value for m in s.matchers if m.op == "="}
        if matchers and not matches_all(matchers, labels):
            continue
        sils.append(s)
    # Alertmanager's order: active (ending soonest first), pending (starting soonest), expired (newest).
    order = {"active": 0, "pending": 1, "expired": 2}
    sils.sort(key=lambda s: (order[s.state(now)], s.ends_at if s.state(now) == "active" else
                             s.starts_at if s.state(now) == "pending" else -s.ends_at))
    return JSONResponse([s.to_api(now) for s in sils])


@requires("api", reply="json")
async def post_silence(request: Request) -> Response:
    am = _am(request)
    try:
        body = json.loads(await request.body())
        if not isinstance(body, dict):
            raise SilenceError("the body must be a JSON object")
        starts, ends = parse_time(body.get("startsAt")), parse_time(body.get("endsAt"))
        if not starts or not ends:
            raise SilenceError("startsAt and endsAt are required")
        if starts >= ends:
            raise SilenceError("Failed to create silence: start time must be before end time")
        if ends < time.time():
            raise SilenceError("Failed to create silence: end time can't be in the past")
        s = Silence(str(body.get("id") or ""), matchers_from_api(body.get("matchers")), starts, ends,
                    created_by=str(body.get("createdBy") or ""), comment=str(body.get("comment") or ""))
        sid = am.silences.set(s)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _err(400, f"parsing silence body: {exc}")
    except (SilenceError, ValueError) as exc:
        return _err(400, str(exc))
    except SilenceNotFound:
        return _err(404, "silence not found")
    return JSONResponse({"silenceID": sid})


@requires("api", reply="json")
async def get_silence(request: Request) -> Response:
    try:
        s = _am(request).silences.get(request.path_params["id"])
    except SilenceNotFound:
        return Response(status_code=404)
    return JSONResponse(s.to_api())


@requires("api", reply="json")
async def delete_silence(request: Request) -> Response:
    try:
        _am(request).silences.expire(request.path_params["id"])
    except SilenceNotFound:
        return Response(status_code=404)
    except SilenceError as exc:
        return _err(500, str(exc))
    return Response(status_code=200)


@requires("api", reply="json")
async def get_status(request: Request) -> Response:
    am = _am(request)
    up = time.time() - am.started_at
    return JSONResponse({
        "cluster": {"name": "", "peers": [], "status": "disabled"},
        "config": {"original": am.config.original},
        "uptime": format_time(am.started_at),
        "versionInfo": {"branch": "heron", "buildDate": "", "buildUser": "heron", "goVersion": "python",
                        "revision": "", "version": __version__},
        "heron": {"uptimeSeconds": round(up, 3)},
    })


@requires("api", reply="json")
async def get_receivers(request: Request) -> Response:
    return JSONResponse([{"name": n} for n in _am(request).config.receivers])


def routes(heron: Any) -> list[BaseRoute]:
    return [
        Route("/api/v2/alerts", get_alerts, methods=["GET"]),
        Route("/api/v2/alerts", post_alerts, methods=["POST"]),
        Route("/api/v2/alerts/groups", get_groups, methods=["GET"]),
        Route("/api/v2/silences", get_silences, methods=["GET"]),
        Route("/api/v2/silences", post_silence, methods=["POST"]),
        Route("/api/v2/silence/{id}", get_silence, methods=["GET"]),
        Route("/api/v2/silence/{id}", delete_silence, methods=["DELETE"]),
        Route("/api/v2/status", get_status, methods=["GET"]),
        Route("/api/v2/receivers", get_receivers, methods=["GET"]),
    ]
