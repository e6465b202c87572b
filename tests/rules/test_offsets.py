"""Group evaluation offsets are Prometheus' own: the same rule file evaluated by the real
Prometheus writes its recording samples at the offsets Heron computes (xxhash of the group's
file and name labels, modulo the interval)."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from heron.rules.group import Group
from heron.rules.rulefmt import parse_rule_file
from heron.testing import free_port
from tests.promql.peer import PROMETHEUS

GROUPS = ["api", "db", "frontend", "a-much-longer-group-name/with:odd chars"]


def test_offsets_are_stable_and_inside_the_interval() -> None:
    g = Group("api", "/etc/rules.yml", 60_000, [])
    assert g.offset_ms() == g.offset_ms() and 0 <= g.offset_ms() < 60_000
    assert Group("api", "/etc/other.yml", 60_000, []).offset_ms() != g.offset_ms()


@pytest.mark.peer
@pytest.mark.skipif(not PROMETHEUS, reason="prometheus not installed")
def test_offsets_match_the_real_prometheus() -> None:
    assert PROMETHEUS
    d = Path(tempfile.mkdtemp(prefix="prom-offsets-"))
    rules = d / "rules.yml"
    rules.write_text("groups:\n" + "".join(
        f"- name: '{n}'\n  interval: 3s\n  rules:\n  - record: offset_probe\n    expr: vector(1)\n"
        f"    labels: {{group: '{i}'}}\n"
        for i, n in enumerate(GROUPS)))
    (d / "prometheus.yml").write_text(f"global:\n  evaluation_interval: 3s\nrule_files: ['{rules}']\n")
    port = free_port()
    log = (d / "prometheus.log").open("wb")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        seen: dict[int, list[int]] = {}
        deadline = time.time() + 40
        while time.time() < deadline and not (len(seen) == len(GROUPS) and all(len(v) >= 2 for v in seen.values())):
            time.sleep(1)
            try:
                res = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": "offset_probe[1m]"},
                                timeout=5).json()
            except httpx.HTTPError:
                continue
            for s in res.get("data", {}).get("result", []):
                seen[int(s["metric"]["group"])] = [round(float(t) * 1000) for t, _ in s["values"]]
        want = {i: g.offset_ms() for i, g in enumerate(
            Group.from_def(gd, 3000) for gd in parse_rule_file(rules))}
        got = {i: {t % 3000 for t in ts} for i, ts in seen.items()}
        assert got == {i: {off} for i, off in want.items()}, (got, want)
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
