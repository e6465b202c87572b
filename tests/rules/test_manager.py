"""The rules service inside a real Heron: evaluation, write-back, ALERTS, for-state restore after
a restart, delivery to the built-in alerting path and to a real Alertmanager, and the APIs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from heron.exceptions import ConfigError
from heron.metrics.model import labels_from
from heron.rules.manager import GroupRun, RuleManager
from heron.server import Heron
from tests.alerting.peers import ALERTMANAGER, AlertmanagerProcess, have
from tests.conftest import ADMIN, make_config

RULES = """groups:
- name: demo
  interval: 1s
  rules:
  - record: job:up:sum
    expr: sum by (job) (up)
  - alert: JobDown
    expr: up == 0
    for: {for_}
    labels: {{severity: page}}
    annotations:
      summary: '{{{{ $labels.job }}}} is down ({{{{ $value }}}}) in {{{{ $externalLabels.cluster }}}}'
"""


def config(tmp_path: Path, for_: str = "0s", database: str | None = None, **extra: Any) -> Any:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES.format(for_=for_))
    cfg = make_config(tmp_path, rule_files=[str(rules)],  # type: ignore[arg-type]
                      **{"global": {"evaluation_interval": "1s", "external_labels": {"cluster": "eu1"},
                                    "rule_resend_delay": "2s", "rule_for_grace_period": "1s"}}, **extra)
    if database:
        cfg.storage.database = database  # type: ignore[attr-defined]
    return cfg


async def put(heron: Heron, ts_ms: int, value: float, job: str = "api") -> None:
    await heron.metrics_writer.write([labels_from({"__name__": "up", "job": job})], [1],
                                     np.array([ts_ms], np.int64), np.array([value]))
    await asyncio.get_running_loop().run_in_executor(None, heron.pipeline.flush)


async def evaluate(heron: Heron, ts_ms: int, restore: bool = False) -> None:
    manager: RuleManager = heron.rules  # type: ignore[attr-defined]
    await manager.evaluate(manager.groups[0], ts_ms, restore=restore)
    await asyncio.get_running_loop().run_in_executor(None, heron.pipeline.flush)
    if manager.notifier.tasks:
        await asyncio.wait(list(manager.notifier.tasks))


def instant(heron: Heron, expr: str, ts_ms: int) -> list[tuple[dict[str, str], float]]:
    return [(s.labels, s.value) for s in heron.query_engine.instant(expr, ts_ms / 1000).vector]


async def started(cfg: Any, scheduler: bool = False) -> Heron:
    h = Heron(cfg)
    await h.start()
    if not scheduler:  # these tests drive evaluation times by hand
        await h.rules.stop_groups()  # type: ignore[attr-defined]
    return h


async def test_evaluation_writes_back_alerts_and_notifies(tmp_path: Path) -> None:
    heron = await started(config(tmp_path))
    got: list[list[dict[str, Any]]] = []

    async def recorder(alerts: list[dict[str, Any]]) -> None:
        got.append(alerts)

    heron.alert_receivers.append(recorder)
    try:
        t0 = int(time.time() * 1000) // 1000 * 1000
        await put(heron, t0 - 500, 0)
        await evaluate(heron, t0, restore=True)
        assert instant(heron, "job:up:sum", t0) == [({"__name__": "job:up:sum", "job": "api"}, 0.0)]
        assert instant(heron, "ALERTS", t0) == []  # as Prometheus: no ALERTS before the for-state restore
        (batch,) = got
        (a,) = batch
        assert a["labels"] == {"alertname": "JobDown", "job": "api", "severity": "page", "cluster": "eu1"}
        assert a["annotations"] == {"summary": "api is down (0) in eu1"}
        assert a["generatorURL"].endswith("/graph?g0.expr=up+%3D%3D+0&g0.tab=1")
        assert a["startsAt"].endswith("Z") and a["endsAt"] > a["startsAt"]

        # resend only after the resend delay (2s); a resolved alert is sent once more, ended
        await evaluate(heron, t0 + 1000)
        assert len(got) == 1
        alerts = instant(heron, "ALERTS", t0 + 1000)
        assert alerts == [({"__name__": "ALERTS", "alertname": "JobDown", "alertstate": "firing", "job": "api",
                            "severity": "page"}, 1.0)]
        assert instant(heron, "ALERTS_FOR_STATE", t0 + 1000)[0][1] == t0 // 1000
        await evaluate(heron, t0 + 3000)
        assert len(got) == 2
        await put(heron, t0 + 3500, 1)
        await evaluate(heron, t0 + 4000)
        resolved = got[-1][0]
        assert resolved["endsAt"] == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 / 1000 + 4)) + ".000Z"
        await evaluate(heron, t0 + 5000)
        assert len(got) == 3
        # the ALERTS series went stale at once, not after five minutes
        assert instant(heron, "ALERTS", t0 + 4000) == []

        transport = httpx.ASGITransport(app=heron.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://h", headers=ADMIN) as c:
            body = (await c.get("/api/v1/rules")).json()
            (group,) = body["data"]["groups"]
            assert group["name"] == "demo" and group["interval"] == 1
            assert [r["type"] for r in group["rules"]] == ["recording", "alerting"]
            assert group["rules"][1]["state"] == "inactive" and group["rules"][1]["health"] == "ok"
            only = (await c.get("/api/v1/rules", params={"type": "record"})).json()["data"]["groups"][0]["rules"]
            assert [r["name"] for r in only] == ["job:up:sum"]
            assert (await c.get("/api/v1/rules", params={"type": "x"})).status_code == 400
            await put(heron, t0 + 5500, 0)
            await evaluate(heron, t0 + 6000)
            alerts_body = (await c.get("/api/v1/alerts")).json()
            assert alerts_body["status"] == "success"
            (item,) = alerts_body["data"]["alerts"]
            assert item["state"] == "firing" and item["value"] == "0e+00" and item["labels"]["job"] == "api"
            assert (await c.get("/api/v1/alerts", headers={"Authorization": "Bearer nope"})).status_code == 401
    finally:
        await heron.stop()


@pytest.mark.parametrize(("pause_s", "before_s", "firing_at_s"), [
    (5, 5, 15),    # pending 5s of 10s when stopped: keeps its clock, fires 10s of uptime after start
    (5, 12, 21),   # firing when stopped: firing again at the first evaluation after the restore
])
async def test_for_state_survives_restart(tmp_path: Path, pause_s: int, before_s: int, firing_at_s: int) -> None:
    cfg = config(tmp_path, for_="10s")
    db = cfg.storage.database
    t0 = int(time.time() * 1000) // 1000 * 1000 - 60_000
    heron = await started(cfg)
    try:
        await put(heron, t0 - 500, 0)
        for s in range(before_s + 1):
            await evaluate(heron, t0 + s * 1000, restore=s == 0)
    finally:
        await heron.stop()
    restart = before_s + pause_s
    heron = await started(config(tmp_path, for_="10s", database=db))
    try:
        await evaluate(heron, t0 + restart * 1000, restore=True)
        rule = heron.rules.alerting_rules()[0]  # type: ignore[attr-defined]
        (alert,) = rule.active.values()
        # Prometheus: downtime is added to the pending clock; a firing alert keeps its start
        expected_active = t0 + (pause_s * 1000 if before_s < 10 else 0)
        assert alert.active_at_ms == expected_active
        states = {}
        for s in range(restart + 1, firing_at_s + 2):
            await evaluate(heron, t0 + s * 1000)
            states[s] = alert.state
        assert states[firing_at_s - 1 if firing_at_s - 1 > restart else restart + 1] in (
            "pending", "firing") and states[firing_at_s] == "firing"
        if before_s < 10:
            assert states[firing_at_s - 1] == "pending"
        else:
            assert states[restart + 1] == "firing"
    finally:
        await heron.stop()


async def test_scheduler_runs_groups_and_reports_self_metrics(tmp_path: Path) -> None:
    heron = await started(config(tmp_path), scheduler=True)
    try:
        await put(heron, int(time.time() * 1000), 1)
        await asyncio.sleep(2.6)
        text = heron.metrics.exposition()[0].decode()
        key = f'rule_group="{tmp_path / "rules.yml"};demo"'
        iterations = [ln for ln in text.splitlines() if ln.startswith("heron_rule_group_iterations_total{") and key in ln]
        assert iterations and float(iterations[0].split()[-1]) >= 2
        assert f"heron_rule_group_last_duration_seconds{{{key}}}" in text
        assert f"heron_rule_group_iterations_missed_total{{{key}}} 0.0" in text
        await asyncio.get_running_loop().run_in_executor(None, heron.pipeline.flush)
        assert instant(heron, "job:up:sum", int(time.time() * 1000))
    finally:
        await heron.stop()


@pytest.mark.peer
@pytest.mark.skipif(not have(ALERTMANAGER), reason="prometheus-alertmanager not installed")
async def test_delivery_to_a_real_alertmanager(tmp_path: Path) -> None:
    am_cfg = {"route": {"receiver": "null", "group_wait": "1h"}, "receivers": [{"name": "null"}]}
    with AlertmanagerProcess(am_cfg) as am:
        cfg = config(tmp_path, alerting={"alertmanagers": [
            {"static_configs": [{"targets": [f"127.0.0.1:{am.port}"]}], "timeout": "5s"}]})
        heron = await started(cfg)
        try:
            t0 = int(time.time() * 1000) // 1000 * 1000 - 2_000  # firing: endsAt ahead; resolved: past
            await put(heron, t0 - 500, 0)
            await evaluate(heron, t0, restore=True)
            async with httpx.AsyncClient() as c:
                alerts = (await c.get(am.url + "/api/v2/alerts")).json()
                (a,) = alerts
                assert a["labels"] == {"alertname": "JobDown", "job": "api", "severity": "page", "cluster": "eu1"}
                assert a["status"]["state"] == "active"
                assert a["annotations"]["summary"] == "api is down (0) in eu1"
                await put(heron, t0 + 500, 1)
                await evaluate(heron, t0 + 1000)
                # resolved (endsAt in the past): Alertmanager no longer lists it as active
                everything = (await c.get(am.url + "/api/v2/alerts")).json()
                assert [x["status"]["state"] for x in everything] in ([], ["resolved"]) or all(
                    x["endsAt"].startswith(time.strftime("%Y-%m-%dT%H:%M", time.gmtime((t0 + 1000) / 1000)))
                    for x in everything)
                active = (await c.get(am.url + "/api/v2/alerts", params={"active": "true"})).json()
                assert active == []
            assert heron.rules.notifier.errors.labels(heron.rules.notifier.targets[0].url)._value.get() == 0  # type: ignore[attr-defined]
        finally:
            await heron.stop()


async def test_bad_rule_file_refuses_to_start(tmp_path: Path) -> None:
    from heron.exceptions import ConfigError

    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n- name: g\n  rules:\n  - record: x\n    expr: 'sum('\n")
    heron = Heron(make_config(tmp_path, rule_files=[str(bad)]))  # type: ignore[arg-type]
    try:
        with pytest.raises(ConfigError, match=r'bad.yml: 5:11: group "g", rule 1, "x": could not parse'):
            await heron.start()
    finally:
        await heron.stop()


async def test_reload_keeps_alert_state_and_picks_up_new_rules(tmp_path: Path) -> None:
    cfg = config(tmp_path, for_="10s")
    heron = await started(cfg)
    try:
        t0 = int(time.time() * 1000) // 1000 * 1000
        await put(heron, t0 - 500, 0)
        await evaluate(heron, t0, restore=True)
        await evaluate(heron, t0 + 1000)
        before = heron.rules.alerting_rules()[0]  # type: ignore[attr-defined]
        (alert,) = before.active.values()
        rules = tmp_path / "rules.yml"
        rules.write_text(rules.read_text() + "  - record: job:up:count\n    expr: count by (job) (up)\n")
        await heron.reload(cfg)
        manager: RuleManager = heron.rules  # type: ignore[attr-defined]
        await manager.stop_groups()
        assert [r.name for r in manager.groups[0].rules] == ["job:up:sum", "JobDown", "job:up:count"]
        after = manager.alerting_rules()[0]
        assert after is not before and next(iter(after.active.values())).active_at_ms == alert.active_at_ms
        # a broken file on reload is refused (as `heron check config` refuses it); the rules run on
        rules.write_text("groups: [\n")
        with pytest.raises(ConfigError, match=r"rules\.yml"):
            await heron.reload(cfg)
        assert len(manager.groups[0].rules) == 3
        await manager.reload(cfg)  # the rules service alone keeps its rules too
        await manager.stop_groups()
        assert len(manager.groups[0].rules) == 3
    finally:
        await heron.stop()


async def test_slow_group_counts_missed_iterations(tmp_path: Path) -> None:
    heron = await started(config(tmp_path))
    manager: RuleManager = heron.rules  # type: ignore[attr-defined]
    real = manager.evaluate

    async def slow(g: Any, ts_ms: int, restore: bool = False) -> GroupRun:
        run = await real(g, ts_ms, restore)
        await asyncio.sleep(2.3)  # a group slower than its 1s interval
        return run

    manager.evaluate = slow  # type: ignore[method-assign]
    try:
        manager._spawn(manager.groups[0])
        missed: list[float] = []
        deadline = time.monotonic() + 20  # two slow evaluations, however loaded the machine is
        while time.monotonic() < deadline and not (missed and missed[0] >= 2):
            await asyncio.sleep(0.5)
            text = heron.metrics.exposition()[0].decode()
            missed = [float(ln.split()[-1]) for ln in text.splitlines()
                      if ln.startswith("heron_rule_group_iterations_missed_total{")]
        assert missed and missed[0] >= 2
    finally:
        await heron.stop()


async def test_rule_files_added_by_a_reload(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    heron = await started(cfg)  # type: ignore[arg-type]
    try:
        assert heron.rules.groups == []  # type: ignore[attr-defined]
        rules = tmp_path / "later.yml"
        rules.write_text("groups:\n- name: later\n  rules:\n  - record: x\n    expr: vector(1)\n")
        cfg.rule_files.append(str(rules))  # type: ignore[attr-defined]
        await heron.reload(cfg)  # type: ignore[arg-type]
        assert [g.name for g in heron.rules.groups] == ["later"]  # type: ignore[attr-defined]
        await heron.rules.stop_groups()  # type: ignore[attr-defined]
    finally:
        await heron.stop()


async def test_one_write_per_group_unless_a_later_rule_reads_an_earlier_one(tmp_path: Path) -> None:
    heron = await started(config(tmp_path))
    manager: RuleManager = heron.rules  # type: ignore[attr-defined]
    writes: list[int] = []
    real_write, real_sync = heron.metrics_writer.write, heron.metrics_writer.write_sync

    async def write(series: Any, *a: Any, **k: Any) -> int:
        writes.append(len(series))
        return await real_write(series, *a, **k)

    def write_sync(series: Any, *a: Any, **k: Any) -> int:
        writes.append(len(series))
        return real_sync(series, *a, **k)

    heron.metrics_writer.write, heron.metrics_writer.write_sync = write, write_sync  # type: ignore[method-assign]
    try:
        t0 = int(time.time() * 1000) // 1000 * 1000
        await put(heron, t0 - 500, 0)
        writes.clear()
        await manager.evaluate(manager.groups[0], t0, restore=True)  # ALERTS follow the restore
        writes.clear()
        run = await manager.evaluate(manager.groups[0], t0 + 1000)
        assert (run.publishes, writes) == (0, [3])  # job:up:sum, ALERTS, ALERTS_FOR_STATE at once
        assert run.queries == 2 and run.total >= run.query + run.write
        chained = tmp_path / "rules.yml"
        chained.write_text(chained.read_text() + "  - record: job:up:sum2\n    expr: job:up:sum * 2\n")
        await manager.reload(heron.config)
        await manager.stop_groups()
        writes.clear()
        run = await manager.evaluate(manager.groups[0], t0 + 2000)
        assert run.publishes == 1 and writes == [3, 1]  # what job:up:sum2 reads first, then the rest
        await asyncio.get_running_loop().run_in_executor(None, heron.pipeline.flush)
        assert instant(heron, "job:up:sum2", t0 + 2000) == [({"__name__": "job:up:sum2", "job": "api"}, 0.0)]
    finally:
        await heron.stop()


@pytest.mark.parametrize("head_window", ["0s", "1h"])
async def test_a_later_rule_sees_an_earlier_rules_result_of_the_same_evaluation(
        tmp_path: Path, head_window: str) -> None:
    """With the head, the write is visible at once; without it (head_window 0), from storage."""
    rules = tmp_path / "chain.yml"
    rules.write_text("groups:\n- name: chain\n  rules:\n  - record: a:t\n    expr: vector(time())\n"
                     "  - record: b:t\n    expr: a:t + 1\n")
    cfg = make_config(tmp_path, rule_files=[str(rules)], storage={"head_window": head_window})  # type: ignore[arg-type]
    heron = await started(cfg)
    try:
        assert (heron.rules.engine.head is None) == (head_window == "0s")  # type: ignore[attr-defined]
        manager: RuleManager = heron.rules  # type: ignore[attr-defined]
        t0 = int(time.time() * 1000) // 1000 * 1000
        for i in range(2):
            run = await manager.evaluate(manager.groups[0], t0 + i * 1000)
            assert run.publishes == 1 and not run.errors
        await asyncio.get_running_loop().run_in_executor(None, heron.pipeline.flush)
        assert instant(heron, "b:t", t0 + 1000) == [({"__name__": "b:t"}, t0 / 1000 + 2)]
        assert instant(heron, "b:t", t0) == [({"__name__": "b:t"}, t0 / 1000 + 1)]  # even the first time
    finally:
        await heron.stop()


async def test_a_repeated_expression_runs_once_per_evaluation_until_the_group_writes(tmp_path: Path) -> None:
    rules = tmp_path / "dup.yml"
    rules.write_text("""groups:
- name: dup
  rules:
  - alert: Down
    expr: up == 0
    labels: {severity: warning}
  - alert: Down
    expr: up == 0
    for: 1h
    labels: {severity: critical}
  - record: job:down:count
    expr: count by (job) (ALERTS{alertname="Down"})
  - record: job:down:again
    expr: count by (job) (ALERTS{alertname="Down"})
""")
    heron = await started(make_config(tmp_path, rule_files=[str(rules)]))  # type: ignore[arg-type]
    try:
        manager: RuleManager = heron.rules  # type: ignore[attr-defined]
        t0 = int(time.time() * 1000) // 1000 * 1000
        await put(heron, t0 - 500, 0)
        await manager.evaluate(manager.groups[0], t0, restore=True)
        run = await manager.evaluate(manager.groups[0], t0 + 1000)
        # `up == 0` once for both alerts; ALERTS is written before the recording rules read it,
        # then their identical expression runs once more, not twice
        assert (run.queries, run.executed, run.publishes) == (4, 2, 1)
        await asyncio.get_running_loop().run_in_executor(None, heron.pipeline.flush)
        states = {(a.labels["severity"], a.state) for r in manager.alerting_rules() for a in r.active.values()}
        assert states == {("warning", "firing"), ("critical", "pending")}
        for name in ("job:down:count", "job:down:again"):
            assert instant(heron, name, t0 + 1000) == [({"__name__": name, "job": "api"}, 2.0)]
    finally:
        await heron.stop()
