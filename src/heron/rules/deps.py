"""Which rules of a group read what an earlier rule of the same group wrote.

Prometheus commits each rule's output before the next rule of the group runs, so a recording
rule's result is visible to the rules after it at the same evaluation. Heron batches a group's
writes into one pipeline submit; only before a rule that reads an earlier one's output must
what was written so far become visible.
This module finds those rules from the metric names each expression selects (like Prometheus'
rule dependency map): a selector without a fixed name, or a template calling `query`, may read
anything, so it depends on every earlier rule.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from typing import Any

import promql_parser as pp

from heron.promql.fetch import Matcher
from heron.promql.parse import matcher_groups


def _selectors(node: Any) -> Iterator[Any]:
    if isinstance(node, pp.VectorSelector):
        yield node
        return
    for attr in ("expr", "lhs", "rhs", "param", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, str | int | float):
            yield from _selectors(child)
    for arg in getattr(node, "args", None) or []:
        yield from _selectors(arg)


def _name_matches(m: Matcher, name: str) -> bool:
    if m.op in ("=", "!="):
        return (m.value == name) == (m.op == "=")
    hit = re.fullmatch(f"(?s:{m.value})", name) is not None
    return hit == (m.op == "=~")


@functools.lru_cache(maxsize=4096)
def selector_groups(expr: str) -> list[list[Matcher]] | None:
    """The matcher groups of every selector in `expr`, or None when it does not parse."""
    try:
        root = pp.parse(expr)
    except BaseException as exc:  # pyo3 PanicException derives from BaseException
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return None
    return [g for vs in _selectors(root) for g in matcher_groups(vs)]


def reads(expr: str, names: Sequence[str]) -> bool:
    """Whether `expr` may select a series named one of `names`."""
    groups = selector_groups(expr)
    if groups is None:
        return True
    for group in groups:
        by_name = [m for m in group if m.name == "__name__"]
        if not by_name or any(all(_name_matches(m, n) for m in by_name) for n in names):
            return True
    return False


def outputs(rule: Any) -> list[str]:
    """Metric names a rule writes: its record name, or ALERTS and ALERTS_FOR_STATE."""
    return [rule.name] if rule.kind == "recording" else ["ALERTS", "ALERTS_FOR_STATE"]


def _queries_in_templates(rule: Any) -> bool:
    texts = list(getattr(rule, "labels", {}).values()) + list(getattr(rule, "annotations", {}).values())
    return rule.kind == "alerting" and any("query" in t and "{{" in t for t in texts)


def rule_reads(rule: Any, names: Sequence[str]) -> bool:
    """Whether evaluating `rule` (its expression, or a template calling `query`) may read `names`."""
    return bool(names) and (_queries_in_templates(rule) or reads(rule.expr, names))


def flush_before(rules: Sequence[Any]) -> frozenset[int]:
    """Indices of the rules before which what the group wrote so far must be visible: the
    first rule after a write that reads it (one flush then covers every earlier write)."""
    out: set[int] = set()
    pending: list[str] = []
    for j, rule in enumerate(rules):
        if rule_reads(rule, pending):
            out.add(j)
            pending = []
        pending += outputs(rule)
    return frozenset(out)
