"""Logging in to the desk over plain HTTP (httpx), as a browser would: the login page's CSRF token, then the form."""

from __future__ import annotations

import re

import httpx

from tests.conftest import EDITOR, EDITOR_PASSWORD, Desk


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def logged_in(desk: Desk, *, password: str = EDITOR_PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=desk.url, timeout=30)
    page = client.get("/redaksjon/logg-inn")
    assert page.status_code == 200
    done = client.post("/redaksjon/logg-inn", data={"navn": EDITOR, "passord": password, "csrf": csrf_of(page.text),
                                                     "neste": "/redaksjon"})
    assert done.status_code == 303, done.text
    return client
