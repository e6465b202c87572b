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
            # Per issue, not per event: one read and one write of each issue touched (its events
            # applied in order in memory), users and facets in bulk.
            per_issue: dict[int, list[tuple[int, int, dict[str, Any]]]] = {}
            for k, (project_id, events) in enumerate(batches):
                out.append([])
                for issue_id, ev in events:
                    per_issue.setdefault(issue_id, []).append((k, project_id, ev))
                    newest = max(newest, ev.get("received") or 0.0)
                tx.executemany("INSERT OR IGNORE INTO error_seen_events VALUES (?, ?)",
                               [(ev["event_id"], ev.get("received") or 0.0) for _, ev in events])
            for issue_id, items in per_issue.items():
                for kind, (k, project_id, ev) in self._record_issue(tx, issue_id, items):
                    out[k].append(Change(kind, issue_id, project_id, ev))
            if newest:  # forget ids older than the window (relative to the data, not the clock)
                tx.execute("DELETE FROM error_seen_events WHERE seen < ?", (newest - SEEN_WINDOW,))
            for project_id, rep in reports:
                tx.execute(
                    "INSERT INTO error_user_reports (project_id, event_id, name, email, comments, ts) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (project_id, str(rep.get("event_id") or "")[:32], str(rep.get("name") or "")[:128],
                     str(rep.get("email") or "")[:256], str(rep.get("comments") or "")[:4096], time.time()))
        return out

    def _record_issue(self, tx: Any, issue_id: int, items: list[tuple[int, int, dict[str, Any]]]
                      ) -> list[tuple[str, tuple[int, int, dict[str, Any]]]]:
        """Count one issue's events of a batch, in order: the same result as one UPDATE per event
        (lifecycle checks against the count and status as each event finds them), written once.
        Returns the changes ("new", "regression", "escalating") with the event that caused them."""
        changes: list[tuple[str, tuple[int, int, dict[str, Any]]]] = []
        project_id, first = items[0][1], items[0][2]
        row = tx.execute("SELECT status, status_details, substatus, times_seen, first_seen, last_seen, level, "
                         "last_release, last_event_id FROM error_issues WHERE id = ?", (issue_id,)).fetchone()
        rest = items
        if row is None:
            ts, release = first["timestamp"], first.get("release", "")
            short = tx.execute("UPDATE error_projects SET next_short_id = next_short_id + 1 WHERE id = ? "
                               "RETURNING next_short_id - 1", (project_id,)).fetchone()
            tx.execute(
                "INSERT INTO error_issues (id, project_id, short_id, type, title, culprit, metadata, level, "
                "platform, first_seen, last_seen, times_seen, first_release, last_release, last_event_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
                (issue_id, project_id, short[0] if short else 0, first.get("type", "default"), first["title"],
                 first.get("culprit", ""), json.dumps(first.get("metadata", {})), first["level"],
                 first["platform"], ts, ts, release, release, first["event_id"]))
            changes.append(("new", items[0]))
            rest = items[1:]
            status, details, sub, seen, first_seen, last_seen = "unresolved", {}, "new", 1, ts, ts
            level, last_release, last_id = first["level"], release, first["event_id"]
        else:
            status, details, sub, seen = (row["status"], json.loads(row["status_details"]), row["substatus"],
                                          row["times_seen"])
            first_seen, last_seen, level = row["first_seen"], row["last_seen"], row["level"]
            last_release, last_id = row["last_release"], row["last_event_id"]
        reopened = False
        for item in rest:
            ev = item[2]
            ts, release = ev["timestamp"], ev.get("release", "")
            reopen = None
            if status == "resolved":
                same = details.get("inNextRelease") and release and release == details.get("inRelease")
                if not same:
                    reopen = "regressed"
            elif status == "ignored":
                count, until = details.get("ignoreCount"), details.get("ignoreUntil")
                if (count and seen + 1 >= details.get("ignoreBase", 0) + count) or (until and ts >= until):
                    reopen = "escalating"
            if reopen:
                status, sub, details, reopened = "unresolved", reopen, {}, True
                changes.append(("regression" if reopen == "regressed" else "escalating", item))
            if sub == "new" and ts - first_seen > 259200:
                sub = "ongoing"
            seen += 1
            last_seen, first_seen = max(last_seen, ts), min(first_seen, ts)
            level, last_id = ev["level"], ev["event_id"]
            if release:
                last_release = release
        if rest:
            tx.execute(
                "UPDATE error_issues SET times_seen = ?, last_seen = ?, first_seen = ?, level = ?, last_release = ?, "
                "last_event_id = ?, substatus = ?" + (", status = ?, status_details = '{}'" if reopened else "")
                + " WHERE id = ?",
                (seen, last_seen, first_seen, level, last_release, last_id, sub,
                 *((status,) if reopened else ()), issue_id))
        if any(ev.get("_unhandled") for _, _, ev in items):
            tx.execute("UPDATE error_issues SET unhandled = 1 WHERE id = ? AND unhandled = 0", (issue_id,))
        users = {u for _, _, ev in items if (u := ev.get("_user_key"))}
        if users:
            added = tx.executemany("INSERT OR IGNORE INTO error_issue_users VALUES (?, ?)",
                                   [(issue_id, u) for u in sorted(users)]).rowcount
            if added > 0:
                tx.execute("UPDATE error_issues SET user_count = user_count + ? WHERE id = ?", (added, issue_id))
        facets: dict[tuple[str, str], list[float]] = {}  # (kind, value) -> [count, first, last]
        for _, _, ev in items:
            ts = ev["timestamp"]
            for kind, value in (("environment", ev.get("environment", "")), ("release", ev.get("release", ""))):
                if value:
                    f = facets.get((kind, value))
                    if f is None:
                        facets[kind, value] = [1, ts, ts]
                    else:
                        f[0], f[1], f[2] = f[0] + 1, min(f[1], ts), max(f[2], ts)
        if facets:
            tx.executemany("INSERT INTO error_issue_facets VALUES (?, ?, ?, ?, ?, ?) "
                           "ON CONFLICT DO UPDATE SET times_seen = times_seen + excluded.times_seen, "
                           "first_seen = min(first_seen, excluded.first_seen), "
                           "last_seen = max(last_seen, excluded.last_seen)",
                           [(issue_id, kind, value, int(n), lo, hi) for (kind, value), (n, lo, hi) in facets.items()])
        return changes

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
