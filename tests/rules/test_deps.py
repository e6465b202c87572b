"""Which rules of a group must be visible to later rules before the group's batch is written."""

from __future__ import annotations

from typing import Any

import pytest

from heron.rules.deps import read_by_later, reads
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
    ("rate(c[5m])", {0, 2}),  # job:a:sum read by ALow, ALow's ALERTS by alerts:count
    ("job:b:sum * 2", {0, 1, 2}),
    ('{__name__=~"job:b:.*"}', {0, 1, 2}),
    ('{__name__=~"job:b"}', {0, 2}),  # anchored, as in Prometheus
    ('{__name__!="job:b:sum", job="x"}', {0, 2, 3}),
    ('{job="x"}', {0, 1, 2, 3}),  # no fixed name: may read everything before it
    ("sum_over_time(job:b:sum[5m:1m]) or on() vector(0)", {0, 1, 2}),
])
def test_read_by_later(last: str, want: set[int]) -> None:
    assert set(read_by_later(rules_of(GROUP.format(last=last)))) == want


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
    assert set(read_by_later(rules_of(text))) == {0, 1}
    assert not reads("vector(1)", ["a:one"])

