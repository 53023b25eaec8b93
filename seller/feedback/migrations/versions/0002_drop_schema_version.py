"""Alembic owns the schema version: drop the hand-written migrations' `schema_version` table.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("schema_version"):  # only databases made before Alembic
        op.drop_table("schema_version")


def downgrade() -> None:
    pass  # nothing to restore: the version now lives in alembic_version
