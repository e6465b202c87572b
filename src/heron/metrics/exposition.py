"""Prometheus text format 0.0.4 and OpenMetrics 1.0 parsers, chosen by the Content-Type.

Parsing is a hot path (every target, every interval), so there is no per-character Python:
one compiled regex walks the whole payload (`finditer` over sample lines), values become a numpy
array in one conversion, and label blocks are parsed once per distinct string and cached by
the caller across scrapes (`LabelCache`), since a target exposes the same series every time.
A payload with a line the regex does not take is rejected with its line number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from heron.exceptions import BadRequest

OPENMETRICS = "application/openmetrics-text"
TEXT = "text/plain"
ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
          "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_QUOTED = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_LABELS = r'\{([^}"]*(?:' + _QUOTED + r'[^}"]*)*)\}'
_NUM = r"[^\s#]+"
# One regex over all sample lines joined with a leading "\n": the literal "\n" anchors every match
# at a line start (fast literal search, no mid-line matches), the lookahead leaves the next "\n"
# for the next match. Groups: name, label block, value, timestamp, exemplar (OpenMetrics).
_SAMPLE = re.compile(
    rf"\n({_NAME})[ \t]*(?:{_LABELS})?[ \t]+({_NUM})(?:[ \t]+({_NUM}))?(?:[ \t]*#([^\n]*))?[ \t\r]*(?=\n|\Z)")
_META = re.compile(r"#[ \t]+(HELP|TYPE|UNIT)[ \t]+(" + _NAME + r")[ \t]*(.*)")
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
_ESCAPE = re.compile(r'\\[\\"n]')
TYPES = {"counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset", "unknown",
         "untyped"}

Labels = tuple[tuple[str, str], ...]


def _unescape(s: str) -> str:
    return _ESCAPE.sub(lambda m: _ESCAPES[m.group(0)], s) if "\\" in s else s


_PAIR = r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"([^"\\]*(?:\\.[^"\\]*)*)"[ \t]*'
_PAIRS = re.compile(_PAIR)
_BLOCK = re.compile(rf"(?:{_PAIR},)*(?:{_PAIR})?[ \t]*")


def parse_labels(block: str) -> list[tuple[str, str]]:
    """`a="1",b="x\\"y"` -> [("a", "1"), ("b", 'x"y')]; raises ValueError on junk."""
    if not _BLOCK.fullmatch(block):
        raise ValueError(f"invalid label set {{{block}}}")
    out = [(k, _unescape(v)) for k, v in _PAIRS.findall(block)]
    if len(out) > 1 and len({k for k, _ in out}) != len(out):
        raise ValueError(f"duplicate label name in {{{block}}}")
    return out


class LabelCache:
    """(metric name, label block) -> sorted label set; kept per target across scrapes."""

    def __init__(self, max_size: int = 200_000) -> None:
        self._cache: dict[tuple[str, str], Labels] = {}
        self.max_size = max_size
        self.comments = ""
        self.families: dict[str, Family] = {}

    def families_of(self, comments: list[str], om: bool) -> dict[str, Family]:
        """HELP/TYPE/UNIT of the payload; reparsed only when the comment lines changed."""
        joined = "\n".join(comments)
        if joined != self.comments or (not self.families and comments):
            self.families = _families(comments, om)
            self.comments = joined
        return self.families

    def get(self, name: str, block: str) -> Labels:
        key = (name, block)
        hit = self._cache.get(key)
        if hit is None:
            pairs = parse_labels(block) if block else []
            hit = tuple(sorted([("__name__", name), *((k, v) for k, v in pairs if v != "")]))
            if len(self._cache) >= self.max_size:
                self._cache.clear()
            self._cache[key] = hit
        return hit


@dataclass
class Family:
    name: str
    type: str = "unknown"
    help: str = ""
    unit: str = ""


@dataclass
class Parsed:
    """One payload: `series[i]` has `values[i]`, `ts_ms[i]` (-1 when the line has none)."""

    series: list[Labels]
    values: np.ndarray
    ts_ms: np.ndarray
    families: dict[str, Family] = field(default_factory=dict)
    exemplars: int = 0
    openmetrics: bool = False
    exemplar_text: list[tuple[int, str]] = field(default_factory=list)  # (line index, text after #)


def is_openmetrics(content_type: str | None) -> bool:
    return bool(content_type) and content_type.split(";")[0].strip().lower() == OPENMETRICS  # type: ignore[union-attr]


def parse(payload: str | bytes, content_type: str | None = None, cache: LabelCache | None = None) -> Parsed:
    """Parse an exposition payload; format chosen by `content_type` (text 0.0.4 by default)."""
    text = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else payload
    om = is_openmetrics(content_type)
    cache = cache or LabelCache()
    lines = text.split("\n")
    comments = [line for line in lines if line[:1] == "#"]
    body = [line for line in lines if line.strip() and line[:1] != "#"]
    if om:
        _check_eof(text)
    matches = _SAMPLE.findall("\n" + "\n".join(body)) if body else []
    if len(matches) != len(body):
        _raise_bad_line(text)
    n = len(matches)
    if not n:
        return Parsed([], np.empty(0), np.empty(0, dtype=np.int64), cache.families_of(comments, om), 0, om)
    names, blocks, vals, tss, exs = zip(*matches, strict=True)
    keys = list(zip(names, blocks, strict=True))
    found = list(map(cache._cache.get, keys))
    if None in found:
        for i, hit in enumerate(found):
            if hit is None:
                try:
                    found[i] = cache.get(*keys[i])
                except ValueError as exc:
                    raise BadRequest(f"line {_line_of(text, *keys[i])}: {exc}") from None
    series: list[Labels] = found  # type: ignore[assignment]
    try:
        values = np.array(vals, dtype=np.str_).astype(np.float64)
    except ValueError:
        values = np.empty(n)
        for i, v in enumerate(vals):
            try:
                values[i] = float(v)
            except ValueError:
                raise BadRequest(f"line {_line_of(text, *keys[i])}: invalid value {v!r}") from None
    ts_ms = _timestamps(list(tss), om, text, keys)
    exemplars = n - exs.count("")
    texts = [(i, e) for i, e in enumerate(exs) if e] if exemplars and om else []
    return Parsed(series, values, ts_ms, cache.families_of(comments, om), exemplars, om, texts)


def _timestamps(tss: list[str], om: bool, text: str, keys: list[tuple[str, str]]) -> np.ndarray:
    n = len(tss)
    if not any(tss):
        return np.full(n, -1, dtype=np.int64)
    filled = [t or "nan" for t in tss]
    try:
        arr = np.array(filled, dtype=np.str_).astype(np.float64)
    except ValueError:
        for i, t in enumerate(tss):
            try:
                float(t or 0)
            except ValueError:
                raise BadRequest(f"line {_line_of(text, *keys[i])}: invalid timestamp {t!r}") from None
        raise
    if om:  # OpenMetrics: seconds (may be fractional); text format: integer milliseconds.
        arr = np.round(arr * 1000.0)
    out = np.where(np.isnan(arr), -1, arr).astype(np.int64)
    return out


def _families(comments: list[str], om: bool) -> dict[str, Family]:
    families: dict[str, Family] = {}
    for line in comments:
        m = _META.match(line)
        if not m:
            continue
        kind, name, rest = m.groups()
        rest = rest.rstrip(" \t\r")
        fam = families.get(name)
        if fam is None:
            fam = families[name] = Family(name)
        if kind == "TYPE":
            t = (rest or "").strip()
            if t not in TYPES:
                raise BadRequest(f"invalid metric type {t!r} for {name}")
            fam.type = "unknown" if t == "untyped" else t
        elif kind == "HELP":
            help_ = rest or ""
            fam.help = _unescape(help_) if om else help_.replace("\\\\", "\\").replace("\\n", "\n")
        elif kind == "UNIT":
            fam.unit = rest or ""
    return families


def _check_eof(text: str) -> None:
    idx = text.rfind("# EOF")
    if idx < 0 or (idx > 0 and text[idx - 1] != "\n"):
        raise BadRequest("OpenMetrics payload does not end with '# EOF'")
    if text[idx + 5:].strip("\r\n"):
        raise BadRequest("OpenMetrics payload has data after '# EOF'")


def _line_of(text: str, name: str, block: str) -> int:
    needle = name + ("{" + block + "}" if block else "")
    pos = text.find(needle)
    return text.count("\n", 0, pos) + 1 if pos >= 0 else 0


def _raise_bad_line(text: str) -> None:
    for no, line in enumerate(text.split("\n"), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if not _SAMPLE.fullmatch("\n" + line):
            raise BadRequest(f"line {no}: cannot parse {line[:120]!r}")
    raise BadRequest("cannot parse the payload")
