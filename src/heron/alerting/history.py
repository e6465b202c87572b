"""Notification history: one row per notification attempt that ended (sent, failed or dropped).

Alertmanager shows only its notification log (the latest send per receiver and group, kept for
dedup); people also ask "did the pager get it at 03:12, and if not, why?". Every end of
`stages._send_with_retry` (and a drop on a full queue) is recorded here with the receiver, the
integration, the group, what was in it, the outcome, the attempts and the last error. The table
is bounded: past `MAX_ROWS` the oldest rows go. Recording never fails a notification: an error
here is logged. Table: `am_notification_history` (control store migration 0013).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from heron.control import ControlStore
    from heron.notify import Notification

log = logging.getLogger("heron.alerting")
MAX_ROWS = 10_000
PRUNE_EVERY = 100  # inserts between prunes
MAX_ALERTS = 20  # alert names kept per row (the count is always exact)
MAX_ERROR = 500
OUTCOMES = ("sent", "failed", "dropped")


@dataclass
class History:
    control: ControlStore
    max_rows: int = MAX_ROWS
    inserts: int = 0

    def record(self, integration: str, kind: str, n: Notification, outcome: str, attempts: int,
               duration: float, error: str = "") -> None:
        now = n.now or time.time()
        firing = sum(1 for a in n.alerts if not a.resolved_at(now))
        names: list[str] = []
        for a in n.alerts:
            name = a.labels.get("alertname", "")
            if name not in names:
                names.append(name)
        self.control.execute(
            "INSERT INTO am_notification_history (ts, receiver, integration, kind, group_key, status, firing, "
            "resolved, alerts, outcome, attempts, duration_ms, error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (time.time(), n.receiver, integration, kind, n.group_key, n.status, firing, len(n.alerts) - firing,
             json.dumps(names[:MAX_ALERTS]), outcome, attempts, round(duration * 1000, 3), error[:MAX_ERROR]))
        self.inserts += 1
        if self.inserts % PRUNE_EVERY == 1:
            self.prune()

    def prune(self) -> int:
        return self.control.execute(
            "DELETE FROM am_notification_history WHERE id <= (SELECT MAX(id) FROM am_notification_history) - ?",
            (self.max_rows,))

    async def record_async(self, *args: Any, **kw: Any) -> None:
        """Off the event loop; an error is logged, never raised (the notification went or failed already)."""
        try:
            await asyncio.get_running_loop().run_in_executor(None, lambda: self.record(*args, **kw))
        except Exception:
            log.exception("notification history write failed")


def page(control: ControlStore, limit: int = 50, before: int | None = None, receiver: str = "",
         outcome: str = "", integration: str = "") -> dict[str, Any]:
    """Newest first; `before` is the id cursor of the previous page (`next` in its answer)."""
    where: list[str] = []
    params: list[Any] = []
    for col, value in (("receiver", receiver), ("outcome", outcome), ("integration", integration)):
        if value:
            where.append(f"{col} = ?")
            params.append(value)
    if before is not None:
        where.append("id < ?")
        params.append(before)
    sql = "SELECT * FROM am_notification_history" + (" WHERE " + " AND ".join(where) if where else "")
    rows = control.query(sql + " ORDER BY id DESC LIMIT ?", (*params, limit + 1))
    items = [{"id": r["id"], "ts": r["ts"], "receiver": r["receiver"], "integration": r["integration"],
              "kind": r["kind"], "group_key": r["group_key"], "status": r["status"], "firing": r["firing"],
              "resolved": r["resolved"], "alerts": json.loads(r["alerts"]), "outcome": r["outcome"],
              "attempts": r["attempts"], "duration_ms": r["duration_ms"], "error": r["error"]}
             for r in rows[:limit]]
    receivers = [r["receiver"] for r in control.query(
        "SELECT DISTINCT receiver FROM am_notification_history ORDER BY receiver LIMIT 200")]
    return {"items": items, "next": items[-1]["id"] if len(rows) > limit else None, "receivers": receivers}
