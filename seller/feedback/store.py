"""The feedback store: an SQLAlchemy engine, Alembic migrations on start, and the vote upsert.

Where the data lives, in order of precedence:
  1. an explicit URL passed to `FeedbackStore(url)`,
  2. env `SELLER_DB_URL`: any SQLAlchemy URL (e.g. postgresql://host/seller, served by psycopg 3),
  3. env `SELLER_DB_PATH`: a SQLite file path,
  4. `$XDG_DATA_HOME/seller/feedback.db` (default `~/.local/share/seller/feedback.db`): outside
     the repository so votes survive a fresh checkout and never end up in git.
SQLite runs in WAL mode (readers never block the one writer) with a busy timeout, and every
write transaction starts with BEGIN IMMEDIATE so concurrent writers queue on the lock instead of
failing on a read-to-write upgrade. Any database failure surfaces as `FeedbackStoreError` naming
the database and the cause; rows and messages carry ids only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from seller import settings
from seller.feedback import migrations
from seller.feedback.models import VOTE_KEY, Feedback, utcnow

MIGRATION_LOCK_KEY = 0x5E11E7  # PostgreSQL advisory lock id: one store migrates at a time


class FeedbackStoreError(RuntimeError):
    """The feedback database cannot be opened, migrated, read or written."""


def resolve_url(url: str | None = None) -> str:
    """`url`, else SELLER_DB_URL, else the SQLite file of SELLER_DB_PATH (seller.settings)."""
    return url or settings.db_url() or f"sqlite:///{settings.db_path()}"


@dataclass(frozen=True)
class Vote:
    """One associate's thumbs up (+1) or down (-1) on one explanation."""
    associate_id: str
    client_id: str
    item_id: str
    style: str
    variant: str
    explanation: str
    model_version: str
    vote: int
    latency_ms: float | None = None

    def __post_init__(self):
        for name in VOTE_KEY + ("variant",):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"Vote.{name} must be a non-empty string, got {getattr(self, name)!r}")
        if self.vote not in (1, -1):
            raise ValueError(f"Vote.vote must be +1 or -1, got {self.vote!r}")


# Backends with INSERT .. ON CONFLICT DO UPDATE: the upsert is one atomic statement.
_UPSERT_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def record_vote(session: Session, vote: Vote) -> None:
    """Insert the vote, or update it when this associate already voted on this explanation."""
    row = asdict(vote) | {"created_at": utcnow(), "updated_at": utcnow()}
    insert = _UPSERT_INSERTS.get(session.get_bind().dialect.name)
    if insert is not None:
        stmt = insert(Feedback).values(**row)
        changed = {k: stmt.excluded[k] for k in ("variant", "explanation", "latency_ms", "vote", "updated_at")}
        session.execute(stmt.on_conflict_do_update(index_elements=list(VOTE_KEY), set_=changed))
        return
    # other backends: read-then-write inside the caller's transaction
    existing = session.scalars(select(Feedback).filter_by(**{k: row[k] for k in VOTE_KEY})).first()
    if existing is None:
        session.add(Feedback(**row))
    else:
        for key in ("variant", "explanation", "latency_ms", "vote", "updated_at"):
            setattr(existing, key, row[key])


def _with_driver(url: URL) -> URL:
    """A bare postgresql:// means psycopg 3, the driver installed with seller (not psycopg2)."""
    return url.set(drivername="postgresql+psycopg") if url.drivername == "postgresql" else url


class FeedbackStore:
    def __init__(self, url: str | None = None, busy_timeout_s: float = 5.0):
        # busy_timeout_s: a vote commit takes milliseconds, so 5 s rides out other writers yet
        # still reports a lock held by a stuck process as an error instead of hanging the page.
        self.url = _with_driver(make_url(resolve_url(url)))
        self.where = self._describe()
        try:
            self.engine = self._create_engine(busy_timeout_s)
            self.Session = sessionmaker(self.engine.execution_options(sqlite_begin="IMMEDIATE"))
            self.migrate()
        except (SQLAlchemyError, OSError) as e:
            raise self._error("cannot open", e) from e

    def _describe(self) -> str:
        if self.url.get_backend_name() == "sqlite":
            return f"SQLite file {self.url.database or ':memory:'}"
        return self.url.render_as_string(hide_password=True)

    def _error(self, doing: str, e: Exception) -> FeedbackStoreError:
        cause = getattr(e, "orig", None) or e
        return FeedbackStoreError(f"feedback database ({self.where}): {doing}: {cause}")

    def _create_engine(self, busy_timeout_s: float) -> Engine:
        if self.url.get_backend_name() != "sqlite":
            return create_engine(self.url, pool_pre_ping=True)
        if self.url.database and self.url.database != ":memory:" and not self.url.query.get("uri"):
            folder = Path(self.url.database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise FeedbackStoreError(f"feedback database ({self.where}): cannot create its folder "
                                         f"{folder}: {e.strerror}") from e
        engine = create_engine(self.url, connect_args={"timeout": busy_timeout_s})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            cur.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a committed vote survives the process being killed; only an
            # OS crash or power cut can drop the last commits, an acceptable risk for feedback.
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('sqlite_begin', '')}")

        return engine

    def migrate(self) -> str:
        """Bring the schema to the newest Alembic revision; returns that revision.

        Replicas starting together take turns: SQLite's BEGIN IMMEDIATE holds the write lock,
        PostgreSQL an advisory lock held until the transaction ends (its DDL is transactional).
        """
        with self.engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            try:
                return migrations.upgrade(conn)
            except migrations.SchemaError as e:
                raise FeedbackStoreError(f"feedback database ({self.where}): {e}") from None

    def vote(self, vote: Vote) -> None:
        try:
            with self.Session.begin() as session:
                record_vote(session, vote)
        except SQLAlchemyError as e:
            raise self._error("cannot record vote", e) from e

    def count(self) -> int:
        try:
            with self.engine.connect() as conn:
                return conn.scalar(select(func.count()).select_from(Feedback))
        except SQLAlchemyError as e:
            raise self._error("cannot read votes", e) from e

    def votes_of(self, associate_id: str, client_id: str) -> dict[tuple[str, str, str], int]:
        """This associate's current votes on this client's explanations: (item, style, model) -> vote."""
        query = (select(Feedback.item_id, Feedback.style, Feedback.model_version, Feedback.vote)
                 .where(Feedback.associate_id == associate_id, Feedback.client_id == client_id))
        try:
            with self.engine.connect() as conn:
                return {(i, s, m): v for i, s, m, v in conn.execute(query)}
        except SQLAlchemyError as e:
            raise self._error("cannot read votes", e) from e

    def votes(self) -> pd.DataFrame:
        """All votes as a frame (one row per associate and explanation), timestamps in UTC."""
        columns = [c.name for c in Feedback.__table__.columns]
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(select(Feedback.__table__).order_by(Feedback.id)).all()
        except SQLAlchemyError as e:
            raise self._error("cannot read votes", e) from e
        frame = pd.DataFrame(rows, columns=columns)
        for col in ("created_at", "updated_at"):
            frame[col] = pd.to_datetime(frame[col], utc=True)  # SQLite returns naive UTC
        return frame

    def dispose(self) -> None:
        self.engine.dispose()
