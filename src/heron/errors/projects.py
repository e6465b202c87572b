"""Projects and their DSN keys; Sentry's auth header; per-project rate limits.

A DSN is `http://<public_key>@<heron host:port>/<project id>`. SDKs present the key in
`X-Sentry-Auth` (`Sentry sentry_key=..., sentry_version=7, ...`), in the `sentry_key` query
parameter (browsers), as HTTP basic auth, or in the envelope header's `dsn`. Keys are cached
for a couple of seconds so a revocation (by the CLI, from another process) applies quickly.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from heron.control import ControlStore
from heron.exceptions import HeronError

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
KEY_CACHE_SECONDS = 2.0


class AuthFailed(HeronError):
    """The request's Sentry key is missing, unknown, revoked or for another project."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Project:
    id: int
    slug: str
    name: str
    platform: str
    rate_limit: int | None
    created_at: float

    def api(self) -> dict[str, Any]:
        """Sentry's project shape (the parts tools read)."""
        return {"id": str(self.id), "slug": self.slug, "name": self.name, "platform": self.platform or None,
                "dateCreated": iso(self.created_at), "status": "active", "isMember": True,
                "organization": {"id": "1", "slug": "heron", "name": "Heron"}}


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")[:50]


def parse_sentry_auth(value: str) -> dict[str, str]:
    """`Sentry sentry_key=abc, sentry_version=7` -> {"sentry_key": "abc", ...}."""
    v = value.strip()
    if v.lower().startswith("sentry "):
        v = v[7:]
    out = {}
    for part in v.split(","):
        k, sep, val = part.strip().partition("=")
        if sep:
            out[k.strip()] = val.strip().strip('"')
    return out


def key_from_request(headers: Any, query: Any, envelope_dsn: str | None = None) -> str | None:
    for name in ("x-sentry-auth", "authorization"):
        h = headers.get(name)
        if h and "sentry_key" in h:
            key = parse_sentry_auth(h).get("sentry_key")
            if key:
                return key
    if query.get("sentry_key"):
        return str(query["sentry_key"])
    h = headers.get("authorization", "")
    if h.lower().startswith("basic "):
        try:
            user = base64.b64decode(h[6:]).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            user = ""
        if user:
            return user
    if envelope_dsn:
        try:
            return urlsplit(envelope_dsn).username or None
        except ValueError:
            return None
    return None


class Projects:
    def __init__(self, control: ControlStore) -> None:
        self.control = control
        self._keys: dict[str, tuple[float, int | None, bool]] = {}
        self._lock = threading.Lock()
        self._by_id: dict[int, tuple[float, Project | None]] = {}

    # ---- projects --------------------------------------------------------------------------
    def create(self, name: str, platform: str = "", rate_limit: int | None = None) -> tuple[Project, str]:
        """A new project and its first key; raises HeronError when the slug is taken."""
        slug = slugify(name)
        if not _SLUG.match(slug):
            raise HeronError(f"project name {name!r} has no usable characters (a-z, 0-9, - and _)")
        if self.get(slug):
            raise HeronError(f"project {slug!r} exists already")
        pid = self.control.execute("INSERT INTO error_projects (slug, name, platform, rate_limit, created_at) "
                                   "VALUES (?, ?, ?, ?, ?)", (slug, name, platform, rate_limit, time.time()))
        project = self.get(pid)
        assert project is not None
        return project, self.add_key(pid)

    def get(self, ref: int | str) -> Project | None:
        """By id, or by slug (a numeric string is tried as an id first)."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            rows = self.control.query("SELECT * FROM error_projects WHERE id = ?", (int(ref),))
            if rows or isinstance(ref, int):
                return _project(rows[0]) if rows else None
        rows = self.control.query("SELECT * FROM error_projects WHERE slug = ?", (ref,))
        return _project(rows[0]) if rows else None

    def all(self) -> list[Project]:
        return [_project(r) for r in self.control.query("SELECT * FROM error_projects ORDER BY id")]

    def set_rate_limit(self, project_id: int, per_minute: int | None) -> None:
        self.control.execute("UPDATE error_projects SET rate_limit = ? WHERE id = ?", (per_minute, project_id))
        with self._lock:
            self._by_id.pop(project_id, None)

    def cached(self, project_id: int) -> Project | None:
        """`get` by id for the ingest path: kept for KEY_CACHE_SECONDS like keys, so a busy
        project costs no control-store query per request."""
        now = time.monotonic()
        hit = self._by_id.get(project_id)
        if hit is not None and hit[0] >= now:
            return hit[1]
        project = self.get(project_id)
        with self._lock:
            if len(self._by_id) > 10_000:
                self._by_id.clear()
            self._by_id[project_id] = (now + KEY_CACHE_SECONDS, project)
        return project

    # ---- keys ------------------------------------------------------------------------------
    def add_key(self, project_id: int, label: str = "Default") -> str:
        key = secrets.token_hex(16)
        self.control.execute("INSERT INTO error_keys (project_id, public_key, label, created_at) "
                             "VALUES (?, ?, ?, ?)", (project_id, key, label, time.time()))
        return key

    def keys(self, project_id: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self.control.query(
            "SELECT public_key, label, created_at, revoked_at FROM error_keys WHERE project_id = ? "
            "ORDER BY id", (project_id,))]

    def revoke_key(self, public_key: str) -> bool:
        with self.control.transaction() as tx:
            n = tx.execute("UPDATE error_keys SET revoked_at = ? WHERE public_key = ? AND revoked_at IS NULL",
                           (time.time(), public_key)).rowcount
        with self._lock:
            self._keys.pop(public_key, None)
        return bool(n)

    def authenticate(self, key: str | None, project_id: int) -> int:
        """The project id a key may send to; raises AuthFailed (401 unknown, 403 refused)."""
        if not key:
            raise AuthFailed("missing authorization information (send X-Sentry-Auth or ?sentry_key=)", 401)
        now = time.monotonic()
        with self._lock:
            cached = self._keys.get(key)
        if cached is None or cached[0] < now:
            rows = self.control.query("SELECT project_id, revoked_at FROM error_keys WHERE public_key = ?", (key,))
            cached = (now + KEY_CACHE_SECONDS, rows[0]["project_id"] if rows else None,
                      bool(rows and rows[0]["revoked_at"] is not None))
            with self._lock:
                if len(self._keys) > 10_000:
                    self._keys.clear()
                self._keys[key] = cached
        _, pid, revoked = cached
        if pid is None:
            raise AuthFailed("invalid api key", 401)
        if revoked:
            raise AuthFailed("API key is disabled", 403)
        if pid != project_id:
            raise AuthFailed(f"event submission rejected with_reason: ProjectId (key is for project {pid})",
                             403)
        return pid


def _project(row: Any) -> Project:
    return Project(row["id"], row["slug"], row["name"], row["platform"], row["rate_limit"], row["created_at"])


def dsn(key: str, project_id: int, base_url: str) -> str:
    u = urlsplit(base_url)
    return f"{u.scheme}://{key}@{u.netloc}{u.path.rstrip('/')}/{project_id}"


def base_url(config: Any) -> str:
    """Where SDKs reach this Heron: `server.external_url`, else the main listen address."""
    if config.server.external_url:
        return str(config.server.external_url).rstrip("/")
    host, _, port = config.server.listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


class RateLimiter:
    """Token bucket per project: `per_minute` events, bursts up to a minute's worth."""

    def __init__(self) -> None:
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, project_id: int, per_minute: int | None, n: int = 1) -> int:
        """0 when allowed; else the seconds to wait before retrying."""
        if not per_minute or per_minute <= 0 or n <= 0:
            return 0
        rate = per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(project_id, (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - at) * rate)
            if tokens >= n:
                self._buckets[project_id] = (tokens - n, now)
                return 0
            self._buckets[project_id] = (tokens, now)
            return max(1, int((n - tokens) / rate + 0.999))
