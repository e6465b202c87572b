"""Issue state in the control store: counters, breakdowns and the lifecycle.

    unresolved ──resolve──▶ resolved ──new event──▶ unresolved (substatus regressed) + alert
         │                     ▲
         │      resolve in next release: a later event from the *same* release stays resolved;
         │      one from any other release is a regression
         └──ignore (forever | until N more events | until a date)──▶ ignored ──▶ unresolved
                                                                               (escalating)

Counters (times seen, users affected, first/last seen, per-environment and per-release counts)
are updated behind the envelope queue, in one transaction per queue batch that also records the
batch's event ids and a watermark, so a batch replayed after a crash is not counted twice.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from heron.control import ControlStore
from heron.exceptions import BadRequest

STATUSES = ("unresolved", "resolved", "ignored", "resolvedInNextRelease")
SEEN_WINDOW = 900.0
"""Seconds an event id is remembered, so an SDK resend is not counted twice."""


@dataclass
class Change:
    """What an event did to its issue, for alerts: 'new', 'regression' or 'escalating'."""
    kind: str
    issue_id: int
    project_id: int
    event: dict[str, Any]


class IssueStore:
    def __init__(self, control: ControlStore) -> None:
        self.control = control

    def record(self, project_id: int, events: list[tuple[int, dict[str, Any]]]) -> list[Change]:
        """Count `(issue_id, event)` pairs (already durable) into their issues, in one transaction."""
        out = self.record_batch("", [(project_id, events)], [])
        assert out is not None
        return out[0]

    def seen(self, event_ids: list[str]) -> set[str]:
        """Which of these event ids were counted lately (see `record_batch`)."""
        have: set[str] = set()
        for k in range(0, len(event_ids), 500):
            chunk = event_ids[k:k + 500]
            have.update(r[0] for r in self.control.query(
                f"SELECT event_id FROM error_seen_events WHERE event_id IN ({','.join('?' * len(chunk))})",
                chunk))
        return have

    def record_batch(self, token: str, batches: list[tuple[int, list[tuple[int, dict[str, Any]]]]],
                     reports: list[tuple[int, dict[str, Any]]]) -> list[list[Change]] | None:
        """Count one envelope-queue batch in ONE transaction, with its event ids and the watermark
        "counted through record b" (`token` is the queue's "epoch:name:a-b"). Returns None, and
        changes nothing, when this batch was counted before (a replay after a crash)."""
        epoch, _, rng = token.partition(":")
        end = int(rng.rsplit("-", 1)[1]) if "-" in rng else 0
        out: list[list[Change]] = []
        with self.control.transaction() as tx:
            if end:
                mark = tx.execute("SELECT value FROM kv WHERE key = 'errors.queue.counted'").fetchone()
                m_epoch, _, m_end = (mark[0] if mark else "").partition(":")
                if m_epoch == epoch and int(m_end or 0) >= end:
                    return None
                tx.execute("INSERT INTO kv (key, value) VALUES ('errors.queue.counted', ?) "
                           "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (f"{epoch}:{end}",))
            newest = 0.0
            for project_id, events in batches:
                changes: list[Change] = []
                for issue_id, ev in events:
                    change = self._record_one(tx, project_id, issue_id, ev)
                    if change:
                        changes.append(Change(change, issue_id, project_id, ev))
                    newest = max(newest, ev.get("received") or 0.0)
                out.append(changes)
                tx.executemany("INSERT OR IGNORE INTO error_seen_events VALUES (?, ?)",
                               [(ev["event_id"], ev.get("received") or 0.0) for _, ev in events])
            if newest:  # forget ids older than the window (relative to the data, not the clock)
                tx.execute("DELETE FROM error_seen_events WHERE seen < ?", (newest - SEEN_WINDOW,))
            for project_id, rep in reports:
                tx.execute(
                    "INSERT INTO error_user_reports (project_id, event_id, name, email, comments, ts) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (project_id, str(rep.get("event_id") or "")[:32], str(rep.get("name") or "")[:128],
                     str(rep.get("email") or "")[:256], str(rep.get("comments") or "")[:4096], time.time()))
        return out

    def _record_one(self, tx: Any, project_id: int, issue_id: int, ev: dict[str, Any]) -> str | None:
        ts = ev["timestamp"]
        release = ev.get("release", "")
        row = tx.execute("SELECT status, status_details, times_seen FROM error_issues WHERE id = ?",
                         (issue_id,)).fetchone()
        change = None
        if row is None:
            short = tx.execute("UPDATE error_projects SET next_short_id = next_short_id + 1 WHERE id = ? "
                               "RETURNING next_short_id - 1", (project_id,)).fetchone()
            tx.execute(
                "INSERT INTO error_issues (id, project_id, short_id, type, title, culprit, metadata, level, "
                "platform, first_seen, last_seen, times_seen, first_release, last_release, last_event_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
                (issue_id, project_id, short[0] if short else 0, ev.get("type", "default"), ev["title"],
                 ev.get("culprit", ""), json.dumps(ev.get("metadata", {})), ev["level"], ev["platform"],
                 ts, ts, release, release, ev["event_id"]))
            change = "new"
        else:
            status, details, seen = row["status"], json.loads(row["status_details"]), row["times_seen"]
            reopen = None
            if status == "resolved":
                same = details.get("inNextRelease") and release and release == details.get("inRelease")
                if not same:
                    reopen = "regressed"
            elif status == "ignored":
                count = details.get("ignoreCount")
                until = details.get("ignoreUntil")
                if (count and seen + 1 >= details.get("ignoreBase", 0) + count) or (until and ts >= until):
                    reopen = "escalating"
            if reopen:
                tx.execute("UPDATE error_issues SET status = 'unresolved', substatus = ?, status_details = '{}' "
                           "WHERE id = ?", (reopen, issue_id))
                change = "regression" if reopen == "regressed" else "escalating"
            tx.execute(
                "UPDATE error_issues SET times_seen = times_seen + 1, last_seen = max(last_seen, ?), "
                "first_seen = min(first_seen, ?), level = ?, last_release = CASE WHEN ? != '' THEN ? "
                "ELSE last_release END, last_event_id = ?, "
                "substatus = CASE WHEN substatus = 'new' AND ? - first_seen > 259200 THEN 'ongoing' "
                "ELSE substatus END WHERE id = ?",
                (ts, ts, ev["level"], release, release, ev["event_id"], ts, issue_id))
        user = ev.get("_user_key")
        if user and tx.execute("INSERT OR IGNORE INTO error_issue_users VALUES (?, ?)",
                               (issue_id, user)).rowcount:
            tx.execute("UPDATE error_issues SET user_count = user_count + 1 WHERE id = ?", (issue_id,))
        for kind, value in (("environment", ev.get("environment", "")), ("release", release)):
            if value:
                tx.execute("INSERT INTO error_issue_facets VALUES (?, ?, ?, 1, ?, ?) "
                           "ON CONFLICT DO UPDATE SET times_seen = times_seen + 1, "
                           "first_seen = min(first_seen, excluded.first_seen), "
                           "last_seen = max(last_seen, excluded.last_seen)", (issue_id, kind, value, ts, ts))
        return change

    # ---- reads -----------------------------------------------------------------------------
    def get(self, issue_id: int) -> dict[str, Any] | None:
        rows = self.control.query("SELECT * FROM error_issues WHERE id = ?", (issue_id,))
        return dict(rows[0]) if rows else None

    def facets(self, issue_id: int) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {"environment": [], "release": []}
        for r in self.control.query("SELECT kind, value, times_seen, first_seen, last_seen FROM "
                                    "error_issue_facets WHERE issue_id = ? ORDER BY times_seen DESC",
                                    (issue_id,)):
            out.setdefault(r["kind"], []).append({"value": r["value"], "count": r["times_seen"],
                                                  "firstSeen": r["first_seen"], "lastSeen": r["last_seen"]})
        return out

    # ---- lifecycle -------------------------------------------------------------------------
    def set_status(self, issue_id: int, status: str, details: dict[str, Any] | None = None,
                   latest_release: str | None = None) -> dict[str, Any]:
        """Apply a Sentry status update (`PUT /api/0/issues/{id}/`); raises BadRequest."""
        details = dict(details or {})
        if status not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
        issue = self.get(issue_id)
        if issue is None:
            raise KeyError(issue_id)
        stored: dict[str, Any] = {}
        substatus = "ongoing"
        if status == "resolvedInNextRelease" or details.get("inNextRelease"):
            status = "resolved"
            stored = {"inNextRelease": True, "inRelease": latest_release or issue["last_release"]}
        elif status == "resolved":
            if details.get("inRelease"):
                stored = {"inNextRelease": True, "inRelease": str(details["inRelease"])}
            substatus = "resolved"
        elif status == "ignored":
            substatus = "archived_until_condition_met"
            if details.get("ignoreCount") is not None:
                stored["ignoreCount"] = _positive(details["ignoreCount"], "ignoreCount")
                stored["ignoreBase"] = issue["times_seen"]
            if details.get("ignoreDuration") is not None:  # minutes, as Sentry's UI sends
                stored["ignoreUntil"] = time.time() + 60 * _positive(details["ignoreDuration"], "ignoreDuration")
            if details.get("ignoreUntil") is not None:
                from heron.errors.normalize import timestamp

                until = timestamp(details["ignoreUntil"], time.time())
                if until is None:
                    raise BadRequest("statusDetails.ignoreUntil must be a date (RFC 3339) or unix seconds")
                stored["ignoreUntil"] = until
            if not stored:
                substatus = "archived_forever"
        self.control.execute("UPDATE error_issues SET status = ?, substatus = ?, status_details = ? WHERE id = ?",
                             (status, substatus, json.dumps(stored), issue_id))
        out = self.get(issue_id)
        assert out is not None
        return out

    def missing(self, ids: list[int]) -> set[int]:
        """Which of these issue ids have no row (their events were stored, their counting lost)."""
        have: set[int] = set()
        for k in range(0, len(ids), 500):
            chunk = ids[k:k + 500]
            have.update(r[0] for r in self.control.query(
                f"SELECT id FROM error_issues WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        return set(ids) - have

    def expire_ignores(self, now: float | None = None) -> int:
        """Issues ignored until a date that has passed become unresolved again; returns how many."""
        now = time.time() if now is None else now
        with self.control.transaction() as tx:
            return tx.execute("UPDATE error_issues SET status = 'unresolved', substatus = 'ongoing', "
                              "status_details = '{}' WHERE status = 'ignored' "
                              "AND json_extract(status_details, '$.ignoreUntil') < ?", (now,)).rowcount

    def delete(self, issue_id: int) -> bool:
        with self.control.transaction() as tx:
            n = tx.execute("DELETE FROM error_issues WHERE id = ?", (issue_id,)).rowcount
            tx.execute("DELETE FROM error_issue_users WHERE issue_id = ?", (issue_id,))
            tx.execute("DELETE FROM error_issue_facets WHERE issue_id = ?", (issue_id,))
        return bool(n)


def _positive(value: Any, name: str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"statusDetails.{name} must be a positive integer") from None
    if n <= 0:
        raise BadRequest(f"statusDetails.{name} must be a positive integer")
    return n
