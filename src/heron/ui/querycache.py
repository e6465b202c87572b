"""A small results cache in front of `GET /api/v1/query_range` (and `/api/v1/query` at a given time), like Grafana's query caching or
Thanos' query-frontend: dashboards ask the same (expr, start, end, step) again and again (reloads,
several viewers, the same panel on two dashboards), and the UI aligns start/end to the step so
that repeated loads produce the same key.

Rules that keep it honest:
- only GET with plain numeric start/end/step (or time), only ranges that end in the past, only 200
  success replies (errors, warnings-only failures and partial replies are never kept);
- a short TTL: `ttl` seconds, and `recent_ttl` for ranges ending within `RECENT` seconds of now
  (samples for those may still arrive late);
- identical requests in flight share one evaluation (single flight);
- the request must pass the same auth check as the handler before it gets a cached body.

A miss may still reuse the settled steps of the previous reply for the same query and step
(heron.ui.extents): a dashboard on "Last 6 hours" that refreshes evaluates only the new steps.

Config (`ui.query_cache`): `{ttl: 60, recent_ttl: 10, max_mb: 64}`; `ttl: 0` turns it off.
Replies carry `X-Heron-Cache: hit|partial|miss|bypass`.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from heron.ui import extents, recent

if TYPE_CHECKING:
    from heron.server import Heron

PATHS = {"/api/v1/query_range", "/api/v1/query"}
RECENT = 300.0  # a range ending less than this long ago may still change (late samples)
MAX_BODY = 4 << 20  # larger replies are not kept: they would crowd out everything else


@dataclass
class Entry:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    expires: float


@dataclass
class QueryCache:
    ttl: float = 60.0
    recent_ttl: float = 10.0
    max_bytes: int = 64 << 20
    entries: OrderedDict[tuple[tuple[str, str], ...], Entry] = field(default_factory=OrderedDict)
    inflight: dict[tuple[tuple[str, str], ...], asyncio.Future[Entry | None]] = field(default_factory=dict)
    size: int = 0
    hits: int = 0
    misses: int = 0

    def key(self, path: str, query_string: bytes, now: float) -> tuple[tuple[tuple[str, str], ...], float] | None:
        """(key, ttl) when the request may be cached, else None."""
        if self.ttl <= 0:
            return None
        try:
            pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, strict_parsing=False)
        except ValueError:
            return None
        params = dict(pairs)
        if len(params) != len(pairs) or not params.get("query"):
            return None
        try:
            if path == "/api/v1/query":
                end = start = float(params["time"])
                step = 1.0
            else:
                end, start, step = float(params["end"]), float(params["start"]), float(params["step"])
        except (KeyError, ValueError):
            return None
        if not (start <= end < now and step > 0):
            return None
        ttl = self.recent_ttl if end > now - RECENT else self.ttl
        return ((("", path), *sorted(pairs)), ttl) if ttl > 0 else None

    def get(self, key: tuple[tuple[str, str], ...], now: float) -> Entry | None:
        e = self.entries.get(key)
        if e is None:
            return None
        if e.expires <= now:
            self._drop(key)
            return None
        self.entries.move_to_end(key)
        return e

    def put(self, key: tuple[tuple[str, str], ...], e: Entry) -> None:
        if key in self.entries:
            self._drop(key)
        self.entries[key] = e
        self.size += len(e.body)
        while self.size > self.max_bytes and self.entries:
            self._drop(next(iter(self.entries)))

    def _drop(self, key: tuple[tuple[str, str], ...]) -> None:
        e = self.entries.pop(key)
        self.size -= len(e.body)


def from_config(ui: dict[str, Any]) -> QueryCache:
    c = ui.get("query_cache") or {}
    return QueryCache(ttl=float(c.get("ttl", 60)), recent_ttl=float(c.get("recent_ttl", 10)),
                      max_bytes=int(float(c.get("max_mb", 64)) * (1 << 20)))


class QueryCacheMiddleware:
    """ASGI middleware (inside the session middleware, so cookie sessions authenticate)."""

    def __init__(self, app: ASGIApp, heron: Heron) -> None:
        self.app = app
        self.heron = heron
        self.cache = from_config(heron.config.ui or {})
        self.extents = extents.Extents(self.cache.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] not in PATHS:
            await self.app(scope, receive, send)
            return
        now = time.time()
        if scope["path"] == "/api/v1/query_range":
            recent.note(self.heron, dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))))
        found = self.cache.key(scope["path"], scope.get("query_string", b""), now)
        if found is None or not self.heron.auth.allows(Request(scope), "api"):
            await self.app(scope, receive, _tagged(send, b"bypass"))
            return
        key, ttl = found
        entry = self.cache.get(key, now)
        if entry is None and key in self.cache.inflight:
            entry = await asyncio.shield(self.cache.inflight[key])
        if entry is not None:
            self.cache.hits += 1
            await _replay(entry, send, b"hit")
            return
        self.cache.misses += 1
        fut: asyncio.Future[Entry | None] = asyncio.get_running_loop().create_future()
        self.cache.inflight[key] = fut
        result: Entry | None = None
        try:
            status, headers, body, tag = await self._evaluate(scope, receive, now)
            if status == 200 and len(body) <= MAX_BODY and body.startswith(b'{"status":"success"') \
                    and b',"warnings":[' not in body:
                result = Entry(200, headers, body, time.time() + ttl)
                self.cache.put(key, result)
            await _replay(Entry(status, headers, body, 0), send, tag)
        finally:
            del self.cache.inflight[key]
            fut.set_result(result)

    async def _evaluate(self, scope: Scope, receive: Receive, now: float) -> tuple[int, list[Any], bytes, bytes]:
        """Evaluate a range query, reusing the settled steps of the previous reply for the same
        query and step (heron.ui.extents); (status, headers, body, X-Heron-Cache tag)."""
        pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        p = dict(pairs)
        ek = extents.extent_key(pairs) if scope["path"] == "/api/v1/query_range" else None
        if ek is None:
            status, headers, body = await self._run(scope, receive)
            return status, headers, body, b"miss"
        start, end, step = float(p["start"]), float(p["end"]), float(p["step"])
        found = self.extents.lookup(ek, start, end, step, now)
        if found is not None:
            old, reuse_end = found
            previous = extents.parse_matrix(old.body)
            new: list[Any] | None = [] if previous is not None else None
            if previous is not None and reuse_end + step <= end:
                qs = urlencode([(k, str(reuse_end + step) if k == "start" else v) for k, v in pairs]).encode()
                status, _, part = await self._run({**scope, "query_string": qs}, _no_body)
                new = extents.parse_matrix(part) if status == 200 else None
            if previous is not None and new is not None:
                body = extents.body(extents.merge(previous, start, reuse_end, new))
                if len(body) <= MAX_BODY:
                    self.extents.store(ek, extents.Extent(start, end, step, body, now + self.cache.ttl, old.born))
                return 200, [(b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode())], body, b"partial"
        status, headers, body = await self._run(scope, receive)
        if status == 200 and len(body) <= MAX_BODY and extents.is_matrix(body):
            self.extents.store(ek, extents.Extent(start, end, step, body, now + self.cache.ttl, now))
        return status, headers, body, b"miss"

    async def _run(self, scope: Scope, receive: Receive) -> tuple[int, list[Any], bytes]:
        captured: dict[str, Any] = {"status": 500, "headers": [], "body": []}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))

        await self.app(scope, receive, capture)
        return captured["status"], captured["headers"], b"".join(captured["body"])


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _tagged(send: Send, tag: bytes) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"x-heron-cache", tag)]}
        await send(message)
    return wrapped


async def _replay(entry: Entry, send: Send, tag: bytes) -> None:
    headers = [(k, v) for k, v in entry.headers if k.lower() != b"x-heron-cache"]
    await send({"type": "http.response.start", "status": entry.status, "headers": [*headers, (b"x-heron-cache", tag)]})
    await send({"type": "http.response.body", "body": entry.body})
