"""`heron up` with rule files in a real process: rules load from paths relative to heron.yml,
run on their schedule, and show in /api/v1/rules, /api/v1/alerts and /api/v1/query."""

from __future__ import annotations

import time

from heron.testing import HeronProcess


def test_heron_up_evaluates_rule_files() -> None:
    proc = HeronProcess(config={"rule_files": ["rules/*.yml"], "global": {"evaluation_interval": "1s"}})
    (proc.data_dir / "rules").mkdir(parents=True)
    (proc.data_dir / "rules" / "always.yml").write_text(
        "groups:\n- name: always\n  rules:\n  - record: heron:one\n    expr: vector(1)\n"
        "  - alert: Always\n    expr: vector(1)\n    annotations: {summary: 'value {{ $value }}'}\n")
    proc.start()
    try:
        with proc.client() as c:
            deadline = time.time() + 20
            alerts: list[dict[str, object]] = []
            while time.time() < deadline:
                alerts = c.get("/api/v1/alerts").json()["data"]["alerts"]
                if alerts:
                    break
                time.sleep(0.2)
            assert alerts and alerts[0]["state"] == "firing"
            assert alerts[0]["annotations"] == {"summary": "value 1"}
            groups = c.get("/api/v1/rules").json()["data"]["groups"]
            assert [g["name"] for g in groups] == ["always"]
            assert groups[0]["file"].endswith("rules/always.yml")
            deadline = time.time() + 20
            result: list[object] = []
            while time.time() < deadline and not result:
                result = c.get("/api/v1/query", params={"query": "heron:one"}).json()["data"]["result"]
                time.sleep(0.3)
            assert result and result[0]["value"][1] == "1"  # type: ignore[index]
    finally:
        proc.stop()


def test_recording_chain_is_visible_to_the_next_rule_at_the_same_evaluation() -> None:
    """Prometheus commits each rule before the next one of the group runs: `chain:two` reads
    `chain:one` of the same tick, so both hold the same points (a rule reading the previous
    tick's value would lag by one interval, and miss the first tick)."""
    proc = HeronProcess(config={"rule_files": ["chain.yml"], "global": {"evaluation_interval": "1s"}})
    proc.data_dir.mkdir(parents=True, exist_ok=True)
    (proc.data_dir / "chain.yml").write_text(
        "groups:\n- name: chain\n  rules:\n  - record: chain:one\n    expr: vector(time())\n"
        "  - record: chain:two\n    expr: chain:one\n  - record: chain:three\n    expr: chain:two + 1\n")
    proc.start()
    try:
        with proc.client() as c:
            points: dict[str, list[list[object]]] = {}
            deadline = time.time() + 30
            while time.time() < deadline:
                time.sleep(0.5)
                res = c.get("/api/v1/query", params={"query": '{__name__=~"chain:.*"}[1m]'}).json()
                points = {s["metric"]["__name__"]: s["values"] for s in res["data"]["result"]}
                if len(points.get("chain:three", [])) >= 4:
                    break
            n = min(len(v) for v in points.values())  # the query may land between two writes
            one, two, three = (points[k][:n] for k in ("chain:one", "chain:two", "chain:three"))
            assert n >= 4 and len(points) == 3, points
            assert one == two  # same timestamps, same values: every tick, including the first
            assert [(t, float(str(v)) + 1) for t, v in one] == [(t, float(str(v))) for t, v in three]
            assert all(float(str(v)) == t for t, v in one)  # time() of the evaluation itself
    finally:
        proc.stop()
