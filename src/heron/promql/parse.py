"""Parser adapter: promql-parser's AST into the few facts the evaluator needs.

promql-parser (Rust, the Prometheus grammar) does the parsing and type checking. This module
turns its durations, `@` modifiers and matchers into milliseconds and `Matcher` tuples, and
works around its one gap: a negative `@` timestamp cannot be read back from the AST, so such
timestamps are swapped for placeholders before parsing and mapped back here.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

import promql_parser as pp

from heron.promql.fetch import Matcher

_NEG_AT = re.compile(r"@\s*(-\s*[0-9][0-9.eE+_]*)")
_PLACEHOLDER_BASE = 4_000_000_000  # seconds (year 2096): a time no real query uses


# Prometheus 2.x's name for double_exponential_smoothing: dashboards written for 2.x still use it.
pp.register_extra_functions([
    pp.Function(name="holt_winters", arg_types=[pp.ValueType.Matrix, pp.ValueType.Scalar,
                                                pp.ValueType.Scalar],
                variadic=0, return_type=pp.ValueType.Vector, experimental=False),
])


class ParseError(Exception):
    """The expression does not parse; errorType `bad_data`."""


class ParsedQuery:
    def __init__(self, text: str) -> None:
        self.text = text
        self.negative_ats: dict[int, int] = {}
        src = text

        def repl(m: re.Match[str]) -> str:
            try:
                ms = round(float(m.group(1).replace(" ", "").replace("_", "")) * 1000)
            except ValueError:
                return m.group(0)
            key = _PLACEHOLDER_BASE + len(self.negative_ats)
            self.negative_ats[key * 1000] = ms
            return f"@ {key}"

        if "@" in src:
            src = _NEG_AT.sub(repl, src)
        try:
            self.root: Any = pp.parse(src)
        except BaseException as exc:  # the Rust side may panic (pyo3 PanicException)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            raise ParseError(_clean(str(exc))) from None

    def position(self, func: str, arg: int | None = None) -> str:
        """' (line:col)' of the first call of `func`, or of its arg-th argument, in the query text
        (promql-parser keeps no positions; annotations carry them as Prometheus renders them)."""
        text = self.text
        m = re.search(rf"(?<![A-Za-z0-9_:]){re.escape(func)}\b", text)
        if m is None:
            return ""
        at = m.start()
        if arg is not None:
            i = m.end()
            while i < len(text) and text[i].isspace():
                i += 1
            if text.startswith(("by", "without"), i):  # aggregation modifier before the args
                i = text.find(")", i) + 1
                while i < len(text) and text[i].isspace():
                    i += 1
            if i >= len(text) or text[i] != "(":
                return ""
            i += 1
            depth, quote, k = 0, "", 0
            start = i
            while i < len(text) and k < arg:
                c = text[i]
                if quote:
                    if c == "\\":
                        i += 1
                    elif c == quote:
                        quote = ""
                elif c in "\"'`":
                    quote = c
                elif c in "([{":
                    depth += 1
                elif c in ")]}":
                    depth -= 1
                elif c == "," and depth == 0:
                    k += 1
                    start = i + 1
                i += 1
            while start < len(text) and text[start].isspace():
                start += 1
            at = start
        line = text.count("\n", 0, at) + 1
        col = at - (text.rfind("\n", 0, at) + 1) + 1
        return f" ({line}:{col})"

    def at_ms(self, at: Any) -> int | str | None:
        """The `@` of a node: ms since epoch, "start"/"end", or None."""
        if at is None:
            return None
        kind = str(at.type)
        if kind.endswith("Start"):
            return "start"
        if kind.endswith("End"):
            return "end"
        try:
            when: dt.datetime = at.at
        except BaseException as exc:  # out-of-range times: pyo3 raises or panics
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            raise ParseError(f"invalid @ modifier: {_clean(str(exc))}") from None
        delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        ms = (delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000)
        return self.negative_ats.get(ms, ms)


@functools.lru_cache(maxsize=4096)
def parse_query(text: str) -> ParsedQuery:
    """`ParsedQuery(text)` through a bounded LRU: rules evaluate the same expressions every
    interval and dashboards repeat theirs. A ParsedQuery is never mutated once built, so one
    instance is shared by concurrent evaluations; parse errors are not cached (raised anew)."""
    return ParsedQuery(text)


def duration_ms(td: dt.timedelta | None) -> int:
    if td is None:
        return 0
    return td.days * 86_400_000 + td.seconds * 1000 + td.microseconds // 1000


_OPS = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}


def matcher_groups(vs: Any) -> list[list[Matcher]]:
    """Matcher groups of a vector selector (several with `{a="b" or c="d"}`)."""
    ms = vs.matchers
    name = vs.name
    groups_src = ms.or_matchers if ms.or_matchers else [ms.matchers]
    groups = []
    for group in groups_src:
        g = [Matcher(m.name, _OPS[str(m.op).split(".")[-1]], m.value) for m in group]
        if name:
            g.insert(0, Matcher("__name__", "=", name))
        groups.append(g)
    return groups


def op_name(op: Any) -> str:
    return str(op)


def _clean(msg: str) -> str:
    return msg.strip().splitlines()[0] if msg.strip() else "parse error"
