"""The feedback store against real SQLite files: upsert, concurrency, crash safety, bad DBs."""
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from seller.feedback.store import FeedbackStore, FeedbackStoreError, Vote, resolve_url


def make_vote(**overrides) -> Vote:
    fields = dict(associate_id="A01", client_id="C001", item_id="I0001", style="feature",
                  variant="feature", explanation="Echoes the gold hardware she tried on.",
                  model_version="m1", vote=1, latency_ms=812.5)
    return Vote(**(fields | overrides))


@pytest.fixture
def store(tmp_path):
    s = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    yield s
    s.dispose()


def test_upsert_keeps_one_row_per_associate_and_explanation(store, tmp_path):
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

    # the rows are in the file: a fresh store (new engine) reads them and the schema version
    again = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    assert again.count() == 4
    with again.engine.connect() as conn:
        assert conn.scalar(text("SELECT max(version) FROM schema_version")) == 1
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


def test_killed_writer_loses_no_committed_vote(tmp_path):
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
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


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "feedback.db"
    FeedbackStore(f"sqlite:///{path}").dispose()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (99, '2030-01-01')")
    with pytest.raises(FeedbackStoreError, match="schema version 99"):
        FeedbackStore(f"sqlite:///{path}")
