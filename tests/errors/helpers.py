"""Envelope building and small helpers shared by the error-tracking tests."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from heron.errors.ingest import tracking
from heron.server import Heron


def envelope(*items: tuple[str, Any], headers: dict[str, Any] | None = None,
             explicit_length: bool = True) -> bytes:
    out = [json.dumps(headers or {}).encode()]
    for kind, payload in items:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        h: dict[str, Any] = {"type": kind}
        if explicit_length:
            h["length"] = len(data)
        out.append(json.dumps(h).encode())
        out.append(data)
    return b"\n".join(out) + b"\n"


def exc_event(etype: str = "ValueError", value: str = "boom", func: str = "handler", *,
              release: str | None = None, env: str = "production", user: str | None = None,
              **extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "event_id": uuid.uuid4().hex, "timestamp": time.time(), "platform": "python", "level": "error",
        "environment": env,
        "exception": {"values": [{"type": etype, "value": value, "stacktrace": {"frames": [
            {"filename": "/usr/lib/python3/site-packages/starlette/routing.py", "module": "starlette.routing",
             "function": "handle", "lineno": 10, "context_line": "await self.app(scope)"},
            {"filename": "app/views.py", "module": "app.views", "function": func, "lineno": 42,
             "context_line": f"raise {etype}(msg)", "in_app": True}]}}]}}
    if release:
        ev["release"] = release
    if user:
        ev["user"] = {"id": user}
    ev.update(extra)
    return ev


def new_project(heron: Heron, name: str = "backend", **kw: Any) -> tuple[int, str]:
    project, key = tracking(heron).projects.create(name, **kw)
    return project.id, key


def auth(key: str) -> dict[str, str]:
    return {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_client=test/1.0, sentry_key={key}"}


def wait_until(fn: Any, timeout: float = 20) -> Any:
    """Poll `fn` until it returns something truthy (or the timeout passes); returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)
