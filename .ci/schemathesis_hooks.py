"""Schemathesis hooks for crmhub's CI run (.ci/schemathesis.py): the authorisation check.

Loaded by the schemathesis CLI of its own virtual environment through `SCHEMATHESIS_HOOKS`, so
it imports nothing of crmhub. The built-in `not_a_server_error` check catches 5xx; this one
catches what schemathesis cannot know by itself: a 2xx that the caller had no right to. Who may
use an operation is read from the document itself (`x-crmhub-roles`, and `security: []` on
public operations), so the check follows the route table without a list of its own.

The run tells it whose token it carries, in `CI_SCHEMATHESIS_ROLE` and `CI_SCHEMATHESIS_TOKEN`
(both unset for the run without a token). A request counts as that role's only when it really
carried that token: schemathesis also sends requests with the header dropped, emptied or made
up, and those are anonymous.

It also counts the answers by caller and status class and writes them to the JSON file named by
`CI_SCHEMATHESIS_TALLY` at the end of the run, so that the CI script can tell a run that proved
something (the token got 2xx answers) from one that only ever saw 401.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import schemathesis

ANONYMOUS = "no token"


def _caller(request: Any) -> str:
    """The role whose token the request carried, or ANONYMOUS for none or another one."""
    token = os.environ.get("CI_SCHEMATHESIS_TOKEN", "")
    role = os.environ.get("CI_SCHEMATHESIS_ROLE", "")
    sent = request.headers.get("Authorization", "") if request is not None else ""
    if token and role and sent == f"Bearer {token}":
        return role
    return ANONYMOUS


@schemathesis.check
class NoUnauthorisedSuccess:
    """A 2xx is a failure when the caller had no valid token and the operation is not public,
    or when the operation's `x-crmhub-roles` does not include the caller's role."""

    def __init__(self) -> None:
        self.answers: Counter[tuple[str, str]] = Counter()  # (caller, "2xx"...) -> responses
        self.allowed: set[str] = set()  # non-public operations that answered 2xx to the token
        self.lock = threading.Lock()

    def after_response(self, ctx: Any, response: Any, case: Any) -> None:
        caller = _caller(response.request)
        status = response.status_code
        label = case.operation.label
        operation: dict[str, Any] = case.operation.definition.raw
        public = operation.get("security") == []
        with self.lock:
            self.answers[caller, f"{status // 100}xx"] += 1
            if 200 <= status < 300 and caller != ANONYMOUS and not public:
                self.allowed.add(label)
        if not 200 <= status < 300 or public:
            return
        if caller == ANONYMOUS:
            raise AssertionError(
                f"{label} answered {status} to a request without a valid token; "
                "it is not a public operation, so it must answer 401"
            )
        roles = operation.get("x-crmhub-roles")
        if not isinstance(roles, list):
            raise AssertionError(f"{label} declares no x-crmhub-roles, so no role may use it")
        if caller not in roles:
            raise AssertionError(
                f"{label} answered {status} to the {caller} role; "
                f"its x-crmhub-roles allow only {', '.join(roles) or 'nobody'}"
            )

    def after_run(self, ctx: Any) -> None:
        target = os.environ.get("CI_SCHEMATHESIS_TALLY")
        if not target:
            return
        tally: dict[str, Any] = {
            "answers": {f"{caller} {status}": n for (caller, status), n in self.answers.items()},
            "allowed": sorted(self.allowed),
        }
        Path(target).write_text(json.dumps(tally, indent=1), encoding="utf-8")
