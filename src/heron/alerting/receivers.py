"""Receiver integration settings: known fields per kind, global defaults, required values.

Mirrors the checks Alertmanager's config loader makes (and its messages), so an
`alertmanager.yml` is accepted or rejected the same way. Validation only; sending lives in
`heron.notify`.
"""

from __future__ import annotations

from typing import Any

from heron.tls import tls_problem

COMMON = {"send_resolved", "http_config"}

FIELDS: dict[str, set[str]] = {
    "webhook": {"url", "url_file", "max_alerts", "timeout"},
    "email": {"to", "from", "smarthost", "hello", "auth_username", "auth_password", "auth_password_file",
              "auth_secret", "auth_secret_file", "auth_identity", "require_tls", "tls_config", "html",
              "text", "headers", "threading"},
    "pagerduty": {"routing_key", "routing_key_file", "service_key", "service_key_file", "url", "client",
                  "client_url", "description", "details", "images", "links", "source", "severity",
                  "class", "component", "group", "timeout"},
    "slack": {"api_url", "api_url_file", "app_token", "app_token_file", "app_url", "channel", "username",
              "color", "title", "title_link", "pretext", "text", "fields", "short_fields", "footer",
              "fallback", "callback_id", "icon_emoji", "icon_url", "image_url", "thumb_url",
              "link_names", "mrkdwn_in", "actions", "update_message", "timeout", "message_text"},
    "opsgenie": {"api_key", "api_key_file", "api_url", "message", "description", "source", "details",
                 "entity", "responders", "actions", "tags", "note", "priority", "update_alerts"},
    "victorops": {"api_key", "api_key_file", "api_url", "routing_key", "message_type", "state_message",
                  "entity_display_name", "monitoring_tool", "custom_fields"},
    "pushover": {"user_key", "user_key_file", "token", "token_file", "title", "message", "url",
                 "url_title", "device", "sound", "priority", "retry", "expire", "ttl", "html", "monospace"},
    "wechat": {"api_secret", "api_secret_file", "corp_id", "message", "api_url", "to_user", "to_party",
               "to_tag", "agent_id", "message_type"},
    "telegram": {"api_url", "bot_token", "bot_token_file", "chat_id", "chat_id_file", "message_thread_id",
                 "message", "disable_notifications", "parse_mode"},
    "msteams": {"webhook_url", "webhook_url_file", "title", "summary", "text"},
    "msteamsv2": {"webhook_url", "webhook_url_file", "title", "text"},
    "sns": {"api_url", "sigv4", "topic_arn", "phone_number", "target_arn", "subject", "message",
            "attributes"},
    "webex": {"api_url", "room_id", "message"},
    "discord": {"webhook_url", "webhook_url_file", "title", "message", "content", "username", "avatar_url"},
}
# Newer Alertmanager kinds Heron validates but does not send to (yet): any fields accepted.
LOOSE = {"mattermost", "rocketchat", "jira", "incidentio"}
KINDS = set(FIELDS) | LOOSE
SENDABLE = {"webhook", "email", "pagerduty", "slack", "opsgenie", "telegram", "msteams", "msteamsv2"}

GLOBAL_DEFAULTS: dict[str, Any] = {
    "resolve_timeout": "5m",
    "smtp_hello": "localhost",
    "smtp_require_tls": True,
    "pagerduty_url": "https://events.pagerduty.com/v2/enqueue",
    "opsgenie_api_url": "https://api.opsgenie.com/",
    "wechat_api_url": "https://qyapi.weixin.qq.com/cgi-bin/",
    "victorops_api_url": "https://alert.victorops.com/integrations/generic/20131114/alert/",
    "telegram_api_url": "https://api.telegram.org",
    "webex_api_url": "https://webexapis.com/v1/messages",
    "slack_app_url": "https://slack.com/api/chat.postMessage",
}
GLOBAL_FIELDS = set(GLOBAL_DEFAULTS) | {
    "http_config", "smtp_from", "smtp_smarthost", "smtp_auth_username", "smtp_auth_password",
    "smtp_auth_password_file", "smtp_auth_secret", "smtp_auth_secret_file", "smtp_auth_identity",
    "smtp_tls_config", "slack_api_url", "slack_api_url_file", "slack_app_token", "slack_app_token_file",
    "victorops_api_key", "victorops_api_key_file", "opsgenie_api_key", "opsgenie_api_key_file",
    "wechat_api_secret", "wechat_api_secret_file", "wechat_api_corp_id", "telegram_bot_token",
    "telegram_bot_token_file", "jira_api_url", "rocketchat_api_url", "rocketchat_token",
    "rocketchat_token_file", "rocketchat_token_id", "rocketchat_token_id_file", "mattermost_webhook_url",
    "mattermost_webhook_url_file", "incidentio_url",
}
# Pairs of global fields of which at most one may be set (checked first, like Alertmanager).
GLOBAL_EXCLUSIVE = [
    ("smtp_auth_password", "smtp_auth_password_file"), ("slack_api_url", "slack_api_url_file"),
    ("slack_app_token", "slack_app_token_file"), ("opsgenie_api_key", "opsgenie_api_key_file"),
    ("victorops_api_key", "victorops_api_key_file"), ("wechat_api_secret", "wechat_api_secret_file"),
    ("telegram_bot_token", "telegram_bot_token_file"),
    ("mattermost_webhook_url", "mattermost_webhook_url_file"),
    ("rocketchat_token", "rocketchat_token_file"), ("rocketchat_token_id", "rocketchat_token_id_file"),
]
DEFAULT_SEND_RESOLVED = {"webhook": True, "email": False, "pagerduty": True, "slack": False,
                         "opsgenie": True, "victorops": True, "pushover": True, "wechat": False,
                         "telegram": True, "msteams": True, "msteamsv2": True, "sns": True,
                         "webex": True, "discord": True, "mattermost": True, "rocketchat": False,
                         "jira": True, "incidentio": True}
HTTP_FIELDS = {"basic_auth", "authorization", "bearer_token", "bearer_token_file", "oauth2", "tls_config",
               "proxy_url", "no_proxy", "proxy_from_environment", "proxy_connect_header",
               "follow_redirects", "enable_http2", "http_headers"}
# Keys whose values are never shown (status API, logs, errors).
SECRET_KEYS = {"smtp_auth_password", "smtp_auth_secret", "auth_password", "auth_secret", "api_key",
               "service_key", "routing_key", "bot_token", "token", "token_id", "user_key", "api_secret",
               "credentials", "password", "bearer_token", "app_token", "slack_api_url", "api_url",
               "opsgenie_api_key", "victorops_api_key", "wechat_api_secret", "telegram_bot_token",
               "slack_app_token", "rocketchat_token", "rocketchat_token_id", "mattermost_webhook_url",
               "webhook_url", "url", "client_secret", "secret_key", "access_key"}


class ReceiverError(ValueError):
    """A receiver integration is invalid; `field` names the offending key when known."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _one_of(cfg: dict[str, Any], a: str, b: str, label_a: str | None = None, label_b: str | None = None) -> None:
    if cfg.get(a) and cfg.get(b):
        raise ReceiverError(f"at most one of {label_a or a} & {label_b or b} must be configured", b)


def check_global(g: dict[str, Any]) -> None:
    for key in g:
        if key not in GLOBAL_FIELDS:
            raise ReceiverError(f"yaml unmarshal error: unknown field `{key}` in global", key)
    for a, b in GLOBAL_EXCLUSIVE:
        _one_of(g, a, b)
    if (g.get("slack_app_token") or g.get("slack_app_token_file")) and (
            g.get("slack_api_url") or g.get("slack_api_url_file")) and g.get("slack_api_url") != \
            "https://slack.com/api/chat.postMessage":
        raise ReceiverError("at most one of slack_app_token/slack_app_token_file & "
                            "slack_api_url/slack_api_url_file must be configured")
    if g.get("http_config") is not None:
        check_http_config(g["http_config"])


def check_http_config(h: Any) -> None:
    if not isinstance(h, dict):
        raise ReceiverError("http_config must be a mapping", "http_config")
    for key in h:
        if key not in HTTP_FIELDS:
            raise ReceiverError(f"yaml unmarshal error: unknown field `{key}` in http_config", key)
    auths = [k for k in ("basic_auth", "authorization", "bearer_token", "bearer_token_file", "oauth2")
             if h.get(k)]
    if len([a for a in auths if a not in ("bearer_token", "bearer_token_file")]) > 1 or (
            {"bearer_token", "bearer_token_file"} & set(auths) and len(auths) > 1 and
            not set(auths) <= {"bearer_token", "bearer_token_file"}):
        raise ReceiverError("at most one of basic_auth, oauth2, bearer_token & bearer_token_file, "
                            "authorization must be configured", "http_config")
    tls = h.get("tls_config")
    if tls is not None:
        if not isinstance(tls, dict):
            raise ReceiverError("tls_config must be a mapping", "tls_config")
        bad = tls_problem(tls)
        if bad:
            raise ReceiverError(bad[1], f"tls_config.{bad[0]}")
    ba = h.get("basic_auth")
    if isinstance(ba, dict) and ba.get("password") and ba.get("password_file"):
        raise ReceiverError("at most one of basic_auth password & password_file must be configured",
                            "basic_auth")


def check_integration(kind: str, cfg: dict[str, Any], g: dict[str, Any]) -> dict[str, Any]:
    """Validate one `<kind>_configs` entry; returns it with global defaults filled in."""
    if not isinstance(cfg, dict):
        raise ReceiverError(f"{kind}_configs entries must be mappings")
    if kind not in LOOSE:
        for key in cfg:
            if key not in FIELDS[kind] | COMMON:
                raise ReceiverError(f"yaml unmarshal error: unknown field `{key}` in {kind}_config", key)
    out = dict(cfg)
    out.setdefault("send_resolved", DEFAULT_SEND_RESOLVED.get(kind, True))
    if out.get("http_config") is not None:
        check_http_config(out["http_config"])
    else:
        out["http_config"] = g.get("http_config") or {}
    fn = _CHECKS.get(kind)
    if fn:
        fn(out, g)
    return out


def _webhook(c: dict[str, Any], g: dict[str, Any]) -> None:
    _one_of(c, "url", "url_file")
    if not c.get("url") and not c.get("url_file"):
        raise ReceiverError("one of url or url_file must be configured", "url")
    if c.get("max_alerts") is not None and (not isinstance(c["max_alerts"], int) or c["max_alerts"] < 0):
        raise ReceiverError("max_alerts must be a non-negative integer", "max_alerts")


def _email(c: dict[str, Any], g: dict[str, Any]) -> None:
    if not c.get("to"):
        raise ReceiverError("missing to address in email config", "to")
    _one_of(c, "auth_password", "auth_password_file")
    for local, glob in (("smarthost", "smtp_smarthost"), ("from", "smtp_from"), ("hello", "smtp_hello"),
                        ("require_tls", "smtp_require_tls"), ("tls_config", "smtp_tls_config")):
        if c.get(local) is None and g.get(glob) is not None:
            c[local] = g[glob]
    if not c.get("smarthost"):
        raise ReceiverError("no global SMTP smarthost set", "smarthost")
    if not c.get("from"):
        raise ReceiverError("no global mail from address set", "from")
    if not c.get("auth_username") and not c.get("auth_password") and not c.get("auth_password_file"):
        for local, glob in (("auth_username", "smtp_auth_username"), ("auth_password", "smtp_auth_password"),
                            ("auth_password_file", "smtp_auth_password_file"),
                            ("auth_secret", "smtp_auth_secret"), ("auth_identity", "smtp_auth_identity")):
            if g.get(glob):
                c[local] = g[glob]
    c["headers"] = {str(k).title(): v for k, v in (c.get("headers") or {}).items()}


def _pagerduty(c: dict[str, Any], g: dict[str, Any]) -> None:
    _one_of(c, "routing_key", "routing_key_file")
    _one_of(c, "service_key", "service_key_file")
    if not any(c.get(k) for k in ("routing_key", "routing_key_file", "service_key", "service_key_file")):
        raise ReceiverError("missing service or routing key in PagerDuty config", "routing_key")
    c.setdefault("url", g.get("pagerduty_url"))
    c.setdefault("severity", "error")
    c.setdefault("client", '{{ template "pagerduty.default.client" . }}')
    c.setdefault("client_url", '{{ template "pagerduty.default.clientURL" . }}')
    c.setdefault("description", '{{ template "pagerduty.default.description" .}}')
    c.setdefault("class", "")
    c.setdefault("component", "")
    c.setdefault("group", "")


def _slack(c: dict[str, Any], g: dict[str, Any]) -> None:
    _one_of(c, "api_url", "api_url_file")
    _one_of(c, "app_token", "app_token_file")
    has_url = c.get("api_url") or c.get("api_url_file")
    has_tok = c.get("app_token") or c.get("app_token_file")
    if has_url and has_tok:
        raise ReceiverError("at most one of app_token/app_token_file & api_url/api_url_file must be configured")
    if not has_url and not has_tok:
        if g.get("slack_app_token") or g.get("slack_app_token_file"):
            c["app_token"] = g.get("slack_app_token")
            c["app_token_file"] = g.get("slack_app_token_file")
            c.setdefault("app_url", g.get("slack_app_url"))
        elif g.get("slack_api_url") or g.get("slack_api_url_file"):
            c["api_url"] = g.get("slack_api_url")
            c["api_url_file"] = g.get("slack_api_url_file")
        elif not (c.get("http_config") or {}).get("authorization"):
            raise ReceiverError("no Slack API URL nor App token set either inline or in a file", "api_url")
    elif has_tok:
        c.setdefault("app_url", g.get("slack_app_url"))
    if c.get("update_message") and c.get("api_url") and \
            c["api_url"] != "https://slack.com/api/chat.postMessage":
        raise ReceiverError("update_message can only be used with bot tokens. api_url must be set to "
                            "https://slack.com/api/chat.postMessage", "update_message")
    for key, val in {"username": '{{ template "slack.default.username" . }}', "color":
                     '{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}',
                     "title": '{{ template "slack.default.title" . }}',
                     "title_link": '{{ template "slack.default.titlelink" . }}',
                     "pretext": '{{ template "slack.default.pretext" . }}',
                     "text": '{{ template "slack.default.text" . }}',
                     "fallback": '{{ template "slack.default.fallback" . }}',
                     "callback_id": '{{ template "slack.default.callbackid" . }}',
                     "icon_emoji": '{{ template "slack.default.iconemoji" . }}',
                     "icon_url": '{{ template "slack.default.iconurl" . }}',
                     "footer": '{{ template "slack.default.footer" . }}'}.items():
        c.setdefault(key, val)
    c.setdefault("link_names", False)


def _opsgenie(c: dict[str, Any], g: dict[str, Any]) -> None:
    _one_of(c, "api_key", "api_key_file")
    if not c.get("api_key") and not c.get("api_key_file"):
        if not g.get("opsgenie_api_key") and not g.get("opsgenie_api_key_file"):
            raise ReceiverError("no global OpsGenie API Key set either inline or in a file", "api_key")
        c["api_key"], c["api_key_file"] = g.get("opsgenie_api_key"), g.get("opsgenie_api_key_file")
    c.setdefault("api_url", g.get("opsgenie_api_url"))
    for r in c.get("responders") or []:
        if not isinstance(r, dict) or not (r.get("id") or r.get("name") or r.get("username")):
            raise ReceiverError("opsGenieConfig responder must have at least an id, a name or a username "
                                "defined", "responders")
        if r.get("type") not in ("team", "teams", "user", "escalation", "schedule") and \
                "{{" not in str(r.get("type", "")):
            raise ReceiverError(f"opsGenieConfig responder {r.get('type')!r} type is not supported",
                                "responders")
    c.setdefault("message", '{{ template "opsgenie.default.message" . }}')
    c.setdefault("description", '{{ template "opsgenie.default.description" . }}')
    c.setdefault("source", '{{ template "opsgenie.default.source" . }}')


def _victorops(c: dict[str, Any], g: dict[str, Any]) -> None:
    _one_of(c, "api_key", "api_key_file")
    if not c.get("routing_key"):
        raise ReceiverError("missing Routing key in VictorOps config", "routing_key")
    if not c.get("api_key") and not c.get("api_key_file"):
        if not g.get("victorops_api_key") and not g.get("victorops_api_key_file"):
            raise ReceiverError("no global VictorOps API Key set", "api_key")
        c["api_key"], c["api_key_file"] = g.get("victorops_api_key"), g.get("victorops_api_key_file")
    c.setdefault("api_url", g.get("victorops_api_url"))


def _wechat(c: dict[str, Any], g: dict[str, Any]) -> None:
    _one_of(c, "api_secret", "api_secret_file")
    if not c.get("api_secret") and not c.get("api_secret_file"):
        if not g.get("wechat_api_secret") and not g.get("wechat_api_secret_file"):
            raise ReceiverError("no global Wechat Api Secret set either inline or in a file", "api_secret")
        c["api_secret"], c["api_secret_file"] = g.get("wechat_api_secret"), g.get("wechat_api_secret_file")
    c.setdefault("corp_id", g.get("wechat_api_corp_id"))
    if not c.get("corp_id"):
        raise ReceiverError("no global Wechat CorpID set", "corp_id")


def _pushover(c: dict[str, Any], g: dict[str, Any]) -> None:
    if not c.get("user_key") and not c.get("user_key_file"):
        raise ReceiverError("one of user_key or user_key_file must be configured", "user_key")
    if not c.get("token") and not c.get("token_file"):
        raise ReceiverError("one of token or token_file must be configured", "token")


def _telegram(c: dict[str, Any], g: dict[str, Any]) -> None:
    _one_of(c, "bot_token", "bot_token_file")
    if not c.get("bot_token") and not c.get("bot_token_file"):
        c["bot_token"], c["bot_token_file"] = g.get("telegram_bot_token"), g.get("telegram_bot_token_file")
        if not c["bot_token"] and not c["bot_token_file"]:
            raise ReceiverError("missing bot_token or bot_token_file on telegram_config", "bot_token")
    if not c.get("chat_id") and not c.get("chat_id_file"):
        raise ReceiverError("missing chat_id on telegram_config", "chat_id")
    if c.get("parse_mode") not in (None, "", "MarkdownV2", "Markdown", "HTML"):
        raise ReceiverError("unknown parse_mode on telegram_config, must be Markdown, MarkdownV2, HTML "
                            "or empty string", "parse_mode")
    c.setdefault("api_url", g.get("telegram_api_url"))
    c.setdefault("parse_mode", "HTML")
    c.setdefault("message", '{{ template "telegram.default.message" . }}')


def _msteams(c: dict[str, Any], g: dict[str, Any]) -> None:
    _one_of(c, "webhook_url", "webhook_url_file")
    if not c.get("webhook_url") and not c.get("webhook_url_file"):
        raise ReceiverError("one of webhook_url or webhook_url_file must be configured", "webhook_url")
    c.setdefault("title", '{{ template "msteams.default.title" . }}')
    c.setdefault("summary", '{{ template "msteams.default.summary" . }}')
    c.setdefault("text", '{{ template "msteams.default.text" . }}')


def _sns(c: dict[str, Any], g: dict[str, Any]) -> None:
    if not (c.get("target_arn") or c.get("topic_arn") or c.get("phone_number")):
        raise ReceiverError("must provide either a Target ARN, Topic ARN, or Phone Number for SNS config")


def _discord(c: dict[str, Any], g: dict[str, Any]) -> None:
    _one_of(c, "webhook_url", "webhook_url_file")
    if not c.get("webhook_url") and not c.get("webhook_url_file"):
        raise ReceiverError("one of webhook_url or webhook_url_file must be configured", "webhook_url")


def _mattermost(c: dict[str, Any], g: dict[str, Any]) -> None:
    _one_of(c, "webhook_url", "webhook_url_file")
    if not any(c.get(k) or g.get(f"mattermost_{k}") for k in ("webhook_url", "webhook_url_file")):
        raise ReceiverError("missing webhook_url or webhook_url_file on mattermost_config", "webhook_url")


def _rocketchat(c: dict[str, Any], g: dict[str, Any]) -> None:
    _one_of(c, "token", "token_file")
    _one_of(c, "token_id", "token_id_file")
    if not any(c.get(k) or g.get(f"rocketchat_{k}") for k in ("token", "token_file")):
        raise ReceiverError("no global Rocketchat Token set either inline or in a file", "token")
    if not any(c.get(k) or g.get(f"rocketchat_{k}") for k in ("token_id", "token_id_file")):
        raise ReceiverError("no global Rocketchat TokenID set either inline or in a file", "token_id")


_CHECKS = {"webhook": _webhook, "email": _email, "pagerduty": _pagerduty, "slack": _slack,
           "opsgenie": _opsgenie, "victorops": _victorops, "wechat": _wechat, "pushover": _pushover,
           "telegram": _telegram, "msteams": _msteams, "msteamsv2": _msteams, "sns": _sns,
           "discord": _discord, "mattermost": _mattermost, "rocketchat": _rocketchat}


def redact(value: Any, key: str = "", secrets: frozenset[str] | set[str] = SECRET_KEYS) -> Any:
    """A copy of a raw config tree with every value under a `secrets` key replaced by `<secret>`."""
    if isinstance(value, dict):
        return {k: redact(v, str(k), secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key, secrets) for v in value]
    if key in secrets and value not in (None, ""):
        return "<secret>"
    return value
