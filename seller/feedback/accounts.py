"""ORM rows of who may use the app and what they did: accounts, failed sign-ins, the audit log.

They live in the feedback database next to the votes (same `Base`; Alembic revision 0003). Only ids are stored: a
username, a client id, an item id; never a client's name. A password is kept only as its
argon2id hash (seller.feedback.users writes it).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from seller.feedback.models import Base, utcnow

ROLES = ("associate", "manager", "admin")


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint("role IN ('associate', 'manager', 'admin')", name="ck_accounts_role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)  # lower case, see users.USERNAME
    display_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    # None: the account signs in only through the identity provider (st.login), never locally
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # a demo account made on first run for the sample store; refused on any other client book
    sample_only: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    boutiques: Mapped[list["AccountBoutique"]] = relationship(
        cascade="all, delete-orphan", order_by="AccountBoutique.boutique", lazy="selectin")

    def __repr__(self) -> str:  # no hash: rows are safe to log
        return f"Account({self.username!r}, role={self.role!r}, disabled={self.disabled})"


class AccountBoutique(Base):
    """One boutique an account belongs to (an associate sees that boutique's clients)."""
    __tablename__ = "account_boutiques"
    __table_args__ = (UniqueConstraint("account_id", "boutique", name="uq_account_boutiques"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    boutique: Mapped[str] = mapped_column(String(100))


class SignInThrottle(Base):
    """Failed local sign-ins per username (known or not), for the lockout. Keyed by the
    username's SHA-256, so a password typed into the username field is never stored."""
    __tablename__ = "sign_in_throttle"

    username_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)  # since first_failure_at
    first_failure_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEvent(Base):
    """Who did what to which client, when: opened a client, was shown an explanation, voted..."""
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    username: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(32))  # see audit.ACTIONS
    client_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    item_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[str | None] = mapped_column(String(255), nullable=True)  # ids and codes only

    def __repr__(self) -> str:
        return f"AuditEvent({self.username!r} {self.action} client={self.client_id!r} item={self.item_id!r})"

