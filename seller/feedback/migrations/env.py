"""Alembic's environment: migrate on the connection `seller.feedback.migrations.upgrade` passes.

No URL and no engine here: the caller owns the connection, its transaction and its lock.
"""
from alembic import context

from seller.feedback.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through seller.feedback.migrations.upgrade(conn), "
                       "not the alembic command line")
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():  # joins the caller's transaction when one is open
    context.run_migrations()
