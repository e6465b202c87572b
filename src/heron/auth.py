"""Tokens: the admin token (API and UI), ingest keys (per source), API tokens.

Tokens are random 32-byte values shown once; only their SHA-256 is stored (they are high
entropy, so a plain hash is enough and constant-time lookup by hash avoids timing leaks).
The admin token is generated at first start unless given by config or `HERON_ADMIN_TOKEN`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time

from starlette.requests import HTTPConnection

from heron.control import ControlStore

ADMIN, INGEST, API = "admin", "ingest", "api"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


CACHE_MAX = 1024  # valid tokens remembered between changes of the control database


class Auth:
    def __init__(self, control: ControlStore, ingest_required: bool = True) -> None:
        self.control = control
        self.ingest_required = ingest_required
        # token hash -> kind, for valid tokens only, while the control database is unchanged:
        # every request is authenticated, and a lookup was a SQLite query (~0.3 ms of a
        # remote-write request's ~12 ms under the GIL). Any commit (a revocation by this
        # process or another) empties it, so a revoked token is refused at its next request.
        self._known: dict[str, str] = {}
        self._known_at: tuple[int, int] | None = None
        self._lock = threading.Lock()  # a lookup and its caching see one version

    def ensure_admin(self, configured: str | None) -> str | None:
        """Make sure an admin token exists. Returns a newly generated token (to print once)."""
        if configured:
            h = hash_token(configured)
            with self.control.transaction() as tx:
                tx.execute("UPDATE tokens SET revoked_at = ? WHERE kind = ? AND revoked_at IS NULL "
                           "AND token_hash != ?", (time.time(), ADMIN, h))
                tx.execute("INSERT OR IGNORE INTO tokens (name, kind, token_hash, created_at) "
                           "VALUES ('admin', ?, ?, ?)", (ADMIN, h, time.time()))
            return None
        if self.control.query("SELECT 1 FROM tokens WHERE kind = ? AND revoked_at IS NULL", (ADMIN,)):
            return None
        return self.create(ADMIN, "admin")

    def create(self, kind: str, name: str) -> str:
        token = new_token({ADMIN: "heron_admin", INGEST: "heron_ingest", API: "heron_api"}[kind])
        self.control.execute("INSERT INTO tokens (name, kind, token_hash, created_at) VALUES (?, ?, ?, ?)",
                             (name, kind, hash_token(token), time.time()))
        return token

    def add_existing(self, kind: str, name: str, token: str) -> None:
        self.control.execute("INSERT OR IGNORE INTO tokens (name, kind, token_hash, created_at) "
                             "VALUES (?, ?, ?, ?)", (name, kind, hash_token(token), time.time()))

    def reset_admin(self) -> str:
        self.control.execute("UPDATE tokens SET revoked_at = ? WHERE kind = ? AND revoked_at IS NULL",
                             (time.time(), ADMIN))
        return self.create(ADMIN, "admin")

    def revoke(self, name: str, kind: str) -> int:
        with self.control.transaction() as tx:
            cur = tx.execute("UPDATE tokens SET revoked_at = ? WHERE name = ? AND kind = ? "
                             "AND revoked_at IS NULL", (time.time(), name, kind))
            return cur.rowcount

    def kind_of(self, token: str) -> str | None:
        h = hash_token(token)
        with self._lock:
            version = self.control.version()
            if version != self._known_at:
                self._known, self._known_at = {}, version
            kind = self._known.get(h)
            if kind is not None:
                return kind
            rows = self.control.query("SELECT kind, token_hash FROM tokens WHERE token_hash = ? "
                                      "AND revoked_at IS NULL", (h,))
            if rows and hmac.compare_digest(rows[0]["token_hash"], h):
                if len(self._known) >= CACHE_MAX:
                    self._known.clear()
                self._known[h] = kind = str(rows[0]["kind"])
                return kind
            return None

    @staticmethod
    def credential(conn: HTTPConnection) -> str | None:
        """Bearer token, or the password (or user) of HTTP basic auth."""
        header = conn.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value:
            return value.strip()
        if scheme.lower() == "basic" and value:
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return password or user
        return None

    def allows(self, conn: HTTPConnection, need: str) -> bool:
        """Admin may do everything; an ingest key only ingest; an API token only API reads/writes."""
        if need == INGEST and not self.ingest_required:
            return True
        token = self.credential(conn)
        if not token and "session" in conn.scope:  # the UI's signed session cookie
            token = conn.session.get("token")
        if not token:
            return False
        kind = self.kind_of(token)
        if kind == ADMIN:
            return True
        return kind == need
