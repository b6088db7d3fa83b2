"""A real SMTP server for tests (aiosmtpd) that records what it accepts.

Shared by the integration and end-to-end tiers so that both talk to the same server behaviour.
"""

from __future__ import annotations

import socket
from typing import Any

from aiosmtpd.controller import Controller


class RecordingMailserver:
    """Accepts mail; refuses recipients at the `nobody.example` domain, as a server would."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.endswith("@nobody.example"):
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"


def start_mailserver(handler: object, **options: Any) -> Controller:
    """Start aiosmtpd on a free loopback port (it checks readiness by connecting: no port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
    controller.start()
    return controller
