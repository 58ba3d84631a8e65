"""Outgoing e-mail over SMTP, to the server of `GARDIEN_SMTP_*`."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from gardien.core.errors import Problem
from gardien.core.settings import Settings


class MailUnavailable(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(503, "mail-unavailable", "E-mail unavailable", detail)


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def configured(self) -> bool:
        return self.settings.smtp_host is not None

    def send(self, to: list[str], subject: str, body: str) -> None:
        """Deliver one plain-text message; MailUnavailable (503) when the server cannot be reached."""
        settings = self.settings
        if settings.smtp_host is None:
            raise MailUnavailable("no SMTP server configured: set GARDIEN_SMTP_HOST")
        message = EmailMessage()
        message["From"] = settings.smtp_from
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message.set_content(body)
        try:
            smtp: smtplib.SMTP
            if settings.smtp_ssl:
                smtp = smtplib.SMTP_SSL(
                    settings.smtp_host,
                    settings.smtp_port,
                    timeout=settings.smtp_timeout,
                    context=ssl.create_default_context(),
                )
            else:
                smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout)
            with smtp:
                if settings.smtp_starttls and not settings.smtp_ssl:
                    smtp.starttls(context=ssl.create_default_context())
                if settings.smtp_username and settings.smtp_password:
                    smtp.login(settings.smtp_username, settings.smtp_password)
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailUnavailable(f"the SMTP server did not take the message: {exc}") from exc
