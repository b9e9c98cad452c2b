"""Sending an alert message: to a webhook that takes JSON (Slack's incoming webhooks and anything like them)
and/or by e-mail. Each channel is a callable taking the message (connector/alerts.py ``message``) and
raising ``DeliveryFailed`` when the message did not get through; the incident book retries it next tick.

Errors never carry the webhook URL (a Slack incoming-webhook URL is itself the credential) nor the SMTP
password: they name the channel, the host and what went wrong.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from typing import Any, Callable
from urllib.parse import urlsplit

import requests

from connector.http import make_session
from connector.json_codec import dumps_for_api

WEBHOOK = "webhook"
EMAIL = "email"
TIMEOUT_SECONDS = 10.0
IMPLICIT_TLS_PORT = 465  # SMTPS: TLS from the first byte, no STARTTLS


class DeliveryFailed(Exception):
    """A channel did not take the message; the text is safe to log."""


class WebhookChannel:
    """POSTs ``{"text": ..., "event": ..., "incident": {...}, "at": ...}`` as JSON; any 2xx is taken. Slack's
    incoming webhooks show ``text`` (https://api.slack.com/messaging/webhooks). UNVERIFIED: that Slack ignores
    the other top-level fields rather than refusing the payload; `connector alerts test` against a real
    workspace's webhook shows it (a refusal is reported as its HTTP status)."""

    def __init__(self, url, *, session: requests.Session | None = None, timeout: float = TIMEOUT_SECONDS) -> None:
        self._url = url  # a Secret
        self._session = session or make_session()
        self._timeout = timeout
        self.host = urlsplit(url.reveal()).hostname or "?"

    def __call__(self, message: dict[str, Any]) -> None:
        try:
            response = self._session.post(self._url.reveal(), data=dumps_for_api(message),
                                          headers={"Content-Type": "application/json"}, timeout=self._timeout)
        except Exception as exc:  # its text may hold the URL: only the type is kept
            raise DeliveryFailed(f"webhook at {self.host}: {type(exc).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"webhook at {self.host}: HTTP {response.status_code}")


class EmailChannel:
    """One e-mail per message: the subject is the message's first line, the body its text."""

    def __init__(self, *, host: str, port: int, sender: str, recipients: tuple[str, ...], user: str = "",
                 password=None, starttls: bool = True, timeout: float = TIMEOUT_SECONDS) -> None:
        self.host, self._port, self._sender, self._recipients = host, port, sender, recipients
        self._user, self._password, self._starttls, self._timeout = user, password, starttls, timeout

    def __call__(self, message: dict[str, Any]) -> None:
        mail = EmailMessage()
        text = message["text"]
        mail["Subject"] = text.splitlines()[0]
        mail["From"] = self._sender
        mail["To"] = ", ".join(self._recipients)
        mail.set_content(text + "\n")
        try:
            if self._port == IMPLICIT_TLS_PORT:
                smtp = smtplib.SMTP_SSL(self.host, self._port, timeout=self._timeout,
                                        context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(self.host, self._port, timeout=self._timeout)
            with smtp:
                if self._starttls and self._port != IMPLICIT_TLS_PORT:
                    smtp.starttls(context=ssl.create_default_context())
                if self._user:
                    smtp.login(self._user, self._password.reveal())
                smtp.send_message(mail)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryFailed(f"e-mail via {self.host}:{self._port}: login refused ({exc.smtp_code}); check "
                                 "CONNECTOR_SMTP_USER and CONNECTOR_SMTP_PASSWORD") from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryFailed(f"e-mail via {self.host}:{self._port}: refused ({exc.smtp_code})") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"e-mail via {self.host}:{self._port}: {type(exc).__name__}") from None


def channels_from_settings(settings) -> dict[str, Callable[[dict], None]]:
    """The configured channels by name; empty when none is (alerts then only reach the log)."""
    channels: dict[str, Callable[[dict], None]] = {}
    if settings.alert_webhook:
        channels[WEBHOOK] = WebhookChannel(settings.alert_webhook)
    if settings.smtp_host:
        channels[EMAIL] = EmailChannel(host=settings.smtp_host, port=settings.smtp_port, sender=settings.smtp_from,
                                       recipients=settings.smtp_to, user=settings.smtp_user,
                                       password=settings.smtp_password, starttls=settings.smtp_starttls)
    return channels
