"""The web app: one-click unsubscribe, sign-up with double opt-in and preferences (later: editors' desk, archive)."""

from __future__ import annotations

from digest.web.app import create_app

__all__ = ["create_app"]
