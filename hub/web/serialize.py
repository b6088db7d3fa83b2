"""Rows -> the JSON shapes of the public API (DESIGN.md)."""

from __future__ import annotations

from typing import Any

from storage.tables import AccountRow, ContactRow, InteractionRow, QuarantineRow


def account_json(row: AccountRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "domains": [d.domain for d in row.domains],
        "owner": row.owner,
    }


def contact_json(row: ContactRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "account_id": row.account_id,
        "emails": [e.address for e in row.emails],
        "phones": [p.e164 for p in row.phones],
        "owner": row.owner,
    }


def interaction_json(row: InteractionRow, *, full: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": row.id,
        "channel": row.channel,
        "direction": row.direction,
        "occurred_at": row.occurred_at.isoformat(),
        "subject": row.subject,
        "snippet": row.snippet,
        "participants": [
            {
                "role": p.role,
                "kind": p.kind,
                "address": p.address,
                "name": p.name,
                "contact_id": p.contact_id,
            }
            for p in row.participants
        ],
        "attributions": [
            {
                "account_id": a.account_id,
                "contact_id": a.contact_id,
                "rule": a.rule,
                "confidence": a.confidence,
                "manual": a.manual,
                "explanation": a.explanation,
            }
            for a in row.attributions
            if not a.removed
        ],
        "sources": [{"connector": s.connector, "external_id": s.external_id} for s in row.sources],
        "message_id": row.message_id,
        "thread_id": row.thread_id,
        "not_logged": row.not_logged,
        "duration_seconds": row.duration_seconds,
        "attachments": [
            {
                "id": a.id,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "downloadable": a.blob_id is not None,
            }
            for a in row.attachments
        ],
    }
    if full:
        doc["body_text"] = row.body_text
    return doc


def quarantine_json(row: QuarantineRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "connector": row.connector,
        "external_id": row.external_id,
        "reason": row.reason,
        "created_at": row.created_at.isoformat(),
    }
