"""Logging a test's HTTP client in the way a browser does: fetch the form, send its token back."""

from __future__ import annotations

import re

import httpx

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def login(client: httpx.Client, email: str, password: str) -> httpx.Response:
    form = client.get("/login")
    data = {"email": email, "password": password, "csrf": csrf_of(form.text)}
    return client.post("/login", data=data)


async def login_async(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    form = await client.get("/login")
    data = {"email": email, "password": password, "csrf": csrf_of(form.text)}
    return await client.post("/login", data=data)
