"""A real SMTP server (aiosmtpd) on a free loopback port, collecting what it is sent."""

from __future__ import annotations

import email
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from gardien.core.settings import Settings
from tests.conftest import _free_port


@dataclass
class Inbox:
    host: str
    port: int
    messages: list[tuple[list[str], Message]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (list(envelope.rcpt_tos), email.message_from_bytes(envelope.content, policy=policy.default))
        )
        return "250 Message accepted for delivery"

    def settings(self, base: Settings) -> Settings:
        return base.model_copy(
            update={"smtp_host": self.host, "smtp_port": self.port, "smtp_from": "dpo@ogres.example"}
        )

    def to(self, address: str) -> list[Message]:
        """Messages to `address`; addresses compare without case, as mail servers treat them."""
        return [message for recipients, message in self.messages if address.lower() in map(str.lower, recipients)]


@pytest.fixture(name="smtp")
def smtp_fixture() -> Iterator[Inbox]:
    inbox = Inbox("127.0.0.1", _free_port())
    controller = Controller(inbox, hostname=inbox.host, port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


def body_of(message: Message) -> str:
    assert isinstance(message, EmailMessage)
    text: str = message.get_content()
    return text
