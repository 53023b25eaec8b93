"""The feedback store against real SQLite files and a real PostgreSQL server: upsert,
concurrency, crash safety, schema migrations, bad DBs. Tests taking `db_url` run on both."""
import importlib
import os
import pkgutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import DateTime, Integer, column, create_engine, insert, table, text

import seller.feedback
from seller.feedback import migrations
from seller.feedback.models import Base
from seller.feedback.store import FeedbackStore, FeedbackStoreError, Vote, resolve_url


def make_vote(**overrides) -> Vote:
    fields = dict(associate_id="A01", client_id="C001", item_id="I0001", style="feature",
                  variant="feature", explanation="Echoes the gold hardware she tried on.",
                  model_version="m1", vote=1, latency_ms=812.5)
    return Vote(**(fields | overrides))


@pytest.fixture
def store(db_url):
    s = FeedbackStore(db_url)
    yield s
    s.dispose()


def test_upsert_keeps_one_row_per_associate_and_explanation(store, db_url):
    store.vote(make_vote(vote=1))
    first = store.votes().iloc[0]
    store.vote(make_vote(vote=-1, variant="manual", latency_ms=640.0))  # changed mind
    frame = store.votes()
    assert len(frame) == 1
    row = frame.iloc[0]
    assert (row.vote, row.variant, row.latency_ms) == (-1, "manual", 640.0)
    assert row.created_at == first.created_at and row.updated_at >= first.updated_at
    assert str(row.created_at.tz) == "UTC"

    store.vote(make_vote(style="occasion"))  # another explanation of the same item
    store.vote(make_vote(associate_id="A02"))  # another associate
    store.vote(make_vote(model_version="m2"))  # the same item explained by a newer model
    assert store.count() == 4

    # the rows are in the database: a fresh store (new engine) reads them and the schema revision
    again = FeedbackStore(db_url)
    assert again.count() == 4
    with again.engine.connect() as conn:
        assert migrations.current(conn) == (migrations.head(),)
        if conn.dialect.name == "sqlite":
            assert conn.scalar(text("PRAGMA journal_mode")) == "wal"
        assert "Echoes" in conn.scalar(text("SELECT explanation FROM feedback LIMIT 1"))
    again.dispose()


def test_vote_validation_names_the_field():
    with pytest.raises(ValueError, match="Vote.vote must be"):
        make_vote(vote=0)
    with pytest.raises(ValueError, match="Vote.client_id"):
        make_vote(client_id=" ")


def test_url_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("SELLER_DB_URL", raising=False)
    monkeypatch.setenv("SELLER_DB_PATH", str(tmp_path / "x.db"))
    assert resolve_url() == f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.setenv("SELLER_DB_URL", "postgresql://u:p@h/db")
    assert resolve_url() == "postgresql://u:p@h/db"
    assert resolve_url("sqlite://") == "sqlite://"
    monkeypatch.delenv("SELLER_DB_URL")
    monkeypatch.delenv("SELLER_DB_PATH")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_url() == f"sqlite:///{tmp_path / 'xdg' / 'seller' / 'feedback.db'}"


def test_eight_threads_of_250_votes_make_exactly_2000_rows(store):
    errors = []

    def writer(t):
        try:
            for i in range(250):
                store.vote(make_vote(associate_id=f"A{t}", item_id=f"I{i:04d}", vote=1 if i % 3 else -1))
        except Exception as e:  # surfaced below: a thread's exception would otherwise vanish
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert store.count() == 2000
    frame = store.votes()
    assert frame.groupby("associate_id").size().to_dict() == {f"A{t}": 250 for t in range(8)}
    assert (frame.vote == -1).sum() == 8 * 84  # i % 3 == 0 for 84 of 0..249


WRITER = textwrap.dedent("""
    import sys
    from seller.feedback.store import FeedbackStore, Vote
    store = FeedbackStore(sys.argv[1])
    for i in range(100000):
        store.vote(Vote(associate_id="A01", client_id="C001", item_id=f"I{i:06d}", style="feature",
                        variant="feature", explanation="x" * 200, model_version="m1", vote=1))
        print(i, flush=True)  # printed only after the commit returned
""")


def test_killed_writer_loses_no_committed_vote(db_url):
    url = db_url
    FeedbackStore(url).dispose()  # schema exists before the writer starts
    proc = subprocess.Popen([sys.executable, "-c", WRITER, url], stdout=subprocess.PIPE, text=True)
    committed = []
    try:
        for line in proc.stdout:
            committed.append(int(line))
            if len(committed) >= 300:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: it is writing the next votes
        proc.wait()
        proc.stdout.close()
    assert len(committed) == 300, "writer died before committing 300 votes"
    store = FeedbackStore(url)
    if store.url.get_backend_name() == "sqlite":
        with store.engine.connect() as conn:
            assert conn.scalar(text("PRAGMA integrity_check")) == "ok"
    stored = set(store.votes().item_id)
    assert {f"I{i:06d}" for i in committed} <= stored
    assert len(stored) >= 300
    store.dispose()


def test_unopenable_path_raises_store_error_naming_it(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(FeedbackStoreError, match="not_a_dir"):
        FeedbackStore(f"sqlite:///{blocker / 'feedback.db'}")


def test_read_only_database_raises_store_error(tmp_path):
    path = tmp_path / "feedback.db"
    FeedbackStore(f"sqlite:///{path}").dispose()
    # SQLite's own read-only mode: effective even as root, where chmod does not stop writes
    ro = f"sqlite:///file:{path}?mode=ro&uri=true"
    with pytest.raises(FeedbackStoreError, match=r"feedback\.db.*readonly|readonly.*feedback\.db"):
        FeedbackStore(ro).vote(make_vote())


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_unwritable_file_raises_store_error(tmp_path):
    path = tmp_path / "feedback.db"
    FeedbackStore(f"sqlite:///{path}").dispose()
    for p in tmp_path.iterdir():
        p.chmod(0o444)
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(FeedbackStoreError, match="feedback.db"):
            FeedbackStore(f"sqlite:///{path}").vote(make_vote())
    finally:
        tmp_path.chmod(0o755)


def test_locked_database_raises_store_error_after_busy_timeout(tmp_path):
    path = tmp_path / "feedback.db"
    store = FeedbackStore(f"sqlite:///{path}", busy_timeout_s=0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
    try:
        with pytest.raises(FeedbackStoreError, match="locked"):
            store.vote(make_vote())
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.vote(make_vote())  # the lock is gone: writes work again
    assert store.count() == 1
    store.dispose()


def test_newer_revision_is_refused(db_url):
    FeedbackStore(db_url).dispose()
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(FeedbackStoreError, match="revision '9999' is not one this code knows"):
        FeedbackStore(db_url)


# The schema exactly as the hand-written migrations (before Alembic) created it, per dialect.
LEGACY_DDL = """
CREATE TABLE schema_version (
    version {serial} NOT NULL, applied_at {timestamp} NOT NULL, PRIMARY KEY (version));
CREATE TABLE feedback (
    id {serial} NOT NULL, associate_id VARCHAR(64) NOT NULL, client_id VARCHAR(64) NOT NULL,
    item_id VARCHAR(64) NOT NULL, style VARCHAR(32) NOT NULL, variant VARCHAR(64) NOT NULL,
    explanation TEXT NOT NULL, model_version VARCHAR(128) NOT NULL, latency_ms FLOAT,
    vote INTEGER NOT NULL, created_at {timestamp} NOT NULL, updated_at {timestamp} NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_feedback_vote UNIQUE (associate_id, client_id, item_id, style, model_version),
    CONSTRAINT ck_feedback_vote CHECK (vote IN (-1, 1)));
CREATE INDEX ix_feedback_client_id ON feedback (client_id);
CREATE INDEX ix_feedback_associate_id ON feedback (associate_id);
CREATE INDEX ix_feedback_variant ON feedback (variant)
"""
LEGACY_TYPES = {"sqlite": dict(serial="INTEGER", timestamp="DATETIME"),
                "postgresql": dict(serial="SERIAL", timestamp="TIMESTAMP WITH TIME ZONE")}


def make_legacy_database(url: str, schema_version: int, n_votes: int) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        for statement in LEGACY_DDL.format(**LEGACY_TYPES[conn.dialect.name]).split(";"):
            conn.execute(text(statement))
        # rows go in through SQLAlchemy's column types, so they are stored as the old code stored them
        conn.execute(insert(table("schema_version", column("version", Integer),
                                  column("applied_at", DateTime(timezone=True)))),
                     {"version": schema_version, "applied_at": datetime(2026, 11, 2, tzinfo=timezone.utc)})
        feedback = table("feedback", *(column(name) for name in (
            "associate_id", "client_id", "item_id", "style", "variant", "explanation", "model_version", "vote")),
            column("created_at", DateTime(timezone=True)), column("updated_at", DateTime(timezone=True)))
        conn.execute(insert(feedback), [
            {"associate_id": f"A{n % 3}", "client_id": "C001", "item_id": f"I{n:04d}", "style": "feature",
             "variant": "feature", "explanation": "Echoes her gold tote.", "model_version": "m1",
             "vote": 1 if n % 4 else -1, "created_at": datetime(2026, 11, 3, 10, n % 60, tzinfo=timezone.utc),
             "updated_at": datetime(2026, 11, 3, 10, n % 60, tzinfo=timezone.utc)} for n in range(n_votes)])
    engine.dispose()


def test_upgrade_from_the_hand_written_schema_keeps_every_vote(db_url):
    make_legacy_database(db_url, schema_version=1, n_votes=40)
    store = FeedbackStore(db_url)
    frame = store.votes()
    assert len(frame) == 40 and (frame.vote == -1).sum() == 10
    assert sorted(frame.item_id) == [f"I{n:04d}" for n in range(40)]
    assert frame.created_at.min() == datetime(2026, 11, 3, 10, 0, tzinfo=timezone.utc)
    with store.engine.connect() as conn:
        assert migrations.current(conn) == (migrations.head(),)
        assert not conn.dialect.has_table(conn, migrations.LEGACY_TABLE)
    # the upgraded table still upserts on the old key and numbers new rows after the old ones
    store.vote(make_vote(associate_id="A1", item_id="I0001", vote=-1))
    store.vote(make_vote(associate_id="A9"))
    frame = store.votes()
    assert len(frame) == 41 and frame.id.is_unique
    assert frame.set_index(["associate_id", "item_id"]).loc[("A1", "I0001"), "vote"] == -1
    store.dispose()
    FeedbackStore(db_url).dispose()  # a second start on the upgraded database changes nothing


def test_newer_hand_written_schema_is_refused(db_url):
    make_legacy_database(db_url, schema_version=99, n_votes=1)
    with pytest.raises(FeedbackStoreError, match="schema version 99"):
        FeedbackStore(db_url)


def test_migrated_schema_matches_the_models(db_url):
    # every model module of seller.feedback, so tables added there without a revision show up
    for module in pkgutil.iter_modules(seller.feedback.__path__, "seller.feedback."):
        importlib.import_module(module.name)
    store = FeedbackStore(db_url)
    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    store.dispose()
    assert differences == [], ("the models and seller/feedback/migrations/versions/ disagree: "
                               f"add a revision for {differences}")


def test_replicas_starting_together_migrate_once(db_url):
    stores, errors = [], []

    def start():
        try:
            stores.append(FeedbackStore(db_url))
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    stores[0].vote(make_vote())
    assert [s.count() for s in stores] == [1] * 4
    with stores[0].engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    for s in stores:
        s.dispose()
