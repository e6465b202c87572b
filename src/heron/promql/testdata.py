"""The PromQL test-script / promtool `input_series` notation, and a loader into storage.

    load_series(storage, '''
        http_requests_total{job="api"} 0+10x5 _ stale 1e3
        up{job="api"} 1x10
    ''', interval=60, start=0)

Value tokens: a float (`1`, `-2.5`, `1e3`, `Inf`, `NaN`); `_` (no sample) and `_xN` (N gaps);
`stale` (a staleness marker); `vxN` (N+1 copies of v); `a+bxN` / `a-bxN` (N+1 samples a, a±b,
...). Sample i of a line is at `start + i*interval`. Native histogram tokens (`{{...}}`) are
refused with `SeriesSyntaxError`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from heron.metrics.head import Head
from heron.metrics.model import STALE_NAN, Labels, labels_from, metric_name, series_id
from heron.metrics.writer import SAMPLES_SCHEMA, SERIES_SCHEMA
from heron.storage.base import Storage


class SeriesSyntaxError(ValueError):
    """A series line or value token is malformed; the message names the token."""


_NUM = r"[-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|[iI][nN][fF]|[nN][aA][nN])"
_EXPAND = re.compile(rf"^({_NUM})([-+])({_NUM})x([0-9]+)$")
_REPEAT = re.compile(rf"^({_NUM})x([0-9]+)$")
_GAPS = re.compile(r"^_x([0-9]+)$")


def _num(tok: str) -> float:
    t = tok.lower().lstrip("+")
    if t in ("inf", "-inf", "nan"):
        return float(t)
    try:
        return float(tok)
    except ValueError:
        raise SeriesSyntaxError(f"bad number {tok!r}") from None


def parse_values(text: str) -> list[float | None]:
    """Expand a value string; None marks a position with no sample."""
    out: list[float | None] = []
    for tok in text.split():
        if tok == "_":
            out.append(None)
        elif tok == "stale":
            out.append(STALE_NAN)
        elif m := _GAPS.match(tok):
            out.extend([None] * int(m.group(1)))
        elif m := _EXPAND.match(tok):
            a, sign, b, n = _num(m.group(1)), m.group(2), _num(m.group(3)), int(m.group(4))
            step = b if sign == "+" else -b
            out.extend(a + i * step for i in range(n + 1))
        elif m := _REPEAT.match(tok):
            out.extend([_num(m.group(1))] * (int(m.group(2)) + 1))
        elif tok.startswith("{{"):
            raise SeriesSyntaxError(f"native histogram samples are not supported: {tok!r}")
        else:
            out.append(_num(tok))
    return out


def parse_selector(text: str) -> Labels:
    """`name{a="b"}` or `{__name__="name",a="b"}` into a label set."""
    import promql_parser as pp

    if re.fullmatch(r"\{\s*\}", text.strip()):
        return ()
    try:
        node: Any = pp.parse(text.strip())
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise SeriesSyntaxError(f"bad series {text.strip()!r}: {str(exc).strip()}") from None
    if type(node).__name__ != "VectorSelector":
        raise SeriesSyntaxError(f"bad series {text.strip()!r}: not a series selector")
    pairs = {m.name: m.value for m in node.matchers.matchers}
    if node.name:
        pairs["__name__"] = node.name
    return labels_from(pairs)


def split_line(line: str) -> tuple[str, str]:
    """Split `series values...` where the series may contain spaces inside braces or quotes."""
    depth, quote, i = 0, "", 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'`":
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c.isspace() and depth == 0:
            return line[:i], line[i:].strip()
        i += 1
    return line, ""


def parse_series(series: str | Iterable[tuple[str, str]], interval: float,
                 start: float = 0.0) -> list[tuple[Labels, np.ndarray, np.ndarray]]:
    """(labels, ts_ms, values) per series; a later line for the same labels replaces an earlier one."""
    pairs = (split_line(ln.strip()) for ln in series.splitlines() if ln.strip()
             and not ln.strip().startswith("#")) if isinstance(series, str) else series
    out: dict[Labels, tuple[np.ndarray, np.ndarray]] = {}
    step_ms, start_ms = round(interval * 1000), round(start * 1000)
    for sel, values in pairs:
        labels = parse_selector(sel)
        vals = parse_values(values)
        idx = [i for i, v in enumerate(vals) if v is not None]
        ts = start_ms + np.asarray(idx, dtype=np.int64) * step_ms
        out[labels] = (ts, np.array([vals[i] for i in idx], dtype=np.float64))
    return [(lb, ts, v) for lb, (ts, v) in out.items()]


def write_series(storage: Storage, data: Sequence[tuple[Labels, np.ndarray, np.ndarray]],
                 head: Head | None = None) -> int:
    """Insert parsed series straight into `metric_series` / `metric_samples`; returns samples.

    Behind a running Heron's back, pass its `head` too (the in-memory copy queries read)."""
    if not data:
        return 0
    if head is not None:
        head.append([lb for lb, _, _ in data], [len(ts) for _, ts, _ in data],
                    np.concatenate([ts for _, ts, _ in data]), np.concatenate([v for _, _, v in data]))
    ids = [series_id(lb) for lb, _, _ in data]
    # A fresh token per call: identical blocks loaded again after a clear must not be deduplicated.
    token = uuid.uuid4().hex
    storage.insert("metric_series", pa.table(
        [pa.array(ids, pa.uint64()), pa.array([metric_name(lb) for lb, _, _ in data], pa.string()),
         pa.array([list(lb) for lb, _, _ in data], pa.map_(pa.string(), pa.string()))],
        schema=SERIES_SCHEMA), dedup_token=token + "s")
    counts = [len(ts) for _, ts, _ in data]
    total = int(sum(counts))
    if total:
        storage.insert("metric_samples", pa.table(
            [pa.array(np.repeat(np.asarray(ids, np.uint64), counts), pa.uint64()),
             pa.array(np.concatenate([ts for _, ts, _ in data]), pa.int64()),
             pa.array(np.concatenate([v for _, _, v in data]), pa.float64())], schema=SAMPLES_SCHEMA), dedup_token=token)
    return total


def load_series(storage: Storage, series: str | Iterable[tuple[str, str]], interval: float,
                start: float = 0.0, head: Head | None = None) -> int:
    """Write series in test notation into `storage` (its metric tables must exist).

    `series` is either text with one `selector values...` per line, or (selector, values)
    pairs as in promtool's `input_series`. `interval` and `start` are seconds; sample i of a
    series is at `start + i*interval`. Returns the number of samples written.
    Raises SeriesSyntaxError on a malformed selector or value.
    """
    return write_series(storage, parse_series(series, interval, start), head)
