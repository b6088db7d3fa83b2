"""The OpenAPI document is the route table, and real answers match its schemas.

The document is built from hub.web.app's endpoints; here it is read over HTTP as clients read
it, compared with the route table, and every answer of the authorization table
(tests/e2e/test_authorization.py) is validated against the schema documented for its
operation and status, for every role: a read model that drifts from its schema fails here.
Changes the table refuses (connector administration) are made here, and their answers checked.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from hub.policy import PERMISSIONS, Role
from hub.web.app import ENDPOINTS
from tests.e2e.privacy_site import PrivacySite, privacy_site  # noqa: F401
from tests.e2e.test_authorization import ROLES, TABLE

_TYPED = re.compile(r"\{(\w+):\w+\}")


@pytest.fixture(scope="module")
def document(privacy_site: PrivacySite) -> dict[str, Any]:  # noqa: F811
    with privacy_site.api("sales") as client:
        answer = client.get("/api/openapi.json")
    assert answer.status_code == 200
    return dict(answer.json())


def test_the_document_is_the_route_table(document: dict[str, Any]) -> None:
    api = {
        (m.lower(), _TYPED.sub(r"{\1}", e.path)): e for e in ENDPOINTS if e.api for m in e.methods
    }
    documented = {(m, p) for p, ops in document["paths"].items() for m in ops}
    assert documented == set(api)
    for (method, path), endpoint in api.items():
        operation = document["paths"][path][method]
        roles = [r.value for r in Role if endpoint.permission in PERMISSIONS[r]]
        assert operation["x-crmhub-roles"] == roles, path
        assert operation["x-crmhub-permission"] == endpoint.permission.value
        assert operation["summary"], f"{method} {path} says what it does"
        for status, response in operation["responses"].items():
            schema = response["content"]
            assert schema, (path, status)
            if status.startswith("2") and "application/json" in schema:
                assert schema["application/json"]["schema"] != {"type": "object"}, (
                    f"{method} {path}: a real response schema, not just an object"
                )


def _operation(document: dict[str, Any], method: str, route: str) -> dict[str, Any]:
    return dict(document["paths"][_TYPED.sub(r"{\1}", route)][method.lower()])


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator({**schema, "components": document["components"]})


API_CASES = [c for c in TABLE if c.route.startswith("/api/")]


@pytest.mark.parametrize("case", API_CASES, ids=lambda c: f"{c.method} {c.url}")
def test_every_answer_matches_its_documented_schema(
    case: Any,
    document: dict[str, Any],
    privacy_site: PrivacySite,  # noqa: F811
) -> None:
    operation = _operation(document, case.method, case.route)
    url = case.url.format(**vars(privacy_site.ids))
    for role in ROLES:
        with privacy_site.api(None if role == "anonymous" else role) as client:
            answer: httpx.Response = client.request(case.method, url, json=case.body)
        documented = operation["responses"].get(str(answer.status_code))
        assert documented is not None, (
            f"{case.method} {url} as {role}: {answer.status_code} is not documented"
        )
        content = documented["content"]
        kind = answer.headers.get("content-type", "").split(";")[0]
        assert kind in content or "*/*" in content, (case.method, url, role, kind)
        if kind == "application/json":
            errors = sorted(
                _validator(document, content[kind]["schema"]).iter_errors(answer.json()),
                key=str,
            )
            assert not errors, f"{case.method} {url} as {role}: {errors[0].message}"


def test_connector_administration_answers_match_their_schemas(
    document: dict[str, Any],
    privacy_site: PrivacySite,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The answers the authorization table cannot give (it refuses every change): a connector
    added, changed, tested, synced, followed and removed, over an empty mbox file."""
    empty = tmp_path / "empty.mbox"
    empty.write_bytes(b"")
    seen: list[tuple[str, str, int]] = []

    def checked(answer: httpx.Response, method: str, route: str) -> Any:
        documented = _operation(document, method, route)["responses"].get(str(answer.status_code))
        assert documented is not None, (method, route, answer.status_code, answer.text)
        schema = documented["content"]["application/json"]["schema"]
        errors = sorted(_validator(document, schema).iter_errors(answer.json()), key=str)
        assert not errors, f"{method} {route}: {errors[0].message}"
        seen.append((method, route, answer.status_code))
        return answer.json()

    new = {"kind": "mbox", "name": "schema-check", "settings": {"path": str(empty)}}
    one, sync = "/api/connectors/{name}", "/api/connectors/{name}/sync"
    with privacy_site.api("admin") as client:
        checked(client.post("/api/connectors", json=new), "POST", "/api/connectors")
        checked(client.post("/api/connectors", json=new), "POST", "/api/connectors")
        change = {"settings": {"visibility": "subject"}}
        checked(client.patch("/api/connectors/schema-check", json=change), "PATCH", one)
        tested = client.post("/api/connectors/schema-check/test")
        assert checked(tested, "POST", "/api/connectors/{name}/test")["ok"] is True
        checked(client.post("/api/connectors/schema-check/sync"), "POST", sync)
        for _ in range(300):
            progress = checked(client.get("/api/connectors/schema-check/sync"), "GET", sync)
            if progress["state"] != "running":
                break
            time.sleep(0.1)
        assert progress["state"] == "done", progress
        checked(client.get("/api/connectors"), "GET", "/api/connectors")
        checked(client.delete("/api/connectors/schema-check"), "DELETE", one)
    assert {status for *_, status in seen} == {200, 201, 202, 409}, seen
