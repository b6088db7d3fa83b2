"""JSON Schemas of what the API answers and accepts: the components of the OpenAPI document.

tests/e2e/test_openapi.py validates real answers against them, so they cannot drift from the
read models in hub.web.views.
"""

from __future__ import annotations

from typing import Any

from hub.model import Channel
from storage.call_notes import OUTCOMES

Schema = dict[str, Any]


def obj(required: list[str] | None = None, **properties: Schema) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    schema["required"] = list(properties) if required is None else required
    return schema


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def page(item: str) -> Schema:
    return obj(items=array(ref(item)), next_cursor={"type": ["string", "null"]})


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
WHEN: Schema = {"type": "string", "format": "date-time"}
MAYBE_STR: Schema = {"type": ["string", "null"]}
MAYBE_INT: Schema = {"type": ["integer", "null"]}
MAYBE_WHEN: Schema = {"type": ["string", "null"], "format": "date-time"}
CHANNEL: Schema = {"enum": [channel.value for channel in Channel]}
VISIBILITY: Schema = {
    "enum": ["metadata", "subject", "full"],
    "description": "how much of the item the caller sees (DESIGN.md, Who sees what); "
    "withheld fields are null",
}

ACCOUNT = obj(id=INT, name=STR, domains=array(STR), owner=STR)
CONTACT = obj(
    id=INT,
    name=STR,
    title=STR,
    account_id=MAYBE_INT,
    emails=array(STR),
    phones=array(STR),
    owner=STR,
)
INTERACTION = obj(
    id=INT,
    channel=CHANNEL,
    direction={
        "enum": ["inbound", "outbound", "internal", None],
        "description": "null for a meeting: a meeting has no direction",
    },
    occurred_at=WHEN,
    ends_at=MAYBE_WHEN,
    subject=MAYBE_STR,
    snippet=MAYBE_STR,
    participants=array(
        obj(
            role=STR, kind={"enum": ["email", "phone"]}, address=STR, name=STR, contact_id=MAYBE_INT
        )
    ),
    attributions=array(
        obj(
            account_id=INT,
            contact_id=MAYBE_INT,
            rule=STR,
            confidence={"type": "number"},
            manual={"type": "boolean"},
            explanation=STR,
        )
    ),
    sources=array(obj(connector=STR, external_id=STR)),
    message_id=MAYBE_STR,
    thread_id=MAYBE_STR,
    not_logged=STR,
    duration_seconds=MAYBE_INT,
    attachments=array(
        obj(id=INT, filename=STR, content_type=STR, size=INT, downloadable={"type": "boolean"})
    ),
    visibility=VISIBILITY,
    cancelled={"type": "boolean", "description": "a meeting its organizer cancelled"},
    all_day={
        "type": ["string", "null"],
        "format": "date",
        "description": "an all-day meeting's day (occurred_at is its midnight in the hub's "
        "zone); null for anything else",
    },
)
WITH_TEXT = {
    **INTERACTION,
    "properties": {
        **INTERACTION["properties"],
        "body_text": MAYBE_STR,
        "recordings": {
            **array(obj(sid=STR, url=STR)),
            "description": "a call's recordings, streamed through crmhub (only for calls, and "
            "empty where the caller may not hear them)",
        },
    },
    "required": [*INTERACTION["required"], "body_text"],
}
HIDDEN_NOW = obj(
    id=INT,
    visibility={"const": "none"},
    attributions={"type": "array", "maxItems": 0},
)
MOVED = {"type": "object", "additionalProperties": INT}
MERGE = obj(
    kind={"enum": ["account", "contact"]},
    kept=INT,
    dropped=INT,
    moved=MOVED,
    notes=array(STR),
    rematched=obj(examined=INT, changed=INT),
)
REVIEW_CASE = obj(
    kind={"enum": ["unknown-sender", "name-lookalike", "shared-domain", "shared-address"]},
    key={"type": "string", "description": "normalised address, E.164 number or domain"},
    name=STR,
    reason=STR,
    count=INT,
    latest_at=WHEN,
    interactions=array(obj(id=INT, subject=STR, occurred_at=WHEN)),
    suggestions=array(
        obj(account_id=MAYBE_INT, contact_id=MAYBE_INT, label=STR, score=INT, reason=STR)
    ),
)
BOOL: Schema = {"type": "boolean"}
TEXTS: Schema = {"type": "object", "additionalProperties": STR}
SYNC_REPORT = obj(
    fetched=INT,
    new=INT,
    duplicates=INT,
    matched=INT,
    unmatched=INT,
    quarantined=INT,
    skipped=INT,
    errors=INT,
    contacts_created=INT,
    error=STR,
    seconds={"type": "number"},
)
SYNC_PROGRESS = obj(
    state={
        "enum": ["none", "running", "done", "failed", "interrupted"],
        "description": "the connector's latest sync run; none: no run recorded yet; "
        "interrupted: its process stopped beating",
    },
    initial={
        "type": "boolean",
        "description": "the run began without a cursor: a first, full read of the source",
    },
    fetched={
        "type": "integer",
        "description": "items fetched so far; no source tells ahead how many there will be",
    },
    started_at=MAYBE_WHEN,
    updated_at=MAYBE_WHEN,
    ended_at=MAYBE_WHEN,
    report={
        "oneOf": [SYNC_REPORT, {"type": "null"}],
        "description": "once ended, the counts `crmhub sync --json` prints",
    },
)
CONNECTOR = obj(
    name=STR,
    kind=STR,
    owner={"type": "string", "description": "the mailbox owner; empty for nobody's source"},
    enabled=BOOL,
    settings=TEXTS,
    secrets={**array(STR), "description": "the names of the secrets stored, never a value"},
    status=STR,
    last_error=STR,
    hint={"type": "string", "description": "what IT should do about last_error"},
    last_sync_at=MAYBE_WHEN,
    last_success_at=MAYBE_WHEN,
    newest_item_at={**MAYBE_WHEN, "description": "the newest item seen from it (not ahead)"},
    lag_seconds={**MAYBE_INT, "description": "the age of that item"},
    items_per_day={
        **array(obj(day={"type": "string", "format": "date"}, count=INT)),
        "description": "the last 14 days in the hub's time zone, today the last",
    },
    sync=ref("SyncProgress"),
)
OPTION = obj(
    name=STR,
    help=STR,
    secret={"type": "boolean", "description": "write-only: stored encrypted"},
    hub={"type": "boolean", "description": "a setting every kind takes"},
)
OPTION["properties"]["required"] = BOOL  # not a keyword of obj(): it names its own argument
OPTION["required"].append("required")
CONNECTOR_KIND = obj(kind=STR, options=array(OPTION))
AUDIT_ENTRY = obj(
    id=INT,
    at=WHEN,
    actor=STR,
    action=STR,
    target=STR,
    interaction_id=MAYBE_INT,
    before={"type": "object"},
    after={"type": "object"},
)

CALL_NOTE = obj(
    id=INT,
    author={"type": "string", "description": "the user who wrote it"},
    written_at=WHEN,
    outcome={"enum": ["", *OUTCOMES]},
    text=STR,
)

COMPONENTS: dict[str, Schema] = {
    "Error": obj(error=obj(code=STR, message=STR)),
    "Account": ACCOUNT,
    "AccountPage": page("Account"),
    "AccountWithContacts": {
        **ACCOUNT,
        "properties": {**ACCOUNT["properties"], "contacts": array(ref("Contact"))},
        "required": [*ACCOUNT["required"], "contacts"],
    },
    "Contact": CONTACT,
    "Interaction": INTERACTION,
    "InteractionWithText": WITH_TEXT,
    "InteractionPage": page("Interaction"),
    "CalendarFeedCreated": obj(
        id=INT,
        account_id=INT,
        created_by=STR,
        created_at=WHEN,
        url={"type": "string", "description": "the subscription link; shown only here"},
    ),
    "CalendarFeedRevoked": obj(account_id=INT, revoked=INT),
    "Corrected": {"oneOf": [ref("InteractionWithText"), HIDDEN_NOW]},
    "Lookup": obj(
        query=obj(phone=MAYBE_STR, email=MAYBE_STR),
        contacts=array(ref("Contact")),
        accounts=array(ref("Account")),
        owner={
            "type": ["string", "null"],
            "description": "whom the caller belongs to: the contact's owner, else its account's",
        },
        latest=array(ref("Interaction")),
        questions={
            **array(
                obj(
                    kind=REVIEW_CASE["properties"]["kind"],
                    key=STR,
                    name=STR,
                    reason=STR,
                    count=INT,
                    complete={
                        "type": "boolean",
                        "description": "count is all open items, not only the newest 50",
                    },
                    latest_at=MAYBE_WHEN,
                    interaction_ids=array(INT),
                )
            ),
            "description": "open review questions about the number or address, or the "
            "contact's; empty for roles that do not review (callcenter)",
        },
    ),
    "SearchResults": obj(
        accounts=array(ref("Account")),
        contacts=array(ref("Contact")),
        interactions=array(ref("Interaction")),
    ),
    "AccountMerge": obj(account=ref("AccountWithContacts"), merge=MERGE),
    "ContactMerge": obj(contact=ref("Contact"), merge=MERGE),
    "OutgoingMessage": obj(
        ["to", "subject", "body"],
        to=array(STR),
        cc=array(STR),
        subject=STR,
        body={"type": "string", "description": "plain text"},
        in_reply_to={"type": "string", "description": "a Message-ID"},
        connector={
            "type": "string",
            "description": "a connector the caller owns and sends through (smtp, exchange, m365); "
            "optional when they own one",
        },
    ),
    "SendOutcome": obj(
        interaction_id={
            "type": ["integer", "null"],
            "description": "the logged mail; null when it was sent but is not logged",
        },
        message_id=STR,
        accepted=array(STR),
        refused={"type": "object", "additionalProperties": STR},
        sent_folder=STR,
        sent_copy_error=STR,
        not_logged={"type": "string", "description": "why it is not logged (a blocklist)"},
    ),
    "NewMeeting": obj(
        ["start", "subject"],
        contact_id={"type": "integer", "description": "the customer to invite (or account_id)"},
        account_id={"type": "integer", "description": "with attendee: one of its contacts"},
        attendee={
            "type": "string",
            "description": "the address to invite; default the contact's first",
        },
        start={
            "type": "string",
            "description": "ISO date-time; without offset, in the caller's time zone",
        },
        duration={
            "type": "integer",
            "minimum": 5,
            "maximum": 480,
            "description": "minutes, default 30",
        },
        subject=STR,
        note={"type": "string", "description": "text of the invitation"},
        confirm={"type": "boolean", "description": "book even when the calendar is busy then"},
        calendar_connector={
            "type": "string",
            "description": "a calendar connector the caller "
            "owns (caldav, exchange, m365); optional when they own one",
        },
        mail_connector={
            "type": "string",
            "description": "the connector the invitation goes through; optional when they own one",
        },
    ),
    "BookedMeeting": obj(
        interaction_id={
            "type": ["integer", "null"],
            "description": "the logged meeting; null when the attendee is blocklisted",
        },
        uid={"type": "string", "description": "the event's iCalendar UID"},
        start=WHEN,
        end=WHEN,
        calendar_connector=STR,
        calendar={"type": "string", "description": "where the calendar put it"},
        mail_connector=STR,
        invited=array(STR),
        invitation_error={
            "type": "string",
            "description": "booked and logged, but the customer got no invitation: why",
        },
    ),
    "ReviewCase": REVIEW_CASE,
    "ReviewCasePage": page("ReviewCase"),
    "Settlement": obj(
        ["key", "settlement"],
        key={"type": "string", "description": "an address, phone number or domain"},
        settlement={"enum": ["assign", "create-contact", "ignore"]},
        contact_id={"type": "integer", "description": "assign an address or number"},
        account_id={"type": "integer", "description": "assign a domain; create-contact"},
        name={"type": "string", "description": "create-contact"},
    ),
    "SettleOutcome": obj(settled=INT, rematched=INT),
    "Quarantined": obj(
        id=INT,
        connector=STR,
        external_id=STR,
        reason=STR,
        created_at=WHEN,
        raw_readable={"type": "boolean"},
    ),
    "QuarantinePage": page("Quarantined"),
    "Connector": CONNECTOR,
    "ConnectorList": obj(items=array(ref("Connector"))),
    "SyncProgress": SYNC_PROGRESS,
    "ConnectorKind": CONNECTOR_KIND,
    "ConnectorKinds": obj(items=array(ref("ConnectorKind"))),
    "NewConnector": obj(
        ["kind", "name"],
        kind={"type": "string", "description": "a kind of GET /api/connector-kinds"},
        name={"type": "string", "description": "letters, digits, - _ and ."},
        settings=TEXTS,
        secrets={**TEXTS, "description": "the kind's secret options; stored encrypted"},
    ),
    "ConnectorTest": obj(
        ok=BOOL,
        lines={**array(STR), "description": "what the source holds, when ok"},
        error=STR,
        hint=STR,
    ),
    "ConnectorRemoved": obj(name=STR, removed={"const": True}),
    "AuditEntry": AUDIT_ENTRY,
    "AuditPage": page("AuditEntry"),
    "BlocklistEntries": obj(
        items=array(
            obj(entry=STR, scope={"enum": ["mine", "everyone"]}, created_by=STR, created_at=WHEN)
        )
    ),
    "BlockCounts": obj(
        entry=STR, user=STR, added={"type": "boolean"}, items_deleted=INT, sources_removed=INT
    ),
    "CallNote": CALL_NOTE,
    "CallNotes": obj(
        interaction_id=INT,
        notes={
            "oneOf": [array(ref("CallNote")), {"type": "null"}],
            "description": "oldest first; null for a caller who sees the call's metadata only",
        },
    ),
}
