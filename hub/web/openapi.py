"""The OpenAPI 3.1 document served at /api/openapi.json."""

from __future__ import annotations

from typing import Any


def _param(name: str, where: str = "query", kind: str = "string", doc: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": {"type": kind},
        "description": doc,
    }


PAGING = [
    _param("cursor", doc="next_cursor of the previous page"),
    _param("limit", kind="integer", doc="1..200, default 50"),
]
TIMELINE = [
    _param("channel", doc="email, call, sms, meeting, fax or note"),
    _param("since", doc="ISO date-time, inclusive"),
    _param("until", doc="ISO date-time, exclusive"),
]
ID = [_param("id", "path", "integer")]

ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
INTERACTION = {
    "type": "object",
    "properties": {
        k: {}
        for k in (
            "id",
            "channel",
            "direction",
            "occurred_at",
            "subject",
            "snippet",
            "participants",
            "attributions",
            "sources",
            "message_id",
            "thread_id",
        )
    },
}


def _get(summary: str, params: list[dict[str, Any]], item: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object"}
    if item:
        schema = {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
                "next_cursor": {"type": ["string", "null"]},
            },
        }
    return {
        "get": {
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
                "401": {
                    "description": "no or bad token",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                },
            },
        }
    }


_ERROR_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def _post(
    summary: str,
    body: dict[str, Any],
    ok: tuple[str, str, dict[str, Any]],
    errors: dict[str, str],
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A POST with a JSON body: `ok` is (status, description, schema); `errors` status ->
    description, each answered as an Error."""
    status, description, schema = ok
    operation: dict[str, Any] = {"summary": summary}
    if parameters:
        operation["parameters"] = parameters
    operation["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": body}},
    }
    operation["responses"] = {
        status: {"description": description, "content": {"application/json": {"schema": schema}}},
        **{code: {"description": text, "content": _ERROR_JSON} for code, text in errors.items()},
    }
    return {"post": operation}


_NO_TOKEN = "no or bad token"
_NOT_AN_OBJECT = "the body is not a JSON object"
_BAD_FIELD = "a field is wrong; the message names it"

SEND_MESSAGE = _post(
    "send a mail to customers as the caller; logged at once, filed in Sent",
    {
        "type": "object",
        "required": ["to", "subject", "body"],
        "properties": {
            "to": {"type": "array", "items": {"type": "string"}},
            "cc": {"type": "array", "items": {"type": "string"}},
            "subject": {"type": "string"},
            "body": {"type": "string", "description": "plain text"},
            "in_reply_to": {"type": "string", "description": "a Message-ID"},
            "connector": {
                "type": "string",
                "description": "smtp connector; optional when there is one",
            },
        },
    },
    (
        "201",
        "sent to `accepted`; `refused` maps each refused recipient to the server's answer",
        {
            "type": "object",
            "properties": {
                "interaction_id": {"type": "integer"},
                "message_id": {"type": "string"},
                "accepted": {"type": "array", "items": {"type": "string"}},
                "refused": {"type": "object", "additionalProperties": {"type": "string"}},
                "sent_folder": {"type": "string"},
                "sent_copy_error": {"type": "string"},
            },
        },
    ),
    {
        "401": _NO_TOKEN,
        "415": "not application/json",
        "422": _BAD_FIELD,
        "502": "the mail server refused every recipient or the login",
        "503": "no smtp connector is set up",
    },
)


CORRECT_ATTRIBUTION = _post(
    "a person links the item to an account (add) or unlinks it (remove); manual "
    "links survive re-matching and removed ones are never re-added; recorded in the audit log",
    {
        "type": "object",
        "required": ["action", "account_id"],
        "properties": {
            "action": {"enum": ["add", "remove"]},
            "account_id": {"type": "integer"},
            "contact_id": {"type": ["integer", "null"]},
        },
    },
    ("200", "the interaction after the change", {"$ref": "#/components/schemas/Interaction"}),
    {"401": _NO_TOKEN, "404": "no such interaction", "422": _BAD_FIELD},
    [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
)

_COUNTS = {
    "type": "object",
    "properties": {"examined": {"type": "integer"}, "changed": {"type": "integer"}},
}


def _merge(what: str, owns: str) -> dict[str, Any]:
    """POST /api/{what}s/{id}/merge: the record `from` is folded into the one the path names."""
    return _post(
        f"merge the duplicate {what} `from` into this one: its {owns} and "
        "attributions move here (manual links stay manual, tombstones are kept), the stored "
        "items it touched are attributed anew, `from` is deleted; recorded in the audit log",
        {
            "type": "object",
            "required": ["from"],
            "properties": {
                "from": {"type": "integer", "description": f"id of the {what} to merge and delete"}
            },
        },
        (
            "200",
            f"`{what}`: the {what} after the merge; `merge`: counts of "
            "what moved, notes, and how many stored items were re-matched and changed",
            {
                "type": "object",
                "properties": {
                    what: {"type": "object"},
                    "merge": {
                        "type": "object",
                        "properties": {
                            "kind": {"enum": ["account", "contact"]},
                            "kept": {"type": "integer"},
                            "dropped": {"type": "integer"},
                            "moved": {
                                "type": "object",
                                "additionalProperties": {"type": "integer"},
                            },
                            "notes": {"type": "array", "items": {"type": "string"}},
                            "rematched": _COUNTS,
                        },
                    },
                },
            },
        ),
        {
            "400": _NOT_AN_OBJECT,
            "401": _NO_TOKEN,
            "404": f"no such {what}",
            "422": f"`from` is missing, names no {what}, or names this one",
        },
        ID,
    )


REVIEW_QUEUE = _get(
    "open review cases (what matching could not decide alone), the most recently active first; "
    "one case per (kind, key) with its latest items and ranked suggestions",
    [
        _param("kind", doc="unknown-sender, name-lookalike, shared-domain or shared-address"),
        *PAGING,
    ],
    "ReviewCase",
)
REVIEW_QUEUE["get"]["responses"]["400"] = {
    "description": "bad kind, limit or cursor",
    "content": _ERROR_JSON,
}
REVIEW_CASE = {
    "type": "object",
    "properties": {
        "kind": {"enum": ["unknown-sender", "name-lookalike", "shared-domain", "shared-address"]},
        "key": {"type": "string", "description": "normalised address, E.164 number or domain"},
        "name": {"type": "string", "description": "the display name the sender used"},
        "reason": {"type": "string"},
        "count": {"type": "integer", "description": "open items of this case"},
        "latest_at": {"type": "string", "format": "date-time"},
        "interactions": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {k: {} for k in ("id", "subject", "occurred_at")},
            },
        },
        "suggestions": {
            "type": "array",
            "description": "best first; score 0-100 (a signature's address or number is 100)",
            "items": {
                "type": "object",
                "properties": {
                    "account_id": {"type": ["integer", "null"]},
                    "contact_id": {
                        "type": ["integer", "null"],
                        "description": "null: create a contact at account_id",
                    },
                    "label": {"type": "string"},
                    "score": {"type": "integer"},
                    "reason": {"type": "string"},
                },
            },
        },
    },
}
SETTLE_REVIEW = _post(
    "answer a review case for every item of its key, past and future: assign "
    "the address or number to one contact (or the domain to one account) alone, create a "
    "contact with it, or ignore the key from now on; the items are attributed anew and the "
    "answer is recorded in the audit log",
    {
        "type": "object",
        "required": ["key", "settlement"],
        "properties": {
            "key": {
                "type": "string",
                "description": "an address, phone number or domain (normalised as matching does)",
            },
            "settlement": {"enum": ["assign", "create-contact", "ignore"]},
            "contact_id": {"type": "integer", "description": "assign an address or number"},
            "account_id": {"type": "integer", "description": "assign a domain; create-contact"},
            "name": {"type": "string", "description": "create-contact"},
        },
    },
    (
        "200",
        "`settled`: open questions closed; `rematched`: stored items whose attributions changed",
        {
            "type": "object",
            "properties": {"settled": {"type": "integer"}, "rematched": {"type": "integer"}},
        },
    ),
    {
        "400": _NOT_AN_OBJECT,
        "401": _NO_TOKEN,
        "422": "the answer does not fit the key; the message names the field",
    },
)


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "crmhub API", "version": "0.1.0"},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": ERROR,
            "Interaction": INTERACTION,
            "Account": {"type": "object"},
            "Quarantined": {"type": "object"},
            "ReviewCase": REVIEW_CASE,
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/health": {
            "get": {
                "summary": "liveness",
                "security": [],
                "responses": {"200": {"description": "OK"}},
            }
        },
        "/api/accounts": _get("accounts, by name", [_param("q"), *PAGING], "Account"),
        "/api/accounts/{id}": _get("one account with its contacts", ID),
        "/api/accounts/{id}/timeline": _get(
            "the account's combined timeline, newest first",
            [*ID, *TIMELINE, *PAGING],
            "Interaction",
        ),
        "/api/contacts/{id}": _get("one contact", ID),
        "/api/contacts/{id}/timeline": _get(
            "the contact's timeline", [*ID, *TIMELINE, *PAGING], "Interaction"
        ),
        "/api/interactions": _get(
            "interactions, newest first",
            [
                _param("message_id"),
                _param("connector"),
                _param("external_id"),
                _param("unmatched", kind="boolean"),
                _param("q"),
                *TIMELINE,
                *PAGING,
            ],
            "Interaction",
        ),
        "/api/interactions/{id}": _get("one interaction with its text", ID),
        "/api/attachments/{id}": _get("download an attachment", ID),
        "/api/lookup": _get(
            "who is this phone number or address (screen pop)", [_param("phone"), _param("email")]
        ),
        "/api/quarantine": _get(
            "items that could not be read, with the reason", PAGING, "Quarantined"
        ),
        "/api/messages": SEND_MESSAGE,
        "/api/interactions/{id}/attributions": CORRECT_ATTRIBUTION,
        "/api/accounts/{id}/merge": _merge("account", "domains, contacts"),
        "/api/contacts/{id}/merge": _merge("contact", "emails, phones"),
        "/api/review": REVIEW_QUEUE,
        "/api/review/settlements": SETTLE_REVIEW,
    },
}
