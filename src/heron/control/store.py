"""SQLite state store with ordered, recorded migrations.

Telemetry is append-only and lives in ClickHouse; what users change (silences, issue status,
dashboards, tokens, the notification log) needs transactions and lives here. Each domain
appends its `ControlMigration`s; ids are recorded and never reused.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ControlMigration:
    id: str
    sql: str


MIGRATIONS: list[ControlMigration] = [
    ControlMigration("0001_tokens", """
        CREATE TABLE IF NOT EXISTS tokens (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,            -- 'admin' | 'ingest' | 'api'
            token_hash TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL,
            revoked_at REAL
        );
        CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """),
    ControlMigration("0009_ui_dashboards", """
        CREATE TABLE IF NOT EXISTS dashboards (
            uid TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            tags TEXT NOT NULL DEFAULT '[]',   -- JSON list
            source TEXT NOT NULL,              -- 'builtin' | 'file' | 'user' | 'grafana'
            model TEXT NOT NULL,               -- dashboard JSON (Grafana model, normalized)
            version INTEGER NOT NULL DEFAULT 1,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX IF NOT EXISTS dashboards_title ON dashboards (title);
    """),
    ControlMigration("0007_errors", """
        CREATE TABLE IF NOT EXISTS error_projects (
            id INTEGER PRIMARY KEY,
            slug TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            platform TEXT NOT NULL DEFAULT '',
            rate_limit INTEGER,               -- events per minute, NULL: errors.rate_limit
            next_short_id INTEGER NOT NULL DEFAULT 1,
            created_at REAL NOT NULL
        );
        CREATE TABLE IF NOT EXISTS error_keys (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES error_projects(id) ON DELETE CASCADE,
            public_key TEXT NOT NULL UNIQUE,
            label TEXT NOT NULL DEFAULT 'Default',
            created_at REAL NOT NULL,
            revoked_at REAL
        );
        CREATE TABLE IF NOT EXISTS error_issues (
            id INTEGER PRIMARY KEY,           -- heron.errors.grouping.issue_id (63-bit hash)
            project_id INTEGER NOT NULL,
            short_id INTEGER NOT NULL,
            type TEXT NOT NULL,
            title TEXT NOT NULL,
            culprit TEXT NOT NULL DEFAULT '',
            metadata TEXT NOT NULL DEFAULT '{}',
            level TEXT NOT NULL,
            platform TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT 'unresolved',   -- unresolved | resolved | ignored
            substatus TEXT NOT NULL DEFAULT 'new',       -- new | ongoing | regressed | escalating | ...
            status_details TEXT NOT NULL DEFAULT '{}',
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL,
            times_seen INTEGER NOT NULL DEFAULT 0,
            user_count INTEGER NOT NULL DEFAULT 0,
            first_release TEXT NOT NULL DEFAULT '',
            last_release TEXT NOT NULL DEFAULT '',
            last_event_id TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX IF NOT EXISTS error_issues_last_seen ON error_issues (project_id, last_seen);
        CREATE INDEX IF NOT EXISTS error_issues_times_seen ON error_issues (project_id, times_seen);
        CREATE TABLE IF NOT EXISTS error_issue_users (
            issue_id INTEGER NOT NULL, user_key TEXT NOT NULL, PRIMARY KEY (issue_id, user_key)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS error_issue_facets (
            issue_id INTEGER NOT NULL,
            kind TEXT NOT NULL,               -- 'environment' | 'release'
            value TEXT NOT NULL,
            times_seen INTEGER NOT NULL,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL,
            PRIMARY KEY (issue_id, kind, value)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS error_issue_facets_value ON error_issue_facets (kind, value);
        CREATE TABLE IF NOT EXISTS error_releases (
            id INTEGER PRIMARY KEY,
            version TEXT NOT NULL UNIQUE,
            ref TEXT,
            url TEXT,
            created_at REAL NOT NULL,
            date_released REAL
        );
        CREATE TABLE IF NOT EXISTS error_release_projects (
            release_id INTEGER NOT NULL REFERENCES error_releases(id) ON DELETE CASCADE,
            project_id INTEGER NOT NULL,
            PRIMARY KEY (release_id, project_id)
        );
        CREATE TABLE IF NOT EXISTS error_deploys (
            id INTEGER PRIMARY KEY,
            release_id INTEGER NOT NULL REFERENCES error_releases(id) ON DELETE CASCADE,
            environment TEXT NOT NULL,
            name TEXT,
            url TEXT,
            date_started REAL,
            date_finished REAL NOT NULL
        );
        CREATE TABLE IF NOT EXISTS error_monitors (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL,
            slug TEXT NOT NULL,
            schedule_type TEXT NOT NULL DEFAULT '',   -- 'crontab' | 'interval' | '' (unknown yet)
            schedule TEXT NOT NULL DEFAULT '',
            checkin_margin REAL NOT NULL DEFAULT 1,   -- minutes
            max_runtime REAL NOT NULL DEFAULT 30,     -- minutes
            status TEXT NOT NULL DEFAULT 'active',    -- ok | error | missed | in_progress | active
            last_checkin REAL,
            next_expected REAL,
            environment TEXT NOT NULL DEFAULT '',
            UNIQUE (project_id, slug)
        );
        CREATE TABLE IF NOT EXISTS error_checkins (
            id INTEGER PRIMARY KEY,
            monitor_id INTEGER NOT NULL REFERENCES error_monitors(id) ON DELETE CASCADE,
            check_in_id TEXT NOT NULL,
            status TEXT NOT NULL,
            duration REAL,
            environment TEXT NOT NULL DEFAULT '',
            ts REAL NOT NULL
        );
        CREATE INDEX IF NOT EXISTS error_checkins_monitor ON error_checkins (monitor_id, ts);
        CREATE TABLE IF NOT EXISTS error_user_reports (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL,
            event_id TEXT NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            email TEXT NOT NULL DEFAULT '',
            comments TEXT NOT NULL DEFAULT '',
            ts REAL NOT NULL
        );
    """),
    ControlMigration("0006_alerting", """
        CREATE TABLE IF NOT EXISTS am_silences (
            id TEXT PRIMARY KEY,
            matchers TEXT NOT NULL,            -- JSON [{name, value, isRegex, isEqual}]
            starts_at REAL NOT NULL,
            ends_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            created_by TEXT NOT NULL DEFAULT '',
            comment TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE IF NOT EXISTS am_nflog (
            receiver TEXT NOT NULL,            -- 'name/integration/index'
            group_key TEXT NOT NULL,
            firing TEXT NOT NULL,              -- JSON list of alert fingerprints
            resolved TEXT NOT NULL,
            ts REAL NOT NULL,
            expires_at REAL NOT NULL,
            PRIMARY KEY (receiver, group_key)
        );
    """),
    ControlMigration("0010_errors_queue", """
        -- event ids counted lately: SDK resends and replayed queue batches are not counted twice
        CREATE TABLE IF NOT EXISTS error_seen_events (
            event_id TEXT PRIMARY KEY,
            seen REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS error_seen_events_seen ON error_seen_events (seen);
    """),
    ControlMigration("0013_alerting_notification_history", """
        -- every notification that ended (sent, failed, dropped): heron.alerting.history, bounded
        CREATE TABLE IF NOT EXISTS am_notification_history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts REAL NOT NULL,
            receiver TEXT NOT NULL,
            integration TEXT NOT NULL,
            kind TEXT NOT NULL,
            group_key TEXT NOT NULL,
            status TEXT NOT NULL,
            firing INTEGER NOT NULL,
            resolved INTEGER NOT NULL,
            alerts TEXT NOT NULL,
            outcome TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            duration_ms REAL NOT NULL,
            error TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX IF NOT EXISTS am_notification_history_receiver ON am_notification_history (receiver, id);
    """),
    ControlMigration("0014_error_issue_unhandled", """
        -- Sentry's isUnhandled: some event of the issue had an exception mechanism with handled: false
        ALTER TABLE error_issues ADD COLUMN unhandled INTEGER NOT NULL DEFAULT 0;
    """),
]


class ControlStore:
    """One SQLite database; safe to share between threads (a lock serializes writers)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._commits = 0  # transactions committed through this store (see `version`)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self.migrate()

    def migrate(self) -> list[str]:
        with self._lock:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at REAL)")
            done = {r[0] for r in self._conn.execute("SELECT id FROM schema_migrations")}
            applied = []
            for m in MIGRATIONS:
                if m.id in done:
                    continue
                with self.transaction() as tx:
                    for statement in m.sql.split(";"):
                        if statement.strip():
                            tx.execute(statement)
                    tx.execute("INSERT INTO schema_migrations VALUES (?, strftime('%s','now'))", (m.id,))
                applied.append(m.id)
            return applied

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on error), holding the writer lock."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            self._commits += 1

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one write statement in its own transaction; returns lastrowid."""
        with self.transaction() as tx:
            cur = tx.execute(sql, params)
            return cur.lastrowid or 0

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, params))

    def version(self) -> tuple[int, int]:
        """Changes whenever the database may have: a commit through this store, or (SQLite's
        `data_version`) one by any other connection, such as `heron token revoke` in another
        process. Lets callers cache what they read until then."""
        with self._lock:
            return self._commits, self._conn.execute("PRAGMA data_version").fetchone()[0]

    def get(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM kv WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def put(self, key: str, value: str) -> None:
        self.execute("INSERT INTO kv (key, value) VALUES (?, ?) "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
