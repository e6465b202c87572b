"""Email over SMTP: implicit TLS on port 465, STARTTLS when offered (required by default), AUTH,
and a multipart/alternative message with a text and an HTML part."""

from __future__ import annotations

import asyncio
import smtplib
import time
import uuid
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from heron.notify import Notification, NotifyError, Renderer
from heron.notify.http import read_file_setting
from heron.tls import tls_context

DEFAULT_SUBJECT = '{{ template "email.default.subject" . }}'
DEFAULT_HTML = '{{ template "email.default.html" . }}'
DEFAULT_TEXT = '{{ template "email.default.text" . }}'


class Email:
    def __init__(self, settings: dict[str, Any], ctx: Any) -> None:
        self.s, self.ctx = settings, ctx
        self.base_dir = getattr(ctx, "base_dir", None)

    def message(self, n: Notification) -> EmailMessage:
        s = self.s
        r = Renderer(self.ctx.templates, n)
        headers = {str(k).title(): v for k, v in (s.get("headers") or {}).items()}
        msg = EmailMessage()
        msg["Subject"] = r(headers.pop("Subject", DEFAULT_SUBJECT))
        msg["From"] = r(headers.pop("From", s.get("from")))
        msg["To"] = r(headers.pop("To", s.get("to")))
        msg["Date"] = formatdate(time.time(), localtime=False)
        msg["Message-Id"] = f"<{uuid.uuid4()}@heron>"
        for k, v in headers.items():
            msg[k] = r(v)
        msg.set_content(r(s.get("text") or DEFAULT_TEXT))
        if s.get("html") != "":
            msg.add_alternative(r(s.get("html") or DEFAULT_HTML, html=True), subtype="html")
        return msg

    def _send(self, msg: EmailMessage) -> None:
        s = self.s
        host, _, port_s = str(s["smarthost"]).rpartition(":")
        port = int(port_s or 25)
        tls = tls_context(s.get("tls_config") or {}, self.base_dir)
        smtp: smtplib.SMTP
        try:
            if port == 465:
                smtp = smtplib.SMTP_SSL(host, port, local_hostname=s.get("hello") or "localhost", context=tls,
                                        timeout=30)
            else:
                smtp = smtplib.SMTP(host, port, local_hostname=s.get("hello") or "localhost", timeout=30)
            with smtp:
                smtp.ehlo()
                if port != 465:
                    if smtp.has_extn("starttls"):
                        smtp.starttls(context=tls)
                        smtp.ehlo()
                    elif s.get("require_tls", True):
                        raise NotifyError(f"'require_tls' is true (default) but {host}:{port} does not "
                                          "advertise the STARTTLS extension", retry=False)
                user = s.get("auth_username")
                if user:
                    password = read_file_setting(s.get("auth_password"), s.get("auth_password_file"),
                                                 self.base_dir) or ""
                    if smtp.has_extn("auth"):
                        smtp.login(str(user), password)
                smtp.send_message(msg)
        except NotifyError:
            raise
        except smtplib.SMTPResponseException as exc:
            raise NotifyError(f"email: SMTP error {exc.smtp_code}", retry=exc.smtp_code >= 400 and
                              exc.smtp_code < 500) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise NotifyError(f"email: sending via {host}:{port} failed: {type(exc).__name__}: {exc}") from None

    async def notify(self, n: Notification) -> None:
        msg = self.message(n)
        await asyncio.get_running_loop().run_in_executor(None, self._send, msg)

    async def close(self) -> None:
        return None


def make(settings: dict[str, Any], ctx: Any) -> Email:
    return Email(settings, ctx)
