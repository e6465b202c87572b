"""Each receiver against a local recording server: the exact JSON (or mail) it sends."""

from __future__ import annotations

import json
from typing import Any

import pytest

from heron.alerting.config import parse_config
from heron.alerting.model import Alert
from heron.alerting.service import Alerting
from heron.control import ControlStore
from heron.notify import Notification, group_key_hash
from tests.notify.recorder import Recorder

T0 = 1_700_000_000.0
GROUP_KEY = '{}:{alertname="DiskFull"}'
FIRING_TEXT = ("Labels:\n - alertname = DiskFull\n - instance = db1\n - job = node\nAnnotations:\n"
               " - summary = disk is full\nSource: http://prom/graph\n")


def alerting(receiver: dict[str, Any], global_: dict[str, Any] | None = None) -> Alerting:
    cfg = parse_config({"global": global_ or {}, "route": {"receiver": receiver["name"]}, "receivers": [receiver]})
    return Alerting(cfg, ControlStore(":memory:"), external_url="http://heron.example:9090")


def notification(status: str = "firing") -> Notification:
    ends = T0 + 60 if status == "resolved" else 0.0
    a = Alert({"alertname": "DiskFull", "instance": "db1", "job": "node"}, {"summary": "disk is full"},
              T0, ends, "http://prom/graph", T0)
    return Notification("team-db", status, [a], {"alertname": "DiskFull"}, dict(a.labels), dict(a.annotations),
                        "http://heron.example:9090", GROUP_KEY, T0 + 120)


async def send(am: Alerting, n: Notification) -> None:
    rt = next(iter(am.integrations.values()))[0]
    try:
        await rt.notifier.notify(n)
    finally:
        await am.stop()


async def test_webhook_payload_v4() -> None:
    with Recorder() as rec:
        am = alerting({"name": "team-db", "webhook_configs": [{"url": rec.url + "/hook", "max_alerts": 0}]})
        await send(am, notification())
        body = rec.json()[0]
        assert rec.requests[0]["path"] == "/hook"
    assert body == {
        "receiver": "team-db", "status": "firing", "groupLabels": {"alertname": "DiskFull"},
        "alerts": [{"status": "firing", "labels": {"alertname": "DiskFull", "instance": "db1", "job": "node"},
                    "annotations": {"summary": "disk is full"}, "startsAt": "2023-11-14T22:13:20Z",
                    "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph",
                    "fingerprint": Alert({"alertname": "DiskFull", "instance": "db1", "job": "node"}).fingerprint_hex}],
        "commonLabels": {"alertname": "DiskFull", "instance": "db1", "job": "node"},
        "commonAnnotations": {"summary": "disk is full"}, "externalURL": "http://heron.example:9090",
        "version": "4", "groupKey": GROUP_KEY, "truncatedAlerts": 0}


async def test_slack_incoming_webhook() -> None:
    with Recorder(reply=b"ok", content_type="text/plain") as rec:
        am = alerting({"name": "team-db", "slack_configs": [{"api_url": rec.url + "/services/T/B/X",
                                                              "channel": "#ops", "send_resolved": True}]})
        await send(am, notification())
        body = rec.json()[0]
    assert body == {"channel": "#ops", "username": "Alertmanager", "attachments": [{
        "title": "[FIRING:1] DiskFull (db1 node)",
        "title_link": "http://heron.example:9090/#/alerts?receiver=team-db",
        "text": "", "fallback": "[FIRING:1] DiskFull (db1 node) | http://heron.example:9090/#/alerts?receiver=team-db",
        "callback_id": "", "footer": "", "color": "danger", "mrkdwn_in": ["fallback", "pretext", "text"]}]}


async def test_slack_chat_post_message_with_app_token_and_custom_template() -> None:
    with Recorder(reply=b'{"ok": true}') as rec:
        am = alerting({"name": "team-db", "slack_configs": [{
            "app_token": "xoxb-secret", "app_url": rec.url + "/api/chat.postMessage", "channel": "#db",
            "text": "{{ range .Alerts }}{{ .Labels.instance }}: {{ .Annotations.summary }}{{ end }}",
            "fields": [{"title": "severity", "value": "{{ .CommonLabels.job }}", "short": True}]}]})
        await send(am, notification())
        req = rec.requests[0]
    assert req["path"] == "/api/chat.postMessage"
    assert req["headers"]["Authorization"] == "Bearer xoxb-secret"
    att = json.loads(req["body"])["attachments"][0]
    assert att["text"] == "db1: disk is full"
    assert att["fields"] == [{"title": "severity", "value": "node", "short": True}]


async def test_slack_error_reply_is_reported() -> None:
    from heron.notify import NotifyError

    with Recorder(reply=b'{"ok": false, "error": "channel_not_found"}') as rec:
        am = alerting({"name": "team-db", "slack_configs": [{"app_token": "x", "app_url": rec.url}]})
        with pytest.raises(NotifyError, match="channel_not_found") as info:
            await send(am, notification())
        assert info.value.retry is False


@pytest.mark.parametrize("status", ["firing", "resolved"])
async def test_pagerduty_events_v2(status: str) -> None:
    with Recorder(status=202) as rec:
        am = alerting({"name": "team-db", "pagerduty_configs": [{"routing_key": "rk-123", "url": rec.url + "/v2/enqueue",
                                                                 "severity": "critical", "component": "db"}]})
        await send(am, notification(status))
        body = rec.json()[0]
    firing_list = FIRING_TEXT if status == "firing" else ""
    resolved_list = FIRING_TEXT if status == "resolved" else ""
    subject = "[FIRING:1] DiskFull (db1 node)" if status == "firing" else "[RESOLVED] DiskFull (db1 node)"
    assert body == {
        "routing_key": "rk-123", "dedup_key": group_key_hash(GROUP_KEY),
        "event_action": "trigger" if status == "firing" else "resolve",
        "payload": {"summary": subject, "source": "Alertmanager", "severity": "critical", "component": "db",
                    "custom_details": {"firing": firing_list, "resolved": resolved_list,
                                       "num_firing": "1" if status == "firing" else "0",
                                       "num_resolved": "0" if status == "firing" else "1"}},
        "client": "Alertmanager", "client_url": "http://heron.example:9090/#/alerts?receiver=team-db"}


async def test_msteams_message_card() -> None:
    with Recorder() as rec:
        am = alerting({"name": "team-db", "msteams_configs": [{"webhook_url": rec.url + "/teams"}]})
        await send(am, notification())
        body = rec.json()[0]
    assert body == {"@context": "http://schema.org/extensions", "type": "MessageCard",
                    "title": "[FIRING:1] DiskFull (db1 node)", "summary": "[FIRING:1] DiskFull (db1 node)",
                    "text": "\n\n# Alerts Firing:\n\nLabels:\n  - alertname = DiskFull\n  - instance = db1\n"
                            "  - job = node\n\nAnnotations:\n  - summary = disk is full\n\nSource: "
                            "http://prom/graph\n\n\n\n\n",
                    "themeColor": "8C1A1A"}


@pytest.mark.parametrize("status", ["firing", "resolved"])
async def test_opsgenie_create_and_close(status: str) -> None:
    with Recorder(status=202) as rec:
        am = alerting({"name": "team-db", "opsgenie_configs": [{
            "api_key": "genie-secret", "api_url": rec.url + "/", "tags": "db, prod", "priority": "P2",
            "responders": [{"name": "dba", "type": "team"}]}]})
        await send(am, notification(status))
        req = rec.requests[0]
    assert req["headers"]["Authorization"] == "GenieKey genie-secret"
    alias = group_key_hash(GROUP_KEY)
    body = json.loads(req["body"])
    if status == "resolved":
        assert req["path"] == f"/v2/alerts/{alias}/close?identifierType=alias"
        assert body == {"source": "http://heron.example:9090/#/alerts?receiver=team-db"}
        return
    assert req["path"] == "/v2/alerts"
    assert body == {"alias": alias, "message": "[FIRING:1] DiskFull (db1 node)",
                    "description": "disk is full\nAlerts Firing:\n" + FIRING_TEXT + "\n", "details": {},
                    "source": "http://heron.example:9090/#/alerts?receiver=team-db",
                    "responders": [{"name": "dba", "type": "team"}], "tags": ["db", "prod"], "priority": "P2"}


async def test_telegram_send_message_html_escaped() -> None:
    with Recorder(reply=b'{"ok": true}') as rec:
        am = alerting({"name": "team-db", "telegram_configs": [{
            "bot_token": "123:secret", "chat_id": -1001, "api_url": rec.url,
            "message": "<b>{{ .CommonAnnotations.summary }}</b> {{ .CommonLabels.instance }} & <x>"}]})
        n = notification()
        n.common_annotations = {"summary": "a<b>&c"}
        await send(am, n)
        req = rec.requests[0]
    assert req["path"] == "/bot123:secret/sendMessage"
    assert json.loads(req["body"]) == {"chat_id": -1001, "parse_mode": "HTML",
                                       "text": "<b>a&lt;b&gt;&amp;c</b> db1 & <x>"}


async def test_secrets_never_in_errors() -> None:
    """A failing receiver's error message never carries its token or secret URL."""
    from heron.notify import NotifyError

    with Recorder(status=500, reply=b"boom") as rec:
        for receiver in ({"name": "team-db", "webhook_configs": [{"url": rec.url + "/hook/SECRETPATH?token=SECRET"}]},
                         {"name": "team-db", "slack_configs": [{"api_url": rec.url + "/services/SECRET"}]},
                         {"name": "team-db", "telegram_configs": [{"bot_token": "SECRET", "chat_id": 1,
                                                                   "api_url": rec.url}]},
                         {"name": "team-db", "opsgenie_configs": [{"api_key": "SECRET", "api_url": rec.url}]}):
            am = alerting(receiver)
            with pytest.raises(NotifyError) as info:
                await send(am, notification())
            assert "SECRET" not in str(info.value) and info.value.retry is True


async def test_http_config_basic_auth_and_bearer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "pw").write_text("hunter2\n")
    with Recorder() as rec:
        am = alerting({"name": "team-db", "webhook_configs": [
            {"url": rec.url, "http_config": {"basic_auth": {"username": "u", "password_file": str(tmp_path / "pw")}}},
            {"url": rec.url, "http_config": {"authorization": {"type": "Bearer", "credentials": "tok"}}}]})
        try:
            for rt in am.integrations["team-db"]:
                await rt.notifier.notify(notification())
        finally:
            await am.stop()
        auths = [r["headers"]["Authorization"] for r in rec.requests]
    import base64

    assert auths == ["Basic " + base64.b64encode(b"u:hunter2").decode(), "Bearer tok"]
