"""The OpenAPI 3.1 document served at /api/openapi.json, built from the route table.

Each operation carries `x-crmhub-permission` and `x-crmhub-roles` (the roles that may use it),
so a client, and the schemathesis run in CI, know who may get an answer.
"""

from __future__ import annotations

import re
from typing import Any

from hub.policy import PERMISSIONS, Permission, Role
from hub.web.endpoints import Answer, Endpoint, Param
from hub.web.http import MAX_QUERY
from hub.web.schemas import COMPONENTS, ref

_TYPED = re.compile(r"\{(\w+):\w+\}")


def _parameter(p: Param) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": p.kind}
    if p.enum:
        schema["enum"] = list(p.enum)
    if p.minimum is not None:
        schema["minimum"] = p.minimum
    if p.maximum is not None:
        schema["maximum"] = p.maximum
    if p.format:
        schema["format"] = p.format
    if p.kind == "string" and not p.enum and p.where == "query":
        schema["maxLength"] = MAX_QUERY
    return {
        "name": p.name,
        "in": p.where,
        "required": p.where == "path" or p.required,
        "schema": schema,
        "description": p.doc,
    }


def _content(schema: str | dict[str, Any] | None, media: str) -> dict[str, Any]:
    if schema is None:
        return {media: {"schema": {"type": "string", "format": "binary"}}}
    return {media: {"schema": ref(schema) if isinstance(schema, str) else schema}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _content("Error", "application/json")}


def roles_for(permission: Permission) -> list[str]:
    return [role.value for role in Role if permission in PERMISSIONS[role]]


def operation(e: Endpoint) -> dict[str, Any]:
    ok = e.ok or Answer(200, "OK")
    responses: dict[str, Any] = {
        str(ok.status): {"description": ok.description, "content": _content(ok.schema, ok.media)}
    }
    errors = dict(e.errors)
    if e.permission is not Permission.PUBLIC:
        errors.setdefault(401, "no login session and no valid bearer token")
        if len(roles_for(e.permission)) < len(Role):
            errors.setdefault(403, "the caller's role may not do this")
    if any(p.where == "query" for p in e.params):
        errors.setdefault(400, "a bad parameter; the message names it")
    if e.body is not None:
        errors.setdefault(413, "the body is larger than 1 MB")
    for status, description in sorted(errors.items()):
        responses[str(status)] = _error(description)
    doc: dict[str, Any] = {
        "summary": e.summary,
        "operationId": f"{e.handler.__module__.rsplit('.', 1)[-1]}_{e.handler.__name__}",
        "responses": responses,
        "x-crmhub-permission": e.permission.value,
        "x-crmhub-roles": roles_for(e.permission),
    }
    if e.params:
        doc["parameters"] = [_parameter(p) for p in e.params]
    if e.body is not None:
        doc["requestBody"] = {"required": True, "content": _content(e.body, "application/json")}
    if e.permission is Permission.PUBLIC:
        doc["security"] = []
    return doc


def build(endpoints: list[Endpoint]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        if not e.api:
            continue
        path = _TYPED.sub(r"{\1}", e.path)
        for method in e.methods:
            paths.setdefault(path, {})[method.lower()] = operation(e)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "crmhub API",
            "version": "0.1.0",
            "description": "Every customer communication, attributed and on one timeline. "
            "Who may see what is decided per role and per item (DESIGN.md, Who sees what): an "
            "item the caller may not see answers 404, a role that may not act answers 403.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": COMPONENTS,
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
