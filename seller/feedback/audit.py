"""The audit log: who opened which client, which explanations they were shown, how they voted.

Rows carry ids only (username, client id, item id, a short code in `detail`), like the votes.
`record` writes into the caller's session, so an action and its audit row commit together.
"""
from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from seller.feedback.accounts import AuditEvent
from seller.feedback.models import utcnow
from seller.feedback.store import FeedbackStore, Vote, record_vote

ACTIONS = (
    "sign_in", "sign_in_failed", "sign_in_refused", "sign_out", "session_expired",
    "open_client", "client_refused", "explanation_shown", "vote",
    "export_audit", "export_outreach", "account_added", "account_disabled", "account_enabled",
    "password_set",
)
COLUMNS = ["at", "username", "action", "client_id", "item_id", "detail"]


def record(session: Session, username: str, action: str, *, client_id: str | None = None,
           item_id: str | None = None, detail: str | None = None, at: datetime | None = None) -> None:
    if action not in ACTIONS:
        raise ValueError(f"audit action {action!r} is not one of {', '.join(ACTIONS)}")
    session.add(AuditEvent(at=at or utcnow(), username=username, action=action, client_id=client_id,
                           item_id=item_id, detail=detail))


class AuditLog:
    """The audit table of one feedback store; failures surface as FeedbackStoreError."""

    def __init__(self, store: FeedbackStore):
        self.store = store

    def record(self, username: str, action: str, **fields) -> None:
        try:
            with self.store.Session.begin() as session:
                record(session, username, action, **fields)
        except SQLAlchemyError as e:
            raise self.store._error("cannot write the audit log", e) from e

    def record_many(self, username: str, action: str, rows: list[dict]) -> None:
        """Several rows of one action in one transaction (e.g. the explanations on one page)."""
        try:
            with self.store.Session.begin() as session:
                for fields in rows:
                    record(session, username, action, **fields)
        except SQLAlchemyError as e:
            raise self.store._error("cannot write the audit log", e) from e

    def vote(self, vote: Vote) -> None:
        """Store the vote and its audit row in one transaction: neither exists without the other."""
        try:
            with self.store.Session.begin() as session:
                record_vote(session, vote)
                record(session, vote.associate_id, "vote", client_id=vote.client_id, item_id=vote.item_id,
                       detail=f"{vote.vote:+d} {vote.style} {vote.variant} {vote.model_version}"[:255])
        except SQLAlchemyError as e:
            raise self.store._error("cannot record vote", e) from e

    def frame(self, since: datetime | None = None) -> pd.DataFrame:
        """The log, oldest first, timestamps in UTC."""
        query = select(*(getattr(AuditEvent, c) for c in COLUMNS)).order_by(AuditEvent.id)
        if since is not None:
            query = query.where(AuditEvent.at >= since)
        try:
            with self.store.engine.connect() as conn:
                rows = conn.execute(query).all()
        except SQLAlchemyError as e:
            raise self.store._error("cannot read the audit log", e) from e
        frame = pd.DataFrame(rows, columns=COLUMNS)
        frame["at"] = pd.to_datetime(frame["at"], utc=True)  # SQLite returns naive UTC
        return frame


def to_csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ").encode()
