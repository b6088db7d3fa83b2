"""Signed PBX webhooks: a PBX (3CX, Placetel, sipgate, FreePBX or any other that can post
JSON) posts one call event per request to `POST /hooks/pbx/{connector}`.

The event's shape is `CallEvent`; docs/pbx-webhook.md holds its JSON Schema (the test suite
checks the two agree) and the mapping from each PBX's own fields. A request is signed with the
connector's `signing_secret`: HMAC-SHA256 over `timestamp + "." + body`, hex, in
`X-Crmhub-Signature`, with the Unix time in `X-Crmhub-Timestamp`. Only requests within
`REPLAY_WINDOW` seconds of now are taken, so a captured request cannot be replayed later;
a replay inside the window is the same call again, which storage absorbs as a duplicate.

The connector fetches nothing: its items arrive through the web route (hub/web/hooks_pbx.py),
which stores them with `hub.pipeline.ingest_pushed`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from connectors.base import ConfigurationError, Connector, MalformedItem
from connectors.calls import OPEN_STATUSES, Call, call_interaction, own_side
from hub.model import Direction, Interaction, RawItem

REPLAY_WINDOW = 300  # seconds a signed request stays valid, either side of the hub's clock
TIMESTAMP_HEADER = "x-crmhub-timestamp"
SIGNATURE_HEADER = "x-crmhub-signature"

# connectors.calls.STATUSES, spelled out for the type checker (a test keeps them equal).
Status = Literal[
    "completed", "busy", "no-answer", "failed", "canceled", "queued", "ringing", "in-progress"
]
_FINISHED_NEEDS_TIMES: dict[str, Any] = {
    "if": {"properties": {"status": {"const": "completed"}}, "required": ["status"]},
    "then": {
        "anyOf": [
            {"required": ["duration"], "properties": {"duration": {"type": "integer"}}},
            {
                "required": ["answer", "end"],
                "properties": {"answer": {"type": "string"}, "end": {"type": "string"}},
            },
        ]
    },
}


class CallEvent(BaseModel):
    """One call as the PBX reports it: when it starts, again when it is answered and when it
    ends (or only once, at the end). Every report of one call carries the same `call_id`."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        populate_by_name=True,
        title="PBX call event",
        json_schema_extra={"allOf": [_FINISHED_NEEDS_TIMES]},
    )

    call_id: str = Field(
        min_length=1, max_length=200, description="the PBX's own id of the call (or of this leg)"
    )
    linked_id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="the id of the whole call its legs share (Asterisk linkedid), if any",
    )
    start: AwareDatetime = Field(description="when the call began, ISO 8601 with offset")
    answer: AwareDatetime | None = Field(None, description="when it was answered")
    end: AwareDatetime | None = Field(None, description="when it ended")
    duration: int | None = Field(
        None, ge=0, le=7 * 86_400, description="talk seconds; else end minus answer"
    )
    caller: str = Field(
        alias="from",
        max_length=64,
        description='the calling number as the PBX has it; "" or "anonymous" when withheld',
    )
    callee: str = Field(alias="to", max_length=64, description="the called number")
    direction: Literal["inbound", "outbound", "internal"] = Field(
        description="seen from our side: inbound is a customer calling us"
    )
    status: Status = Field(description="the call's state now")
    from_name: str = Field("", max_length=200, description="the caller's name, if shown")
    to_name: str = Field("", max_length=200, description="the called party's name, if shown")

    @model_validator(mode="after")
    def _times_in_order(self) -> CallEvent:
        if self.status == "completed" and self.duration is None and not (self.answer and self.end):
            raise ValueError("a completed call needs duration, or answer and end")
        for name in ("answer", "end"):
            when: datetime | None = getattr(self, name)
            if when is not None and when < self.start:
                raise ValueError(f"{name} is before start")
        if self.answer and self.end and self.end < self.answer:
            raise ValueError("end is before answer")
        return self

    def talk_seconds(self) -> int | None:
        """Talk time: `duration`, else end minus answer; 0 for a call over unanswered, None
        while it is not over."""
        if self.duration is not None:
            return self.duration
        if self.answer and self.end:
            return int((self.end - self.answer).total_seconds())
        return None if self.status in OPEN_STATUSES else 0


EVENT_SCHEMA: dict[str, Any] = CallEvent.model_json_schema()


def parse_event(body: bytes) -> CallEvent:
    """The event in a request body; raises MalformedItem saying each thing that is wrong."""
    try:
        return CallEvent.model_validate_json(body)
    except ValidationError as e:
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
            for error in e.errors(include_url=False)
        ]
        raise MalformedItem("not a PBX call event: " + "; ".join(problems)) from e


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The hex HMAC-SHA256 a sender puts in X-Crmhub-Signature."""
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _withheld(number: str) -> str:
    """A number without a digit ("anonymous", "unknown", "") is a withheld one."""
    text = number.strip()
    return text if any(c.isdigit() for c in text) else ""


class PbxWebhookConnector(Connector):
    kind = "pbx-webhook"
    secret_options: ClassVar[dict[str, str]] = {
        "signing_secret": "the key the PBX signs its requests with (HMAC-SHA256; at least 16 "
        "characters, shared with the PBX or its adapter only)",
    }
    pushes: ClassVar[bool] = True  # items arrive at /hooks/pbx/{name}; there is no cursor

    def signature_problem(self, timestamp: str, signed: str, body: bytes, now: float) -> str:
        """Why a request is not one this connector's PBX signed just now, or "" when it is.

        The reason is for the audit log and the server log, never for the sender."""
        secret = self.secrets.get("signing_secret", "")
        if not secret:
            return f"{self.name} has no signing_secret stored"
        if not timestamp or not signed:
            return "unsigned: X-Crmhub-Timestamp and X-Crmhub-Signature are both required"
        if not (timestamp.isascii() and timestamp.isdigit()):
            return f"X-Crmhub-Timestamp {timestamp[:40]!r} is not whole seconds since 1970"
        skew = now - int(timestamp)
        if abs(skew) > REPLAY_WINDOW:
            return f"stale: signed {skew:+.0f} s from now, outside the {REPLAY_WINDOW} s window"
        given = signed.strip().lower().encode("utf-8", "backslashreplace")
        expected = signature(secret, timestamp, body).encode("ascii")
        if not hmac.compare_digest(given, expected):
            return "the signature does not match the timestamp and body"
        return ""

    async def _check(self) -> list[str]:
        if len(self.secrets.get("signing_secret", "")) < 16:
            raise ConfigurationError(
                f"{self.name}: no signing_secret of at least 16 characters stored "
                "(--secret signing_secret=ENV_VAR)"
            )
        return [f"{self.name}: takes signed call events at POST /hooks/pbx/{self.name}"]

    async def _fetch(
        self, cursor: dict[str, Any]
    ) -> AsyncIterator[tuple[list[RawItem], dict[str, Any]]]:
        return
        yield  # pragma: no cover - pushed only

    def translate(self, raw: RawItem) -> Interaction:
        event = parse_event(raw.data)
        ids = (event.call_id, *((event.linked_id,) if event.linked_id else ()))
        extra: dict[str, Any] = {"call_id": event.call_id}
        if event.linked_id:
            extra["linked_id"] = event.linked_id
        return call_interaction(
            Call(
                key=f"pbx:{self.name}:{event.call_id}",
                start=event.start,
                caller=_withheld(event.caller),
                callee=_withheld(event.callee),
                status=event.status,
                direction=Direction(event.direction),
                own_side=own_side(Direction(event.direction)),
                talk_seconds=event.talk_seconds(),
                caller_name=event.from_name,
                callee_name=event.to_name,
                native_ids=ids,
                extra=extra,
            )
        )
