"""The panel queries asked lately, kept across a restart so the warm-up can evaluate them again.

After a restart the engine's step cache (heron.promql.stepcache) is empty. So the first
dashboard computes every window end of every rate again, which took ~1.2 s of CPU for the
12-panel bench dashboard against ~0.5 s for a range it had mostly seen. The query cache
middleware notes each range query a browser asks: query, step, range, and when it was asked.
At stop they are written to `<data_dir>/ui/recent_queries.json`. After the next start,
heron.ui.warmup evaluates the newest of them, the way they were asked:
- a range that ended when it was asked ("Last 6 hours") is moved to end now;
- a fixed range is evaluated as it was.

That fills the step cache, and the first viewer then reads it. Only query text and times are
kept, never results: anything written while Heron was down is read from the head as usual.
"""

from __future__ import annotations

import json
import logging
import math
import time
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from heron.server import Heron

log = logging.getLogger("heron.ui")
KEEP = 48  # distinct (query, step) pairs remembered
FILE = "recent_queries.json"
_BY_HERON: weakref.WeakKeyDictionary[Any, Recent] = weakref.WeakKeyDictionary()


class Recent:
    def __init__(self) -> None:
        self.items: OrderedDict[tuple[str, float], tuple[float, float, float]] = OrderedDict()

    def note(self, query: str, start: float, end: float, step: float, now: float) -> None:
        key = (query, step)
        self.items.pop(key, None)
        self.items[key] = (start, end, now)
        while len(self.items) > KEEP:
            self.items.popitem(last=False)

    def replays(self, now: float) -> list[tuple[str, float, float, float]]:
        """(query, start, end, step) to evaluate, newest first; a range that ended when it was
        asked ends now (aligned to its step, as the UI aligns), a fixed one stays."""
        out = []
        for (query, step), (start, end, asked) in reversed(self.items.items()):
            if end >= asked - 2 * step:
                new_end = math.floor(now / step) * step
                start, end = new_end - (end - start), new_end
            out.append((query, start, end, step))
        return out

    def save(self, path: Path) -> None:
        rows = [{"query": q, "step": st, "start": s, "end": e, "asked": a}
                for (q, st), (s, e, a) in self.items.items()]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows))
        tmp.replace(path)

    @staticmethod
    def load(path: Path) -> Recent:
        r = Recent()
        try:
            rows = json.loads(path.read_text())
            for row in rows[-KEEP:]:
                q, st, s, e, a = str(row["query"]), float(row["step"]), float(row["start"]), \
                    float(row["end"]), float(row["asked"])
                if st > 0 and s <= e and all(map(math.isfinite, (st, s, e, a))):
                    r.items[(q, st)] = (s, e, a)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring %s: %s", path, exc)
        return r


def path_of(heron: Heron) -> Path:
    return Path(heron.config.storage.data_dir) / "ui" / FILE


def of(heron: Heron) -> Recent:
    """The instance's list (one per Heron object), first read from the previous run's file."""
    r = _BY_HERON.get(heron)
    if r is None:
        r = _BY_HERON[heron] = Recent.load(path_of(heron))
    return r


def note(heron: Heron, params: dict[str, str]) -> None:
    try:
        start, end, step = float(params["start"]), float(params["end"]), float(params["step"])
    except (KeyError, ValueError):
        return
    if step > 0 and start <= end and params.get("query"):
        of(heron).note(params["query"], start, end, step, time.time())


def save(heron: Heron) -> None:
    r = _BY_HERON.get(heron)
    if r is None or not r.items:
        return
    try:
        r.save(path_of(heron))
    except OSError as exc:
        log.warning("could not save the recent panel queries: %s", exc)
