"""Twilio's status callbacks as the `twilio` connector's raw items.

A callback names the call by the parameters Twilio documents for voice status callbacks
(https://www.twilio.com/docs/voice/api/call-resource#statuscallback: CallSid, From, To,
CallStatus, Direction, CallerName, CallDuration, Timestamp, ParentCallSid, RecordingSid) and for
messages (https://www.twilio.com/docs/messaging/guides/webhook-request: MessageSid, From, To,
MessageStatus or SmsStatus, Body, NumMedia). Each becomes the same raw item a poll makes of
the resource (connectors/twilio.py), with the same external id, so that storage keeps one item
per call and revises it as callbacks come, whatever their order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from connectors.twilio import twilio_time
from hub.model import RawItem

FINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


class ChildLeg(Exception):
    """A callback about a child leg (ParentCallSid): the poll folds legs into their parent,
    because a leg alone would overwrite the parent's parties with the agent's."""


class NotACallback(ValueError):
    """The parameters lack what every Twilio callback carries; the message says which."""


def voice_raw(params: Mapping[str, str], now: datetime | None = None) -> RawItem:
    """A voice status callback as a call's raw item (external id: its CallSid)."""
    sid = params.get("CallSid", "")
    if not sid.startswith("CA") or not params.get("CallStatus"):
        raise NotACallback("a voice status callback carries CallSid and CallStatus")
    if params.get("ParentCallSid"):
        raise ChildLeg(f"call {sid} is a leg of {params['ParentCallSid']}")
    at = twilio_time(params.get("Timestamp")) or now or datetime.now(UTC)
    duration = params.get("CallDuration", "")
    if params["CallStatus"] in FINAL and duration.isdigit():
        at -= timedelta(seconds=int(duration))  # the event is the hang-up; the call began then
    call = {
        "sid": sid,
        "account_sid": params.get("AccountSid", ""),
        "from": params.get("From", ""),
        "to": params.get("To", ""),
        "status": params["CallStatus"],
        "direction": params.get("Direction", ""),
        "caller_name": params.get("CallerName") or None,
        "duration": duration or None,
        "start_time": format_datetime(at.astimezone(UTC), usegmt=True),
        "forwarded_from": params.get("ForwardedFrom") or None,
    }
    recordings = [params["RecordingSid"]] if params.get("RecordingSid") else []
    doc = {"call": call, "legs": [], "recordings": recordings}
    return RawItem(sid, json.dumps(doc, sort_keys=True).encode(), "application/json")


def message_sid(params: Mapping[str, str]) -> str:
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    if not sid.startswith(("SM", "MM")):
        raise NotACallback("a message callback carries MessageSid")
    return sid


def has_text(params: Mapping[str, str]) -> bool:
    """An incoming message carries its Body; a status callback about one we sent does not,
    and is completed from the API instead (a snippet must not turn empty)."""
    return "Body" in params


def message_raw(params: Mapping[str, str], now: datetime | None = None) -> RawItem:
    """An incoming message webhook as a message's raw item (external id: its MessageSid)."""
    sid = message_sid(params)
    status = params.get("MessageStatus") or params.get("SmsStatus") or "received"
    at = format_datetime((now or datetime.now(UTC)).astimezone(UTC), usegmt=True)
    message = {
        "sid": sid,
        "account_sid": params.get("AccountSid", ""),
        "from": params.get("From", ""),
        "to": params.get("To", ""),
        "body": params.get("Body", ""),
        "status": status,
        "direction": "inbound" if status in ("received", "receiving") else "outbound-api",
        "num_media": params.get("NumMedia", "0"),
        "date_sent": at,
    }
    return message_resource_raw(message)


def message_resource_raw(message: Mapping[str, object]) -> RawItem:
    """A Message resource as the API answers it (connectors/twilio_sync.py makes the same)."""
    doc = json.dumps({"message": dict(message)}, sort_keys=True).encode()
    return RawItem(str(message["sid"]), doc, "application/json")
