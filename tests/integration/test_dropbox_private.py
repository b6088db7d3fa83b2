"""Mail marked private that reaches the dropbox: accepted (a retry would change nothing), stored
nowhere, not even in quarantine, and the SMTP reply says why. The forward's own mark counts too:
an inline forward keeps no header of the mail it quotes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from config.settings import Settings
from hub.bootstrap import build_hub
from hub.dropbox import DropboxHandler
from tests.integration.test_dropbox import DROPBOX, attached_forward, bcc_copy
from tests.stored import stored_bytes
from tests.unit.test_forwarded import OUTLOOK_DE, forward

ORIGINAL_ID = b"Message-ID: <orig-42@elbe-logistik.de>"


def _private_original() -> bytes:
    data = attached_forward()
    assert data.count(ORIGINAL_ID) == 1
    return data.replace(ORIGINAL_ID, b"Sensitivity: Private\r\n" + ORIGINAL_ID)


@pytest.fixture
async def handler(settings: Settings) -> AsyncIterator[DropboxHandler]:
    hub = build_hub(settings.model_copy(update={"dropbox_addresses": [DROPBOX]}), migrate=True)
    try:
        yield DropboxHandler(hub)
    finally:
        await hub.close()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"Sensitivity: Private\r\n" + bcc_copy(), "Private", id="bcc-copy"),
        pytest.param(_private_original(), "Private", id="attached-original"),
        pytest.param(
            b"Sensitivity: Personal\r\n" + forward(OUTLOOK_DE), "Personal", id="inline-forward"
        ),
    ],
)
async def test_private_mail_is_accepted_and_stored_nowhere(
    handler: DropboxHandler, data: bytes, reason: str
) -> None:
    reply = await handler.log_mail(data, owner="anna@ourco.example")
    assert reply == f"250 2.0.0 Not logged, marked Sensitivity: {reason}"
    stored = stored_bytes(handler.hub.settings.database_url)
    for trace in (b"bcc-1@ourco.example", b"orig-42@elbe-logistik.de", b"fwd-1@ourco.example"):
        assert trace not in stored


async def test_the_same_forward_without_a_mark_is_logged(handler: DropboxHandler) -> None:
    """The control: these mails are stored when nobody marked them private."""
    for data in (bcc_copy(), attached_forward(), forward(OUTLOOK_DE)):
        assert "Logged as interaction" in await handler.log_mail(data, owner="anna@ourco.example")
    stored = stored_bytes(handler.hub.settings.database_url)
    assert b"bcc-1@ourco.example" in stored and b"orig-42@elbe-logistik.de" in stored
