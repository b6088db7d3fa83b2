"""The shared call translator: one phone call (or text) -> Interaction.

Every telephony kind (Asterisk CDR files, the Asterisk Manager Interface, Twilio, signed PBX
webhooks) ends here, as every mail kind ends in `connectors/mail.py`, so that a call reads the
same whichever system reported it: the same parties, the same status words, the same subject,
and the PBX's or carrier's own ids (`native_ids`) by which the API finds it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.model import AddressKind, Channel, Direction, Interaction, Participant, Role

# The outcome words every call kind maps its own to (Twilio's call statuses; Asterisk's
# dispositions ANSWERED, NO ANSWER, BUSY, FAILED, CONGESTION map onto them).
STATUSES = (
    "completed",
    "busy",
    "no-answer",
    "failed",
    "canceled",
    "queued",
    "ringing",
    "in-progress",
)
# Asterisk's dispositions as the shared call statuses (CONGESTION: the network refused it).
DISPOSITIONS = {
    "ANSWERED": "completed",
    "NO ANSWER": "no-answer",
    "BUSY": "busy",
    "FAILED": "failed",
    "CONGESTION": "failed",
}
OPEN_STATUSES = frozenset({"queued", "ringing", "in-progress"})  # not over yet: polled again
_SHOWN = {
    "completed": "answered",
    "no-answer": "no answer",
    "in-progress": "in progress",
}


@dataclass(frozen=True)
class Call:
    """One call (or text message) as a source's own fields give it."""

    key: str  # the dedupe key: the source family and its own id ("twilio:CA...", "asterisk:...")
    start: datetime  # aware
    caller: str  # the number as the source wrote it; "" when withheld
    callee: str
    status: str = "completed"  # one of STATUSES
    direction: Direction = Direction.INBOUND
    talk_seconds: int | None = None  # answered time; None while unknown
    caller_name: str = ""
    callee_name: str = ""
    channel: Channel = Channel.CALL  # CALL, SMS or IM
    text: str = ""  # a message's body; a call's transcription
    native_ids: tuple[str, ...] = ()  # CallSid, MessageSid, Asterisk uniqueid and linkedid
    # Which party the source knows to be us ("caller", "callee", "both"; "" when it does not
    # say): a Twilio number or a DID is a full number that matching would take for a customer.
    own_side: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # what else the source adds


def own_side(direction: Direction) -> str:
    """The side that is us, for a source that states the direction from our point of view."""
    return {Direction.OUTBOUND: "caller", Direction.INBOUND: "callee"}.get(direction, "both")


def shown_status(status: str) -> str:
    """The status as a timeline line says it: "answered", "no answer", "busy"."""
    return _SHOWN.get(status, status)


def call_interaction(call: Call) -> Interaction:
    """The Interaction of one call or message: both parties by number (matching normalises
    them), the outcome in `extra["disposition"]` as the timeline shows it, the talk time."""
    participants = [
        Participant(
            Role.CALLER,
            call.caller,
            AddressKind.PHONE,
            call.caller_name,
            ours=call.own_side in ("caller", "both"),
        ),
        Participant(
            Role.CALLEE,
            call.callee,
            AddressKind.PHONE,
            call.callee_name,
            ours=call.own_side in ("callee", "both"),
        ),
    ]
    extra: dict[str, Any] = {**call.extra, "disposition": shown_status(call.status)}
    extra["status"] = call.status
    if call.native_ids:
        extra["native_ids"] = list(call.native_ids)
    if call.channel is not Channel.CALL:
        return Interaction(
            channel=call.channel,
            occurred_at=call.start,
            dedupe_key=call.key,
            direction=call.direction,
            subject=f"Message {call.caller or 'withheld'} → {call.callee}",
            snippet=" ".join(call.text.split())[:240],
            body_text=call.text,
            participants=participants,
            extra=extra,
        )
    seconds = call.talk_seconds or 0
    minutes, rest = divmod(seconds, 60)
    return Interaction(
        channel=Channel.CALL,
        occurred_at=call.start,
        dedupe_key=call.key,
        direction=call.direction,
        subject=f"Call {call.caller or 'withheld'} → {call.callee} "
        f"({shown_status(call.status)}, {minutes}:{rest:02d})",
        snippet=f"{shown_status(call.status)} after {seconds} s",
        body_text=call.text,  # a transcription: the call's content, shown as a call's notes are
        participants=participants,
        duration_seconds=call.talk_seconds,
        extra=extra,
    )
