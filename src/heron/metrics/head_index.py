"""The head's series index: label sets by position, and label matchers resolved without SQL.

Every series the head has seen gets a position (0, 1, 2, ... in order of arrival); sample keys
use it. Per label name the index keeps which positions carry the label and a code for their
value, so one matcher is a vectorized lookup: decide which distinct *values* match (a regex runs
once per distinct value, cached), then gather that verdict through the positions' codes.

Semantics are those of the SQL path (`promql.fetch.where_clause`): a missing label reads as
the empty string (so `{a=""}` and `{a!~"x"}` match series without `a`), and regexes are
Prometheus 3's: anchored, `.` matching newlines, RE2 syntax. Python's `re` only runs where it
provably agrees with RE2 (an ASCII pattern without RE2-only syntax, on printable ASCII values);
any other (pattern, value) pair is asked of ClickHouse's RE2 `match`, once, through `regex_oracle`.
"""

from __future__ import annotations

import bisect
import itertools
import re
import threading
import warnings
from array import array
from collections import OrderedDict
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from heron.metrics.id_map import IdMap
from heron.metrics.model import Labels, series_id

# Constructs whose meaning differs between Python's `re` and RE2 (or that one of them lacks):
# POSIX classes, Unicode classes, \z \Z \Q \C \x{...}, `{,n}`, ungreedy flag, named groups `(?<`,
# octal/backreference-looking escapes.
_RE2_ONLY = re.compile(r"\[:|\\[pPzZQCE0-9]|\\x\{|\{,|\(\?[a-zA-Z]*U|\(\?<|\}\{|\[\[")
_SAFE_VALUE = re.compile(r"[\x20-\x7e]*")

RegexOracle = Callable[[str, str, list[str]], list[bool]]
"""(op, pattern, values) -> which values the anchored RE2 regex matches (ClickHouse `match`)."""


def python_regex(pattern: str) -> re.Pattern[str] | None:
    """`pattern` compiled for `fullmatch` with Prometheus 3's flags, when Python's `re` reads it
    as RE2 does on printable ASCII text; None when only RE2 may judge it."""
    if not pattern.isascii() or _RE2_ONLY.search(pattern):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return re.compile("(?s)" + pattern)
    except (re.error, Warning, RecursionError, OverflowError):
        return None


class _Postings:
    """Positions carrying one label name, with their value codes (append-only)."""

    __slots__ = ("_arrays", "codes", "pos", "value_code", "values")

    def __init__(self) -> None:
        self.values: list[str] = []
        self.value_code: dict[str, int] = {}
        self.pos = array("q")
        self.codes = array("i")
        self._arrays: tuple[int, np.ndarray, np.ndarray] | None = None

    def add(self, position: int, value: str) -> None:
        code = self.value_code.get(value)
        if code is None:
            code = self.value_code[value] = len(self.values)
            self.values.append(value)
        self.pos.append(position)
        self.codes.append(code)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        cached = self._arrays
        if cached is None or cached[0] != len(self.pos):
            cached = (len(self.pos), np.array(self.pos, np.int64), np.array(self.codes, np.int64))
            self._arrays = cached
        return cached[1], cached[2]


_INCREMENTAL = 2048  # up to this many new series, cached matches are extended, not recomputed


class _OrderView:
    """The label sets in label order, as a sequence `bisect` can search without a copy."""

    __slots__ = ("labels", "order")

    def __init__(self, order: np.ndarray, labels: list[Labels]) -> None:
        self.order, self.labels = order, labels

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> Labels:
        return self.labels[int(self.order[i])]


class HeadIndex:
    """Label sets by position; `resolve` turns matcher groups into sorted positions.

    Writers add series under the writer's lock; postings are brought up to date lazily by the
    first query that needs them, so ingest of new series pays only a dict insert."""

    def __init__(self, regex_oracle: RegexOracle | None = None) -> None:
        self.labels: list[Labels] = []  # position -> label set without empty values
        self._pos = IdMap()  # series id -> position
        self._postings: dict[str, _Postings] = {}
        self._indexed = 0
        self._order = np.empty(0, np.int64)  # positions sorted by label set
        self._rank = np.empty(0, np.int64)  # position -> place in that order
        self._regex: dict[tuple[str, str, str], tuple[int, np.ndarray, bool]] = {}
        self._resolved: OrderedDict[str, tuple[int, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()
        self.regex_oracle = regex_oracle

    def __len__(self) -> int:
        return len(self.labels)

    # --- writing ------------------------------------------------------------------------------

    def positions(self, series: Sequence[Labels], ids: Sequence[int] | np.ndarray | None = None,
                  clean: bool = False) -> np.ndarray:
        """Positions of `series`, adding the unknown ones (one writer at a time).

        Series are found by their id (`ids[i]` is `series_id(series[i])`; computed when not
        given), not by their label tuple, in an `IdMap`: a write of known series is a few numpy
        passes over its ids, no Python per id. `clean`: the sets have no empty values (the
        remote-write decoder drops them), so the check for them is skipped."""
        id_arr = np.asarray(ids, np.uint64) if ids is not None else \
            np.fromiter(map(series_id, series), np.uint64, len(series))
        where = self._pos.find(id_arr)
        out = self._pos.values(where)
        miss = np.flatnonzero(out < 0)
        if not len(miss):
            return out
        start = len(self.labels)
        fresh = np.arange(start, start + len(miss), dtype=np.int64)
        if self._pos.put(id_arr[miss], fresh, where[miss]) < len(miss):
            # a series came twice: positions by first appearance, once each
            _, first = np.unique(id_arr[miss], return_index=True)
            miss = miss[np.sort(first)]
            fresh = fresh[:len(miss)]
            self._pos.set(id_arr[miss], fresh)
        added = list(series) if len(miss) == len(id_arr) else [series[i] for i in miss.tolist()]
        if not clean and "" in map(itemgetter(1), itertools.chain.from_iterable(added)):
            added = [tuple(kv for kv in s if kv[1] != "") for s in added]  # rare: drop empties
        self.labels.extend(added)
        if len(miss) == len(id_arr):  # all new, no repeats
            return fresh
        out[miss] = fresh
        rest = np.flatnonzero(out < 0)  # repeats of a series new in this write
        if len(rest):
            out[rest] = self._pos.get(id_arr[rest])
        return out

    # --- reading ------------------------------------------------------------------------------

    def _catch_up(self) -> int:
        """Index postings and label order up to the current series count (under the lock)."""
        n = len(self.labels)
        if self._indexed < n:
            postings = self._postings
            for p in range(self._indexed, n):
                for name, value in self.labels[p]:
                    pl = postings.get(name)
                    if pl is None:
                        pl = postings[name] = _Postings()
                    pl.add(p, value)
            self._order = self._merge_order(self._indexed, n)
            rank = np.empty(n, np.int64)
            rank[self._order] = np.arange(n, dtype=np.int64)
            self._rank = rank
            self._indexed = n
        return n

    def _merge_order(self, old: int, n: int) -> np.ndarray:
        """The label order with positions old..n-1 inserted by binary search (no full resort):
        each new series costs log2(n) label comparisons, not a walk over the order."""
        labels = self.labels
        new = sorted(range(old, n), key=labels.__getitem__)
        if old == 0:
            return np.asarray(new, np.int64)
        view = _OrderView(self._order, labels)
        at = [bisect.bisect_left(view, labels[p]) for p in new]
        return np.insert(self._order, np.asarray(at, np.int64), np.asarray(new, np.int64))

    def resolve(self, groups: list[list[tuple[str, str, str]]]) -> np.ndarray | None:
        """Positions matching any group (matchers ANDed in a group), in label-set order.

        None when a regex cannot be judged here (no oracle for an RE2-only construct)."""
        key = repr(groups)
        with self._lock:
            n = self._catch_up()
            hit = self._resolved.get(key)
            if hit is not None and hit[0] == n:
                self._resolved.move_to_end(key)
                return hit[1]
            if hit is not None and n - hit[0] <= _INCREMENTAL:  # only the new series are matched
                grown = self._extend(groups, hit[0], n, hit[1])
                if grown is not None:
                    self._resolved[key] = (n, grown)
                    self._resolved.move_to_end(key)
                    return grown
            mask = np.zeros(n, bool)
            for group in groups:
                g = np.ones(n, bool)
                for name, op, value in group:
                    m = self._matcher_mask(name, op, value, n)
                    if m is None:
                        return None
                    g &= m
                mask |= g
            pos = np.flatnonzero(mask)
            out = pos[np.argsort(self._rank[pos], kind="stable")] if len(pos) else pos
            self._resolved[key] = (n, out)
            if len(self._resolved) > 2048:
                self._resolved.popitem(last=False)
            return out

    def _extend(self, groups: list[list[tuple[str, str, str]]], old: int, n: int,
                prev: np.ndarray) -> np.ndarray | None:
        """`prev` (the match over positions < old, in label order) plus the matching positions
        old..n-1, each placed by its rank: a query after a few new series costs their count, not
        the series count."""
        found = []
        for p in range(old, n):
            d = dict(self.labels[p])
            for group in groups:
                ok = True
                for name, op, value in group:
                    pl = self._postings.get(name)
                    verdict = self._value_verdict(name, pl, op, value)
                    if verdict is None:
                        return None
                    v = d.get(name, "")
                    ok = verdict[1] if v == "" or pl is None else bool(verdict[0][pl.value_code[v]])
                    if not ok:
                        break
                if ok:
                    found.append(p)
                    break
        if not found:
            return prev
        new = np.asarray(found, np.int64)
        new = new[np.argsort(self._rank[new])]
        at = np.searchsorted(self._rank[prev], self._rank[new])
        return np.insert(prev, at, new)

    def _matcher_mask(self, name: str, op: str, value: str, n: int) -> np.ndarray | None:
        pl = self._postings.get(name)
        verdict = self._value_verdict(name, pl, op, value)
        if verdict is None:
            return None
        on_values, on_empty = verdict
        mask = np.full(n, on_empty, bool)
        if pl is not None and pl.values:
            pos, codes = pl.arrays()
            mask[pos] = on_values[codes]
        return mask

    def _value_verdict(self, name: str, pl: _Postings | None, op: str,
                       value: str) -> tuple[np.ndarray, bool] | None:
        """Which distinct values of the label match, and whether the empty value (missing) does."""
        values = pl.values if pl is not None else []
        if op == "=":
            v = np.zeros(len(values), bool)
            if pl is not None and value in pl.value_code:
                v[pl.value_code[value]] = True
            return v, value == ""
        if op == "!=":
            v = np.ones(len(values), bool)
            if pl is not None and value in pl.value_code:
                v[pl.value_code[value]] = False
            return v, value != ""
        key = (name, op, value)
        cached = self._regex.get(key)
        done, verdict, on_empty = cached if cached is not None else (0, np.zeros(0, bool), False)
        if cached is None or done < len(values):
            fresh = self._regex_match(op, value, values[done:] if cached is not None else ["", *values])
            if fresh is None:
                return None
            if cached is None:
                on_empty, fresh = bool(fresh[0]), fresh[1:]
            verdict = np.concatenate([verdict, np.asarray(fresh, bool)])
            if len(self._regex) > 8192:
                self._regex.clear()
            self._regex[key] = (len(values), verdict, on_empty)
        return verdict, on_empty

    def _regex_match(self, op: str, pattern: str, values: list[str]) -> list[bool] | None:
        """Match verdicts (after `op`'s negation) for `values`."""
        rx = python_regex(pattern)
        out: list[bool | None] = []
        ask: list[int] = []
        for i, v in enumerate(values):
            if rx is not None and _SAFE_VALUE.fullmatch(v):
                out.append(rx.fullmatch(v) is not None)
            else:
                out.append(None)
                ask.append(i)
        if ask:
            if self.regex_oracle is None:
                return None
            answers = self.regex_oracle("=~", pattern, [values[i] for i in ask])
            for i, a in zip(ask, answers, strict=True):
                out[i] = a
        neg = op == "!~"
        return [bool(x) != neg for x in out]

    def stats(self) -> tuple[int, int]:
        """(series, label name/value pairs) indexed so far."""
        with self._lock:
            self._catch_up()
            return len(self.labels), sum(len(p.values) for p in self._postings.values())

    def cardinality(self, limit: int) -> dict[str, Any]:
        """Prometheus' /api/v1/status/tsdb tables over the indexed series, from the postings
        (one bincount per label name, no per-series Python)."""
        with self._lock:
            self._catch_up()
            by_metric: list[tuple[str, int]] = []
            values_by_name: list[tuple[str, int]] = []
            memory_by_name: list[tuple[str, int]] = []
            by_pair: list[tuple[str, int]] = []
            pairs = 0
            for name, pl in self._postings.items():
                _, codes = pl.arrays()
                counts = np.bincount(codes, minlength=len(pl.values))
                pairs += len(pl.values)
                values_by_name.append((name, len(pl.values)))
                lengths = np.fromiter((len(v.encode()) for v in pl.values), np.int64, len(pl.values))
                memory_by_name.append((name, int((counts * lengths).sum())))
                top = np.flatnonzero(counts >= np.partition(counts, len(counts) - limit)[len(counts) - limit]) \
                    if 0 < limit < len(counts) else np.arange(len(counts))  # every candidate, ties included
                by_pair.extend((f"{name}={pl.values[c]}", int(counts[c])) for c in top.tolist())
                if name == "__name__":
                    by_metric = [(pl.values[c], int(counts[c])) for c in range(len(pl.values))]

        def best(rows: list[tuple[str, int]]) -> list[dict[str, Any]]:
            rows.sort(key=lambda r: (-r[1], r[0]))
            return [{"name": k, "value": v} for k, v in rows[:limit]]

        return {"numLabelPairs": pairs, "seriesCountByMetricName": best(by_metric),
                "labelValueCountByLabelName": best(values_by_name),
                "memoryInBytesByLabelName": best(memory_by_name),
                "seriesCountByLabelValuePair": best(by_pair)}

    def label_values(self, name: str) -> list[str]:
        with self._lock:
            self._catch_up()
            pl = self._postings.get(name)
            return list(pl.values) if pl is not None else []
