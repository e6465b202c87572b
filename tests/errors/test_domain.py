"""Normalization, scrubbing, grouping, crons and the `errors:` config, without a server."""

from __future__ import annotations

import calendar
import json
import time
from pathlib import Path
from typing import Any

import pytest

from heron.config import build_config
from heron.control import ControlStore
from heron.errors.alerts import ErrorAlerts
from heron.errors.crons import Crons, next_run, parse_crontab
from heron.errors.grouping import components, group, parameterize
from heron.errors.normalize import normalize
from heron.errors.projects import Projects, parse_sentry_auth
from heron.errors.scrub import FILTERED, Scrubber, luhn
from heron.errors.settings import ErrorsSettings, load
from heron.exceptions import BadRequest, ConfigError

from .helpers import exc_event

NOW = 1_790_000_000.0


def norm(raw: dict[str, Any]) -> dict[str, Any]:
    return normalize(raw, NOW, "10.0.0.7")


def test_normalize_shapes() -> None:
    ev = norm({"event_id": "5E2C0E5A-1C66-4D0C-9F5D-6C1F4B0A2B3C", "timestamp": "2026-09-21T12:00:00Z",
               "level": "warn", "platform": "nonsense", "tags": [["a", 1], ["b", True]],
               "user": {"id": 7, "ip_address": "{{auto}}"}, "message": "hello",
               "breadcrumbs": [{"timestamp": NOW - 5, "message": "x", "level": "critical"}],
               "exception": [{"type": "E", "stacktrace": {"frames": [
                   {"filename": "node_modules/x/index.js", "function": "f"}, {"filename": "src/app.js", "function": "g"}]}}],
               "request": {"method": "post", "headers": [["Accept", "json"]], "cookies": "a=1; b=2"}})
    assert ev["event_id"] == "5e2c0e5a1c664d0c9f5d6c1f4b0a2b3c"
    assert ev["timestamp"] == calendar.timegm((2026, 9, 21, 12, 0, 0))
    assert (ev["level"], ev["platform"]) == ("warning", "other")
    assert ev["tags"] == {"a": "1", "b": "true"}
    assert ev["user"] == {"id": "7", "ip_address": "10.0.0.7"}
    assert ev["breadcrumbs"]["values"][0]["level"] == "fatal"
    assert [f["in_app"] for f in ev["exception"]["values"][0]["stacktrace"]["frames"]] == [False, True]
    assert ev["request"]["method"] == "POST" and ev["request"]["cookies"] == {"a": "1", "b": "2"}
    assert ev["title"] == "E" and ev["culprit"] == "g in src/app.js"
    # timestamps far in the future or past fall back to the receive time
    assert norm({"timestamp": NOW + 3600})["timestamp"] == NOW
    assert norm({"timestamp": NOW - 90 * 86400})["timestamp"] == NOW
    assert norm({"logentry": {"message": "user %s missing", "params": ["bob"]}})["title"] == "user bob missing"


def test_scrubbing_defaults_and_config() -> None:
    ev = norm({"exception": {"values": [{"type": "E", "value": "card 4111-1111-1111-1111 declined",
                                         "stacktrace": {"frames": [{"function": "f", "vars": {"password": "x",
                                                                                             "n": 4}}]}}]},
               "request": {"url": "https://u:pw@h/cb?code=1&access_token=abc", "query_string": "token=abc&x=1",
                           "headers": {"Authorization": "Basic abc", "X-Api-Key": "k", "Accept": "*/*"},
                           "cookies": {"sessionid": "s"}, "data": {"user": {"new_password": "p"}, "q": "ok"}},
               "extra": {"msg": "call with Bearer abcdefghijkl please", "nested": [{"secret": "s"}]},
               "tags": {"api_token": "t", "shard": "3"}, "user": {"id": "1", "ip_address": "1.2.3.4"}})
    Scrubber().event(ev)
    assert ev["exception"]["values"][0]["value"] == f"card {FILTERED} declined"
    assert ev["exception"]["values"][0]["stacktrace"]["frames"][0]["vars"] == {"password": FILTERED, "n": 4}
    r = ev["request"]
    assert r["url"] == f"https://u:{FILTERED}@h/cb?code=1&access_token={FILTERED}"
    assert r["query_string"] == f"token={FILTERED}&x=1"
    assert r["headers"] == {"Authorization": FILTERED, "X-Api-Key": FILTERED, "Accept": "*/*"}
    assert r["cookies"] == {"sessionid": FILTERED} and r["data"] == {"user": {"new_password": FILTERED}, "q": "ok"}
    assert ev["extra"] == {"msg": f"call with Bearer {FILTERED} please", "nested": [{"secret": FILTERED}]}
    assert ev["tags"] == {"api_token": FILTERED, "shard": "3"} and ev["user"]["ip_address"] == "1.2.3.4"
    assert luhn("4111111111111111") and not luhn("4111111111111112")
    # configurable: extra fields, safe fields, IPs, or off
    cfg = build_config({"errors": {"scrubbing": {"fields": ["ssn_like"], "safe_fields": ["api_token"],
                                                 "scrub_ip_addresses": True}}}, environ={})
    s = load(cfg).scrubber
    ev2 = norm({"tags": {"api_token": "t"}, "extra": {"my_ssn_like": "1"}, "user": {"ip_address": "1.2.3.4"}})
    s.event(ev2)
    assert ev2["tags"] == {"api_token": "t"} and ev2["extra"] == {"my_ssn_like": FILTERED}
    assert ev2["user"]["ip_address"] == FILTERED
    off = load(build_config({"errors": {"scrubbing": {"enabled": False}}}, environ={})).scrubber
    ev3 = norm({"extra": {"password": "p"}})
    assert off.event(ev3)["extra"] == {"password": "p"}


def test_grouping_rules() -> None:
    a = norm(exc_event("ValueError", "order 12 failed"))
    b = norm(exc_event("ValueError", "order 99 failed"))
    assert group(1, a) == group(1, b) != group(2, a)  # value ignored with frames; project scoped
    assert group(1, a) != group(1, norm(exc_event("ValueError", "x", func="other")))
    assert group(1, a) != group(1, norm(exc_event("KeyError", "x")))
    # line numbers and library frames do not matter
    moved = exc_event("ValueError")
    moved["exception"]["values"][0]["stacktrace"]["frames"][1]["lineno"] = 99
    moved["exception"]["values"][0]["stacktrace"]["frames"][0]["function"] = "changed_in_lib"
    assert group(1, norm(moved)) == group(1, a)
    # chained exceptions: a cause makes a different issue
    chained = exc_event("ValueError")
    chained["exception"]["values"].insert(0, {"type": "KeyError", "value": "'k'"})
    assert group(1, norm(chained)) != group(1, a)
    # messages: parameters removed; templates win
    m1, m2 = norm({"message": "user 42 not found in 10.1.2.3"}), norm({"message": "user 7 not found in 10.9.9.9"})
    assert group(1, m1) == group(1, m2)
    assert parameterize("took 3.5s for 0xdeadbeef id 9f1c2e4a-1111-2222-3333-444455556666") == \
        "took <int>s for <hex> id <uuid>"
    t1 = norm({"logentry": {"message": "payment %s failed", "params": ["a"]}})
    t2 = norm({"logentry": {"message": "payment %s failed", "params": ["b"]}})
    assert group(1, t1) == group(1, t2)
    # custom fingerprints
    f1 = norm(exc_event("ValueError", fingerprint=["db-down"]))
    f2 = norm(exc_event("KeyError", func="zzz", fingerprint=["db-down"]))
    assert group(1, f1) == group(1, f2)
    d1 = norm(exc_event("ValueError", fingerprint=["{{ default }}", "tenant-a"]))
    d2 = norm(exc_event("ValueError", fingerprint=["{{ default }}", "tenant-b"]))
    assert group(1, d1) != group(1, d2)
    assert components(d1)[:-1] == components(a)
    t = norm(exc_event("ValueError", fingerprint=["{{ type }}", "{{ transaction }}"], transaction="/a"))
    assert components(t) == ["type:ValueError", "transaction:/a"]


def test_sentry_auth_header() -> None:
    assert parse_sentry_auth('Sentry sentry_key=abc, sentry_version=7, sentry_client="x/1"') == \
        {"sentry_key": "abc", "sentry_version": "7", "sentry_client": "x/1"}


def test_crontab_and_next_run() -> None:
    assert parse_crontab("*/15 9-17 * * 1-5")[0] == {0, 15, 30, 45}
    assert parse_crontab("@daily")[1] == {0}
    for bad in ("* * *", "61 * * * *", "*/0 * * * *"):
        with pytest.raises(BadRequest):
            parse_crontab(bad)
    t = calendar.timegm((2026, 11, 26, 10, 7, 30))
    assert next_run("crontab", "*/15 * * * *", t) == calendar.timegm((2026, 11, 26, 10, 15, 0))
    assert next_run("crontab", "0 3 * * *", t) == calendar.timegm((2026, 11, 27, 3, 0, 0))
    assert next_run("interval", "2 hour", t) == t + 7200


async def test_missed_and_failed_check_ins(tmp_path: Path) -> None:
    control = ControlStore(tmp_path / "c.db")
    projects = Projects(control)
    project, _ = projects.create("jobs")
    got: list[dict[str, Any]] = []

    async def receiver(alerts: list[dict[str, Any]]) -> None:
        got.extend(alerts)

    crons = Crons(control, ErrorAlerts([receiver], ErrorsSettings(), "http://heron"))
    now = time.time()
    cfg = {"schedule": {"type": "interval", "value": 10, "unit": "minute"}, "checkin_margin": 2}
    crons.check_in(project.id, "jobs", {"monitor_slug": "etl", "status": "ok", "monitor_config": cfg}, now)
    assert crons.tick(now + 11 * 60) == []          # within the 2-minute margin
    assert crons.tick(now + 13 * 60) == ["etl"]     # overdue: missed, once
    assert crons.tick(now + 14 * 60) == []
    crons.check_in(project.id, "jobs", {"monitor_slug": "etl", "status": "ok"}, now + 15 * 60)
    crons.check_in(project.id, "jobs", {"monitor_slug": "etl", "status": "error", "check_in_id": "c1"}, now + 16 * 60)
    import asyncio

    await asyncio.sleep(0.05)
    names = [(a["labels"]["alertname"], a["endsAt"] is None) for a in got]
    assert names == [("CronMissed", True), ("CronMissed", False), ("CronFailed", True)]
    assert got[0]["labels"]["monitor"] == "etl" and got[0]["labels"]["project"] == "jobs"
    # a run that never finishes times out
    crons.check_in(project.id, "jobs", {"monitor_slug": "long", "status": "in_progress", "check_in_id": "r1",
                                        "monitor_config": {**cfg, "max_runtime": 1}}, now)
    assert crons.tick(now + 90) == ["long"]
    with pytest.raises(BadRequest, match="monitor_slug"):
        crons.check_in(project.id, "jobs", {"status": "ok"}, now)
    with pytest.raises(BadRequest, match="5 fields"):
        crons.check_in(project.id, "jobs", {"monitor_slug": "x", "status": "ok",
                                            "monitor_config": {"schedule": {"type": "crontab", "value": "* *"}}}, now)
    control.close()


@pytest.mark.parametrize(("section", "field", "msg"), [
    ({"rate_limt": 5}, "errors.rate_limt", "unknown field"),
    ({"rate_limit": -1}, "errors.rate_limit", "non-negative integer"),
    ({"attachments_max_bytes": "lots"}, "errors.attachments_max_bytes", "not a valid size"),
    ({"alerts": {"spike": [{"events": 0, "minutes": 5}]}}, "errors.alerts.spike.0", "needs events"),
    ({"alerts": {"new_issue": "yes"}}, "errors.alerts.new_issue", "true or false"),
    ({"scrubbing": {"fields": "password"}}, "errors.scrubbing.fields", "must be a list"),
    ({"scrubbing": {"fields": ["ssn", ""]}}, "errors.scrubbing.fields", "non-empty strings"),
    ({"scrubbing": {"safe_fields": [5]}}, "errors.scrubbing.safe_fields", "non-empty strings"),
    ({"queue": {"batch": 0}}, "errors.queue.batch", "from 1 to 100000"),
    ({"queue": {"workers": "many"}}, "errors.queue.workers", "auto or an integer"),
    ({"queue": {"flush_interval": "soon"}}, "errors.queue.flush_interval", ""),
    ({"queue": {"size": 1}}, "errors.queue.size", "unknown field"),
])
def test_config_errors(tmp_path: Path, section: dict[str, Any], field: str, msg: str) -> None:
    import yaml

    from heron.config import load_config

    path = tmp_path / "heron.yml"
    path.write_text(yaml.safe_dump({"server": {"listen": "127.0.0.1:9999"}, "errors": section}))
    with pytest.raises(ConfigError) as err:
        load(load_config(str(path), environ={}))
    assert err.value.field == field and msg in str(err.value) and f"{path}:" in str(err.value)


def test_ignore_until_a_date_expires(tmp_path: Path) -> None:
    from heron.errors.issues import IssueStore

    control = ControlStore(tmp_path / "c.db")
    project, _ = Projects(control).create("web")
    issues = IssueStore(control)
    ev = norm(exc_event())
    ev["timestamp"] = time.time()
    [change] = issues.record(project.id, [(group(project.id, ev), ev)])
    assert change.kind == "new"
    row = issues.set_status(change.issue_id, "ignored", {"ignoreDuration": 30})
    until = time.time() + 1800
    assert row["status"] == "ignored" and abs(json.loads(row["status_details"])["ignoreUntil"] - until) < 5
    assert issues.expire_ignores(time.time()) == 0
    assert issues.expire_ignores(until + 1) == 1
    assert issues.get(change.issue_id)["status"] == "unresolved"  # type: ignore[index]
    with pytest.raises(BadRequest, match="ignoreUntil"):
        issues.set_status(change.issue_id, "ignored", {"ignoreUntil": "next tuesday"})
    control.close()


def test_heron_check_config_validates_errors_section(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "heron.yml"
    bad.write_text("errors:\n  alerts:\n    spike:\n      - {events: 0, minutes: 5}\n")
    out = subprocess.run([sys.executable, "-m", "heron", "check", "config", str(bad)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1
    assert f"{bad}:4: errors.alerts.spike.0: needs events (> 0) and minutes (> 0)" in out.stderr
