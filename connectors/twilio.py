"""The `twilio` connector: calls and text messages of one Twilio account.

A sync lists the calls that started since the day before the last sync (`StartTime>=`, which
Twilio reads by date only), the messages sent since then (`DateSent>=`) and the recordings made
since then, newest first, page by page (tests/twilio_fake.py answers as Twilio documents it).
Child legs (`parent_call_sid`: the agent a <Dial> rang) are folded into their parent: one call
on the timeline, found by any of its CallSids. What the last sync delivered unchanged is not
delivered again: the cursor keeps when the newest change was (`updated`) and, for the last few
minutes before it, which version of each call it delivered (`seen`); a call still queued,
ringing or in progress is kept in the cursor (`open`) and asked for by its SID next time, so
its stored item is revised when it ends (storage revises a call whose source changed).

Every state of a call, polled or pushed by a status callback (hub/web/hooks_twilio.py), is the
same raw item: external id the CallSid (the parent's, for a folded call), JSON
`{"call": <Twilio's Call resource>, "legs": [...], "recordings": [RecordingSid, ...]}`; a
message is `{"message": <Twilio's Message resource>}`. Recordings are kept as SIDs only; the
audio is streamed through crmhub (hub/web/api/recordings.py), never as a Twilio URL.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from connectors.base import ConfigurationError, Connector, MalformedItem
from connectors.calls import STATUSES, Call, call_interaction, own_side
from connectors.twilio_api import DEFAULT_API_URL, TwilioAccount
from hub.model import Channel, Direction, Interaction, RawItem

# Twilio's placeholders for a caller who withheld the number ("ANONYMOUS", "RESTRICTED",
# "UNAVAILABLE", "BLOCKED" spelled on a keypad), and the words some carriers send instead.
WITHHELD = frozenset(
    {
        "+266696687",
        "+7378742833",
        "+86282452253",
        "+2562533",
        "anonymous",
        "restricted",
        "unknown",
        "unavailable",
        "blocked",
        "private",
    }
)
DIRECTIONS = {
    "inbound": Direction.INBOUND,
    "trunking-originating": Direction.INBOUND,
    "outbound-api": Direction.OUTBOUND,
    "outbound-dial": Direction.OUTBOUND,
    "outbound-call": Direction.OUTBOUND,
    "outbound-reply": Direction.OUTBOUND,
    "trunking-terminating": Direction.OUTBOUND,
}
# Twilio's message statuses as the shared call statuses (connectors/calls.py).
MESSAGE_STATUSES = {
    "delivered": "completed",
    "received": "completed",
    "sent": "completed",
    "read": "completed",
    "partially_delivered": "completed",
    "failed": "failed",
    "undelivered": "failed",
    "canceled": "canceled",
    "queued": "queued",
    "accepted": "queued",
    "scheduled": "queued",
    "sending": "queued",
    "receiving": "queued",
}
CALL_STATUSES = {"initiated": "queued", **{s: s for s in STATUSES}}
WHATSAPP = "whatsapp:"


class TwilioConnector(Connector):
    kind = "twilio"
    options: ClassVar[dict[str, str]] = {
        "account_sid": "the account SID (AC followed by 32 hex digits; Twilio console, Account "
        "Info)",
        "public_url": "the https URL at which Twilio reaches crmhub, as seen from outside any "
        "reverse proxy (e.g. https://crm.example.com); webhook signatures are checked "
        "against it",
        "api_url": f"Twilio's REST API (default {DEFAULT_API_URL}; tests point it at a fake)",
        "ca_file": "PEM file of a corporate CA or TLS-inspecting proxy (default: system CAs)",
        "history_days": "how many days back the first sync reads (default 30)",
        "timeout": "seconds to wait for one answer from Twilio (default 30)",
        "retries": "how often a throttled or failed request is retried (default 5)",
    }
    required: ClassVar[tuple[str, ...]] = ("account_sid", "public_url")
    secret_options: ClassVar[dict[str, str]] = {
        "auth_token": "the account's Auth Token (Twilio console, Account Info)"
    }
    example: ClassVar[dict[str, str]] = {
        "account_sid": "AC" + "0" * 32,
        "public_url": "https://crm.example.com",
    }

    @classmethod
    def validate_settings(cls, settings: Mapping[str, str]) -> None:
        super().validate_settings(settings)
        sid = settings["account_sid"]
        if not (sid.startswith("AC") and len(sid) == 34 and sid[2:].isalnum()):
            raise ConfigurationError(
                f"twilio: account_sid={sid!r} is not an account SID (AC and 32 characters, "
                "from the Twilio console's Account Info)"
            )
        public = urlsplit(settings["public_url"])
        local = public.hostname in ("localhost", "127.0.0.1", "::1")
        if public.scheme != "https" and not (public.scheme == "http" and local):
            raise ConfigurationError(
                f"twilio: public_url={settings['public_url']!r} must be an https:// URL "
                "(the address Twilio calls back on, e.g. https://crm.example.com)"
            )
        if public.query or public.fragment:
            raise ConfigurationError("twilio: public_url takes no query or fragment")
        api = urlsplit(settings.get("api_url") or DEFAULT_API_URL)
        if api.scheme not in ("http", "https") or not api.hostname:
            raise ConfigurationError(f"twilio: api_url={settings['api_url']!r} is not a URL")
        cls.require_numbers(settings, "history_days", "timeout", "retries")

    def account(self) -> TwilioAccount:
        token = self.secrets.get("auth_token", "")
        if not token:
            raise ConfigurationError(
                f"{self.name}: no auth_token (--secret auth_token=ENV_VAR naming a variable "
                "that holds the account's Auth Token)"
            )
        return TwilioAccount(
            self.name,
            self.settings["account_sid"],
            token,
            self.settings.get("api_url") or DEFAULT_API_URL,
            self.settings.get("ca_file") or "",
            float(self.settings.get("timeout") or 30),
        )

    def public_url(self) -> str:
        return self.settings["public_url"].rstrip("/")

    async def _fetch(
        self, cursor: dict[str, Any]
    ) -> AsyncIterator[tuple[list[RawItem], dict[str, Any]]]:
        from connectors.twilio_sync import changes

        days = int(self.settings.get("history_days") or 30)
        raws, next_cursor = await changes(self.account(), cursor, days)
        if not raws:
            yield [], next_cursor
            return
        for start in range(0, len(raws), self.batch_size):
            last = start + self.batch_size >= len(raws)
            # A batch before the last keeps the old cursor: the listing is newest first, so
            # only the whole pass is a position; re-running it is harmless.
            yield raws[start : start + self.batch_size], next_cursor if last else dict(cursor)

    async def _check(self) -> list[str]:
        from connectors.twilio_api import connect

        async with connect(self.account()) as api:
            account = await api.get(".json")
        return [f"{self.name}: Twilio account {account.get('friendly_name', '?')} readable"]

    def translate(self, raw: RawItem) -> Interaction:
        try:
            doc = json.loads(raw.data)
        except ValueError as e:
            raise MalformedItem(f"not JSON: {e}") from e
        if isinstance(doc, dict) and isinstance(doc.get("call"), dict):
            return call_interaction(translate_call(doc))
        if isinstance(doc, dict) and isinstance(doc.get("message"), dict):
            return call_interaction(translate_message(doc["message"]))
        raise MalformedItem("neither a Twilio call nor a message")


def twilio_time(value: Any) -> datetime | None:
    """Twilio's RFC 2822 times ("Tue, 31 Aug 2010 20:36:28 +0000") in UTC; None if unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError):
        return None


def party(number: Any) -> str:
    """A number as matching should read it: "" for a withheld caller, without `whatsapp:`."""
    text = str(number or "").strip()
    if text.lower().startswith(WHATSAPP):
        text = text[len(WHATSAPP) :]
    return "" if text.lower() in WITHHELD else text


def _start(record: Mapping[str, Any], *fields: str) -> datetime:
    for name in fields:
        if at := twilio_time(record.get(name)):
            return at
    shown = ", ".join(f"{n}={record.get(n)!r}" for n in fields)
    raise MalformedItem(f"Twilio record {record.get('sid')!r} has no readable time ({shown})")


def translate_call(doc: Mapping[str, Any]) -> Call:
    """A call with its folded child legs and recordings (the raw JSON of the module doc)."""
    call = doc["call"]
    sid = str(call.get("sid") or "")
    if not sid.startswith("CA"):
        raise MalformedItem(f"a Twilio call without a CallSid (sid={sid!r})")
    status = CALL_STATUSES.get(str(call.get("status") or ""))
    if status is None:
        raise MalformedItem(f"call {sid}: unknown Twilio call status {call.get('status')!r}")
    legs = [leg for leg in doc.get("legs") or () if isinstance(leg, dict)]
    recordings = [str(r) for r in doc.get("recordings") or ()]
    extra: dict[str, Any] = {"twilio_direction": call.get("direction") or ""}
    if legs:
        extra["legs"] = [
            {k: leg.get(k) for k in ("sid", "to", "status", "duration")} for leg in legs
        ]
    if recordings:
        extra["recordings"] = recordings
    texts = [str(t["text"]) for t in doc.get("transcriptions") or () if t.get("text")]
    duration = call.get("duration")
    return Call(
        key=f"twilio:{sid}",
        start=_start(call, "start_time", "date_created"),
        caller=party(call.get("from")),
        callee=party(call.get("to")),
        status=status,
        direction=(way := DIRECTIONS.get(str(call.get("direction")), Direction.INBOUND)),
        own_side=own_side(way),
        talk_seconds=int(duration) if str(duration or "").isdigit() else None,
        caller_name=str(call.get("caller_name") or ""),
        native_ids=(sid, *(str(leg["sid"]) for leg in legs if leg.get("sid"))),
        text="\n\n".join(texts),
        extra=extra,
    )


def translate_message(message: Mapping[str, Any]) -> Call:
    sid = str(message.get("sid") or "")
    if not sid.startswith(("SM", "MM")):
        raise MalformedItem(f"a Twilio message without a MessageSid (sid={sid!r})")
    native = str(message.get("status") or "")
    status = MESSAGE_STATUSES.get(native)
    if status is None:
        raise MalformedItem(f"message {sid}: unknown Twilio message status {native!r}")
    addresses = (str(message.get("from") or ""), str(message.get("to") or ""))
    whatsapp = any(a.lower().startswith(WHATSAPP) for a in addresses)
    extra: dict[str, Any] = {"twilio_status": native}
    if media := str(message.get("num_media") or "0"):
        if media.isdigit() and int(media):
            extra["media"] = int(media)
    return Call(
        key=f"twilio:{sid}",
        start=_start(message, "date_sent", "date_created"),
        caller=party(addresses[0]),
        callee=party(addresses[1]),
        status=status,
        direction=(way := DIRECTIONS.get(str(message.get("direction")), Direction.INBOUND)),
        own_side=own_side(way),
        channel=Channel.IM if whatsapp else Channel.SMS,
        text=str(message.get("body") or ""),
        native_ids=(sid,),
        extra=extra,
    )
