"""The feedback database's schema history, as Alembic revisions shipped inside the package.

`upgrade(conn)` brings any database to the newest revision on the caller's connection (the store
calls it on start, inside its own transaction and lock). No alembic.ini: the configuration is built
here, pointing at this folder. A database made by the hand-written migrations that came before
(a `schema_version` table at version 1) is adopted as revision 0001 and upgraded from there.

Adding tables: declare the models on `seller.feedback.models.Base`, then add one file to versions/
(next number, `down_revision` = the current head) that creates them with `op.create_table`;
    command.revision(alembic_config(), "accounts", rev_id="0003")   # from alembic import command
writes that file from script.py.mako, to fill in. tests/test_feedback.py checks the migrated
schema matches the models on SQLite and PostgreSQL.
"""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, inspect, text

HERE = Path(__file__).resolve().parent
LEGACY_TABLE = "schema_version"  # the hand-written migrations' bookkeeping, replaced by alembic_version
LEGACY_VERSION_REVISION = {1: "0001"}  # hand-written version -> the revision holding the same schema


class SchemaError(RuntimeError):
    """The database's schema is one this code cannot bring to its newest revision."""


def alembic_config(conn: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = conn  # env.py migrates on this connection
    return config


def head() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current(conn: Connection) -> tuple[str, ...]:
    """The revision(s) the database is at; () when Alembic has never run on it."""
    return MigrationContext.configure(conn).get_current_heads()


def upgrade(conn: Connection) -> str:
    """Bring the schema on `conn` to the newest revision (inside the caller's transaction)."""
    config = alembic_config(conn)
    scripts = ScriptDirectory.from_config(config)
    at = current(conn)
    if not at:
        _adopt_legacy_schema(conn, config)
    for revision in at:
        try:
            scripts.get_revision(revision)
        except CommandError:
            raise SchemaError(f"schema revision {revision!r} is not one this code knows "
                              f"(newest here: {scripts.get_current_head()!r}); was it written by newer code?") from None
    command.upgrade(config, "head")
    return scripts.get_current_head()


def _adopt_legacy_schema(conn: Connection, config: Config) -> None:
    """Stamp a database the hand-written migrations made with the revision of the same schema."""
    if not inspect(conn).has_table(LEGACY_TABLE):
        return
    version = conn.scalar(text(f"SELECT max(version) FROM {LEGACY_TABLE}")) or 0
    if version not in LEGACY_VERSION_REVISION:
        raise SchemaError(f"schema version {version} (table {LEGACY_TABLE}) is not one this code "
                          f"knows (it knows {sorted(LEGACY_VERSION_REVISION)}); was it written by newer code?")
    command.stamp(config, LEGACY_VERSION_REVISION[version])
