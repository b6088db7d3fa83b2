"""Audit entries for refused webhook calls (a forged, unsigned or misdirected Twilio or PBX
callback), without letting a flood of them fill the audit log.

Webhooks are open to the internet, so anybody can send a thousand forged requests a second.
Each refusal is counted per client address under its own key ("webhook:ADDRESS", never the
login's "client:ADDRESS": behind a reverse proxy every request shares the proxy's address, and
a forger must not lock the users out) with the failed-login counts of storage.throttle: the
first LIMIT refusals in its window are audited one by one, then the address is quiet for a
block that doubles with each further refusal, during which refusals are still answered 403 and
logged at debug level, but not audited. The answer never depends on the count: a real callback
from behind the same proxy is believed whenever its signature fits.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from hub.web.http import hub_of
from storage import audit, throttle

log = logging.getLogger(__name__)


def webhook_key(address: str) -> str:
    return f"webhook:{address.strip().lower()}"[: throttle.KEY_LENGTH]


async def audit_refusal(
    request: Request, actor: str, target: str, after: dict[str, Any], reason: str
) -> bool:
    """Record one refused call of `request` unless its client address is in a block; whether
    it was recorded. `after` is the entry's detail, `reason` what the server log says."""
    client = request.client.host if request.client else ""
    key = webhook_key(client or "unknown")
    now = datetime.now(UTC)
    async with hub_of(request).sessions() as session, session.begin():
        if await throttle.retry_after(session, [key], now) is not None:
            log.debug(
                "refused %s %r from %s, not audited (a flood): %s", actor, target, client, reason
            )
            return False
        audit.record(session, actor, "webhook.refused", after=after, target=target)
        await throttle.note_failure(session, [key], now)
    log.warning("refused %s for %r from %s: %s", actor, target, client or "?", reason)
    return True
