"""ORM rows of the feedback store: one associate's vote on one generated explanation.

An explanation is identified by what produced it: (client, item, style, model version). The app
caches explanations under exactly that key, so the text an associate voted on is the text that
key stands for; a second vote on the same explanation by the same associate updates the row
instead of adding one. Only ids are stored, never client names. The tables themselves are made
by the Alembic revisions in seller/feedback/migrations/versions/ (one per schema change).
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import CheckConstraint, DateTime, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# The one-vote-per-associate-and-explanation key, shared by the constraint and the upsert.
VOTE_KEY = ("associate_id", "client_id", "item_id", "style", "model_version")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint(*VOTE_KEY, name="uq_feedback_vote"),
        CheckConstraint("vote IN (-1, 1)", name="ck_feedback_vote"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    associate_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    item_id: Mapped[str] = mapped_column(String(64))
    style: Mapped[str] = mapped_column(String(32))  # feature | style | occasion
    variant: Mapped[str] = mapped_column(String(64), index=True)  # experiment arm the style came from
    explanation: Mapped[str] = mapped_column(Text)
    model_version: Mapped[str] = mapped_column(String(128))
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)  # generation time
    vote: Mapped[int] = mapped_column(Integer)  # +1 thumbs up, -1 thumbs down
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def __repr__(self) -> str:  # ids only: rows are safe to log
        return (f"Feedback(associate={self.associate_id!r}, client={self.client_id!r}, "
                f"item={self.item_id!r}, style={self.style!r}, vote={self.vote:+d})")

