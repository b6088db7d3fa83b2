"""Rows for inserting straight into the tables, for tests of the read side that need more
items than going through ingest would make worth its time (plans, paging)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def item_row(n: int, at: datetime, channel: str = "email", subject: str = "") -> dict[str, Any]:
    """Interaction `n` at `at`, with every column ingest would fill."""
    return {
        "id": n,
        "dedupe_key": f"k{n}",
        "channel": channel,
        "direction": "inbound",
        "occurred_at": at,
        "subject": subject,
        "snippet": "",
        "not_logged": "",
        "in_reply_to": [],
        "references": [],
        "extra": {},
    }


def link_row(
    n: int, at: datetime, account: int, contact: int | None, removed: bool = False
) -> dict[str, Any]:
    """An attribution of item `n` (at `at`) to `account` and `contact`; `removed`: a tombstone."""
    return {
        "interaction_id": n,
        "account_id": account,
        "contact_id": contact,
        "rule": "email",
        "confidence": 1.0,
        "explanation": "",
        "manual": removed,
        "removed": removed,
        "occurred_at": at,
    }


def review_row(n: int, at: datetime, key: str, opened_at: datetime) -> dict[str, Any]:
    """An open unknown-sender question about item `n` (at `at`) and `key`."""
    return {
        "interaction_id": n,
        "kind": "unknown-sender",
        "key": key,
        "name": "",
        "reason": "",
        "candidates": [],
        "opened_at": opened_at,
        "settlement": "",
        "occurred_at": at,
    }
