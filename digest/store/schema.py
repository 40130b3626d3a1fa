"""The tables: every column the product keeps, in one place (SQLAlchemy Core)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

subscribers = sa.Table(
    "subscribers", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False, default=""),
    sa.Column("status", sa.String(20), nullable=False, default="active"),
    sa.Column("source", sa.String(200), nullable=False, default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

editions = sa.Table(
    "editions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("digest", sa.String(100), nullable=False),
    sa.Column("key", sa.String(40), nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    sa.Column("until", sa.DateTime(timezone=True), nullable=False),
    sa.Column("articles", sa.Text, nullable=False),  # JSON: the articles exactly as sent
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # The idempotency key: one edition per digest and key, whoever asks and however often.
    sa.UniqueConstraint("digest", "key", name="uq_edition_digest_key"),
)

deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("edition_id", sa.Integer, sa.ForeignKey("editions.id"), primary_key=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), primary_key=True),
    # queued → sending → sent | deferred | failed
    sa.Column("state", sa.String(20), nullable=False, default="queued"),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("code", sa.Integer, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_deliveries_state", "edition_id", "state"),
)

settings_table = sa.Table(
    "settings", metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# An edition that waits for an editor: pending → approved (by an editor or after auto_after) → sent; pending or
# held → expired when it is too late to send. `held` stops auto_after; `digest approve` still releases it.
approvals = sa.Table(
    "approvals", metadata,
    sa.Column("digest", sa.String(100), primary_key=True),
    sa.Column("key", sa.String(40), primary_key=True),
    sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("auto_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("decided_by", sa.String(20), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Scheduled runs skipped because they were later than misfire_grace: kept so each is logged once, and shown.
missed_runs = sa.Table(
    "missed_runs", metadata,
    sa.Column("digest", sa.String(100), primary_key=True),
    sa.Column("scheduled_for", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("late_seconds", sa.Integer, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)

# -- the subscriber side (issue 4): per-digest subscriptions, profiles, consent, sign-ups, suppression, bounces --

# Which digests a subscriber receives. A subscriber without any row receives every digest (as every active
# subscriber did before per-digest subscriptions existed); one who chose digests has a row per digest.
subscriptions = sa.Table(
    "subscriptions", metadata,
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), primary_key=True),
    sa.Column("digest", sa.String(100), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

profiles = sa.Table(
    "profiles", metadata,
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), primary_key=True),
    sa.Column("municipality", sa.String(100), nullable=False, default=""),
    sa.Column("topics", sa.Text, nullable=False, default="[]"),  # JSON list of topic keys
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# The proof of consent (GDPR art. 7): when, for which digests, from which form or import, and the words agreed to;
# withdrawals are kept beside it.
consents = sa.Table(
    "consents", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False, index=True),
    sa.Column("event", sa.String(20), nullable=False),  # consent | withdrawal
    sa.Column("digests", sa.Text, nullable=False),      # JSON list
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("text", sa.Text, nullable=False, default=""),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

pending_signups = sa.Table(
    "pending_signups", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False, default=""),
    sa.Column("municipality", sa.String(100), nullable=False, default=""),
    sa.Column("topics", sa.Text, nullable=False, default="[]"),
    sa.Column("digests", sa.Text, nullable=False),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("consent_text", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
)

# Addresses never to be mailed again, as salted hashes: a forgotten address leaves nothing readable behind.
suppressions = sa.Table(
    "suppressions", metadata,
    sa.Column("email_hash", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(20), nullable=False),  # unsubscribed | bounced | complained | forgotten
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

bounce_counters = sa.Table(
    "bounce_counters", metadata,
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), primary_key=True),
    sa.Column("soft_in_row", sa.Integer, nullable=False, default=0),
    sa.Column("soft_total", sa.Integer, nullable=False, default=0),
    sa.Column("hard_total", sa.Integer, nullable=False, default=0),
    sa.Column("last_soft_message", sa.String(300), nullable=False, default=""),
    sa.Column("last_soft_edition_id", sa.Integer, nullable=True),
    sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
)

# -- web sources --------------------------------------------------------------------------------------------------
http_cache = sa.Table(
    "http_cache", metadata,
    sa.Column("url", sa.String(2000), primary_key=True),
    sa.Column("final_url", sa.String(2000), nullable=False),
    sa.Column("etag", sa.String(500), nullable=True),
    sa.Column("last_modified", sa.String(100), nullable=True),
    sa.Column("content_type", sa.String(200), nullable=True),
    # The body is kept so that a 304 can still yield the articles (a preview may have fetched the feed first).
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
)

seen_articles = sa.Table(
    "seen_articles", metadata,
    sa.Column("url", sa.String(2000), primary_key=True),  # the canonical URL
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
)

# Editors of the desk: a name and a salted scrypt hash (digest/editors.py), never the password itself.
editors = sa.Table(
    "editors", metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("password_hash", sa.String(300), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


# -- stored editions before they are sent (issue 10) ---------------------------------------------------------------
# A draft is made once per digest and key; it freezes the articles, their order, the subject and the preheader.
# Sending copies its articles into `editions` (which keeps the ledger); the draft stays, with the editors' words.
drafts = sa.Table(
    "drafts", metadata,
    sa.Column("digest", sa.String(100), primary_key=True),
    sa.Column("key", sa.String(40), primary_key=True),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    sa.Column("until", sa.DateTime(timezone=True), nullable=False),
    sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True),
    sa.Column("articles", sa.Text, nullable=False),  # JSON, in the order they go out
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("preheader", sa.Text, nullable=False),
    sa.Column("introduction", sa.Text, nullable=False, default=""),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("stop_reason", sa.Text, nullable=True),
    sa.Column("collected_at", sa.DateTime(timezone=True), nullable=False),  # made or last refreshed
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

draft_changes = sa.Table(
    "draft_changes", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("digest", sa.String(100), nullable=False),
    sa.Column("key", sa.String(40), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("editor", sa.String(100), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("detail", sa.Text, nullable=False, default=""),
    sa.Index("ix_draft_changes_edition", "digest", "key"),
)
