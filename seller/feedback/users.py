"""Accounts: add, list, disable, set a password, and sign in with a lockout.

Passwords are hashed with argon2id (argon2-cffi's RFC 9106 low-memory profile) and never stored,
logged or echoed in clear. Five failed sign-ins for one username, known or not, lock it for 15
minutes; a sign-in is decided inside one write transaction, so threads racing on one username
cannot get past the fifth failure. The argon2 check itself runs outside any transaction.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Collection

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from seller.feedback import audit
from seller.feedback.accounts import ROLES, Account, AccountBoutique, SignInThrottle
from seller.feedback.models import utcnow
from seller.feedback.store import FeedbackStore

USERNAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
USERNAME_RULE = "1 to 64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit"
MIN_PASSWORD, MAX_PASSWORD = 8, 1024
MAX_FAILURES, LOCK_MINUTES = 5, 15
WRONG_CREDENTIALS = "Unknown username or wrong password."


class AccountError(ValueError):
    """Bad input for an account change: names the field and what is wrong; nothing was written."""


class SignInError(Exception):
    """A refused sign-in; `message` is what the person signing in is told."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.message, self.reason = message, reason  # reason: wrong | locked | disabled | sample_only


@dataclass(frozen=True)
class AccountInfo:
    """An account as the app and the CLI see it (never the hash)."""
    username: str
    display_name: str
    role: str
    boutiques: tuple[str, ...]
    disabled: bool
    sample_only: bool
    has_password: bool
    last_sign_in_at: datetime | None

    @classmethod
    def of(cls, row: Account) -> "AccountInfo":
        return cls(row.username, row.display_name, row.role, tuple(b.boutique for b in row.boutiques),
                   row.disabled, row.sample_only, row.password_hash is not None, _aware(row.last_sign_in_at))


def normalize_username(raw: str) -> str:
    username = (raw or "").strip().lower()
    if not username:
        raise AccountError("username is empty")
    if not USERNAME.fullmatch(username):
        raise AccountError(f"username {raw!r} is not allowed: use {USERNAME_RULE}")
    return username


def check_password(password: str) -> str:
    if not password:
        raise AccountError("password is empty")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password is too short: use at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"password is too long: use at most {MAX_PASSWORD} characters")
    if "\n" in password or "\r" in password:
        raise AccountError("password holds a line break: give it on one line")
    return password


def check_boutiques(role: str, boutiques: Collection[str], known: Collection[str] | None) -> list[str]:
    """Stripped, de-duplicated boutiques; each must be some client's home boutique (when `known`)."""
    names = list(dict.fromkeys(b.strip() for b in boutiques))
    if "" in names:
        raise AccountError("boutique name is empty")
    if role == "associate" and not names:
        raise AccountError("an associate needs at least one boutique (--boutique NAME)")
    if known is not None:
        unknown = [b for b in names if b not in known]
        if unknown:
            raise AccountError(f"boutique {unknown[0]!r} is no client's home boutique in this data "
                               f"(known: {', '.join(sorted(known))})")
    return names


def _aware(at: datetime | None) -> datetime | None:
    """SQLite hands back naive UTC datetimes."""
    return at.replace(tzinfo=timezone.utc) if at is not None and at.tzinfo is None else at


def _throttle_key(username: str) -> str:
    return hashlib.sha256(username.encode()).hexdigest()


class AccountDirectory:
    """The accounts of one feedback store. Database failures surface as FeedbackStoreError."""

    def __init__(self, store: FeedbackStore, clock: Callable[[], datetime] = utcnow,
                 hasher: PasswordHasher | None = None):
        self.store, self.clock = store, clock
        self.hasher = hasher or PasswordHasher()  # argon2id, RFC 9106 low-memory parameters
        self._reading = sessionmaker(store.engine)  # deferred transactions: readers do not queue
        self._decoy: str | None = None

    # -- reading --------------------------------------------------------------------------------
    def _account(self, session: Session, username: str) -> Account | None:
        return session.scalars(select(Account).where(Account.username == username)).first()

    def get(self, username: str) -> AccountInfo | None:
        try:
            with self._reading() as session:
                row = self._account(session, username)
                return AccountInfo.of(row) if row is not None else None
        except SQLAlchemyError as e:
            raise self.store._error("cannot read accounts", e) from e

    def list(self) -> list[AccountInfo]:
        try:
            with self._reading() as session:
                return [AccountInfo.of(r) for r in session.scalars(select(Account).order_by(Account.username))]
        except SQLAlchemyError as e:
            raise self.store._error("cannot read accounts", e) from e

    def count(self) -> int:
        try:
            with self._reading() as session:
                return session.scalar(select(func.count()).select_from(Account))
        except SQLAlchemyError as e:
            raise self.store._error("cannot read accounts", e) from e

    # -- changing -------------------------------------------------------------------------------
    def _write(self, doing: str, change: Callable[[Session], object]):
        try:
            with self.store.Session.begin() as session:
                return change(session)
        except IntegrityError as e:
            raise AccountError(f"{doing}: the account changed meanwhile ({getattr(e, 'orig', e)})") from e
        except SQLAlchemyError as e:
            raise self.store._error(doing, e) from e

    def add(self, username: str, role: str, boutiques: Collection[str] = (), *, password: str | None,
            display_name: str | None = None, known_boutiques: Collection[str] | None = None,
            sample_only: bool = False, actor: str = "system") -> AccountInfo:
        """A new account; password None makes one that signs in only through the identity provider.
        Every input is checked before anything is written."""
        username = normalize_username(username)
        if role not in ROLES:
            raise AccountError(f"role {role!r} is not one of {', '.join(ROLES)}")
        names = check_boutiques(role, boutiques, known_boutiques)
        display = (display_name or username).strip()
        if not display or len(display) > 100 or not display.isprintable():
            raise AccountError("display name must be 1 to 100 printable characters")
        hashed = self.hasher.hash(check_password(password)) if password is not None else None

        def insert(session: Session) -> AccountInfo:
            if self._account(session, username) is not None:
                raise AccountError(f"username {username!r} already exists")
            row = Account(username=username, display_name=display, role=role, password_hash=hashed,
                          sample_only=sample_only, created_at=self.clock(),
                          boutiques=[AccountBoutique(boutique=b) for b in names])
            session.add(row)
            audit.record(session, actor, "account_added", detail=f"{username} {role}", at=self.clock())
            session.flush()
            return AccountInfo.of(row)
        return self._write(f"cannot add account {username!r}", insert)

    def _change(self, username: str, doing: str, apply: Callable[[Account], str], actor: str) -> AccountInfo:
        username = normalize_username(username)

        def update(session: Session) -> AccountInfo:
            row = self._account(session, username)
            if row is None:
                raise AccountError(f"no account with username {username!r}")
            action = apply(row)
            audit.record(session, actor, action, detail=username, at=self.clock())
            return AccountInfo.of(row)
        return self._write(f"cannot {doing} account {username!r}", update)

    def set_disabled(self, username: str, disabled: bool = True, actor: str = "system") -> AccountInfo:
        def apply(row: Account) -> str:
            row.disabled = disabled
            return "account_disabled" if disabled else "account_enabled"
        return self._change(username, "disable" if disabled else "enable", apply, actor)

    def set_password(self, username: str, password: str, actor: str = "system") -> AccountInfo:
        hashed = self.hasher.hash(check_password(password))

        def apply(row: Account) -> str:
            row.password_hash = hashed
            return "password_set"
        return self._change(username, "set the password of", apply, actor)

    # -- signing in -----------------------------------------------------------------------------
    def _verify(self, hashed: str | None, password: str) -> bool:
        """argon2 check; an unknown user still costs one hash, so timing does not tell who exists."""
        if hashed is None:
            self._decoy = self._decoy or self.hasher.hash("not a password of anyone")
            hashed = self._decoy
            password = password + "\0"  # never matches the decoy
        try:
            return self.hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False

    def _locked_until(self, throttle: SignInThrottle | None, now: datetime) -> datetime | None:
        until = _aware(throttle.locked_until) if throttle is not None else None
        return until if until is not None and until > now else None

    def authenticate(self, username: str, password: str, serving_sample: bool) -> AccountInfo:
        """The account when the sign-in succeeds; else SignInError with the message to show.
        `serving_sample`: the app serves the shipped sample store (demo accounts work only there)."""
        try:
            username = normalize_username(username)
        except AccountError:
            raise SignInError(f"Username may hold only {USERNAME_RULE}.", "wrong") from None
        if not password:
            raise SignInError("Enter your password.", "wrong")
        key = _throttle_key(username)
        try:
            with self._reading() as session:
                row = self._account(session, username)
                hashed = row.password_hash if row is not None else None
                if until := self._locked_until(session.get(SignInThrottle, key), self.clock()):
                    raise self._locked(until)
        except SQLAlchemyError as e:
            raise self.store._error("cannot read accounts", e) from e
        matches = self._verify(hashed, password)
        outcome = self._write("cannot record the sign-in",
                              lambda session: self._decide(session, username, key, matches, serving_sample))
        if isinstance(outcome, SignInError):  # raised only now: its bookkeeping is committed
            raise outcome
        return outcome

    def _locked(self, until: datetime) -> SignInError:
        return SignInError(f"This username is locked after {MAX_FAILURES} failed sign-ins; "
                           f"try again after {until:%H:%M} UTC.", "locked")

    def _decide(self, session: Session, username: str, key: str, matches: bool,
                serving_sample: bool) -> AccountInfo | SignInError:
        """Inside the write transaction: the lock is read again here, so the outcome is serialized."""
        now = self.clock()
        # FOR UPDATE on PostgreSQL (SQLite's BEGIN IMMEDIATE already serializes writers)
        throttle = (session.get(SignInThrottle, key, with_for_update=True)
                    or SignInThrottle(username_sha256=key, failures=0))
        session.add(throttle)
        row = self._account(session, username)
        # an unknown name is not written down: it may be a password typed in the wrong field
        who = username if row is not None else "(unknown)"
        if until := self._locked_until(throttle, now):
            audit.record(session, who, "sign_in_refused", detail="locked", at=now)
            return self._locked(until)
        if row is None or not matches:
            started = _aware(throttle.first_failure_at)
            if started is None or now - started > timedelta(minutes=LOCK_MINUTES):
                throttle.failures, throttle.first_failure_at = 0, now
            throttle.failures += 1
            if throttle.failures >= MAX_FAILURES:
                throttle.failures, throttle.first_failure_at = 0, None
                throttle.locked_until = now + timedelta(minutes=LOCK_MINUTES)
            audit.record(session, who, "sign_in_failed", at=now)
            return SignInError(WRONG_CREDENTIALS, "wrong")
        if row.disabled:
            audit.record(session, username, "sign_in_refused", detail="disabled", at=now)
            return SignInError("This account is disabled; ask an administrator.", "disabled")
        if row.sample_only and not serving_sample:
            audit.record(session, username, "sign_in_refused", detail="sample_only", at=now)
            return SignInError("This demo account works only on the shipped sample store, "
                               "not on this client book.", "sample_only")
        throttle.failures, throttle.first_failure_at, throttle.locked_until = 0, None, None
        row.last_sign_in_at = now
        audit.record(session, username, "sign_in", at=now)
        return AccountInfo.of(row)
