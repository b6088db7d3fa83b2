"""What the interaction page shows that storage does not keep: the HTML body of a mail.

Storage keeps each mail's raw message, not its HTML (measured: the HTML bodies were a third of
the interactions table). To show one, the raw message is translated again by the connector that
fetched it, the same code as at ingest, so connector-specific framing (an mbox envelope line)
is handled in one place; then it is sanitised. Remote images stay out until the reader asks
for them, per mail: loading one tells the sender that, when and where the mail was read.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import nh3

from connectors.base import Connector, ConnectorError
from connectors.mail import translate_message
from hub.bootstrap import Hub
from hub.model import Channel, RawItem
from storage.blobs import read_blob
from storage.connectors_state import connector_row
from storage.tables import InteractionRow

log = logging.getLogger(__name__)
URL_SCHEMES = {"http", "https", "mailto"}


@dataclass(frozen=True)
class MailHtml:
    html: str = ""
    blocked_images: int = 0  # remote images left out


async def mail_html(hub: Hub, row: InteractionRow, *, remote_images: bool = False) -> MailHtml:
    """The sanitised HTML of a stored mail, empty when it has none (or is no mail)."""
    if row.channel != Channel.EMAIL or row.raw_blob_id is None:
        return MailHtml()
    first = min(row.sources, key=lambda s: s.id, default=None)
    async with hub.sessions() as session:
        raw = await read_blob(session, row.raw_blob_id)
        found = None
        if first is not None:
            found = await connector_row(session, first.connector)
    connector: Connector | None = None
    if found is not None:
        try:
            connector = hub.connector(found, with_secrets=False)
        except ConnectorError as e:
            log.warning("interaction %s: connector %s unusable (%s)", row.id, found.name, e)
    external_id = first.external_id if first else ""
    return await asyncio.to_thread(_sanitised, connector, RawItem(external_id, raw), remote_images)


def _sanitised(connector: Connector | None, raw: RawItem, remote_images: bool) -> MailHtml:
    try:
        if connector is not None:
            html = connector.translate(raw).body_html
        else:  # the dropbox and sent mail store plain RFC 5322 messages
            html = translate_message(raw.data).body_html
    except Exception:
        log.exception("stored raw message %s cannot be translated again", raw.external_id)
        return MailHtml()
    if not html:
        return MailHtml()
    blocked = 0

    def keep(element: str, attribute: str, value: str) -> str | None:
        nonlocal blocked
        remote = value.strip().lower().startswith(("http:", "https:", "//"))
        if element == "img" and attribute == "src" and remote and not remote_images:
            blocked += 1
            return None
        return value

    return MailHtml(nh3.clean(html, url_schemes=URL_SCHEMES, attribute_filter=keep), blocked)
