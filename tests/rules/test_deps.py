"""Before which rules of a group what the group wrote so far must become visible."""

from __future__ import annotations

from typing import Any

import pytest

from heron.rules.deps import flush_before, reads
from heron.rules.rulefmt import parse_rules

GROUP = """groups:
- name: g
  rules:
  - record: job:a:sum
    expr: sum by (job) (a)
  - record: job:b:sum
    expr: sum by (job) (b)
  - alert: ALow
    expr: job:a:sum < 1
  - record: alerts:count
    expr: count(ALERTS{{alertstate="firing"}})
  - record: last
    expr: '{last}'
"""


def rules_of(text: str) -> list[Any]:
    from heron.rules.group import Group

    return Group.from_def(parse_rules(text, "x.yml")[0], 60_000).rules


@pytest.mark.parametrize(("last", "want"), [
    # ALow reads job:a:sum (one flush covers job:b:sum too); alerts:count reads ALow's ALERTS
    ("rate(c[5m])", {2, 3}),
    ("job:b:sum * 2", {2, 3}),  # job:b:sum was made visible before ALow already
    ("alerts:count + 1", {2, 3, 4}),
    ('{job="x"}', {2, 3, 4}),  # no fixed name: may read everything written before it
])
def test_flush_before(last: str, want: set[int]) -> None:
    assert set(flush_before(rules_of(GROUP.format(last=last)))) == want


@pytest.mark.parametrize(("expr", "names", "want"), [
    ("sum(rate(job:b:sum[5m]))", ["job:b:sum"], True),
    ("sum(rate(job:b:sum[5m]))", ["job:a:sum"], False),
    ('{__name__=~"job:b:.*"}', ["job:b:sum"], True),
    ('{__name__=~"job:b"}', ["job:b:sum"], False),  # anchored, as in Prometheus
    ('{__name__!="job:b:sum", job="x"}', ["job:b:sum"], False),
    ('{__name__!="job:b:sum", job="x"}', ["ALERTS"], True),
    ('{job="x"}', ["anything"], True),
    ("sum_over_time(job:b:sum[5m:1m]) or on() vector(0)", ["job:b:sum"], True),
    ('ALERTS{alertname="x"} unless ALERTS_FOR_STATE', ["ALERTS_FOR_STATE"], True),
    ("sum(", ["x"], True),  # does not parse: assume it reads everything
])
def test_reads(expr: str, names: list[str], want: bool) -> None:
    assert reads(expr, names) is want


def test_template_query_reads_everything_before_it() -> None:
    text = """groups:
- name: g
  rules:
  - record: a:one
    expr: vector(1)
  - record: a:two
    expr: vector(2)
  - alert: X
    expr: vector(1)
    annotations: {summary: '{{ with query "a:one" }}{{ . | first | value }}{{ end }}'}
"""
    assert set(flush_before(rules_of(text))) == {2}
    assert not reads("vector(1)", ["a:one"])
