"""claim_waiters

Jobs waiting in the claim loop for a node slot: waiting_since, waiting_seen_at (the loop's heartbeat) and
waiting_nodes (the nodes the job could run on), so claims go to the best live waiter of a group.

Revision ID: a8b405ac068b
Revises: 8787271a327c
Create Date: 2026-11-30 02:27:45.277868
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "a8b405ac068b"
down_revision: str | Sequence[str] | None = "8787271a327c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=True)


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(_timestamp("waiting_since"))
        batch_op.add_column(_timestamp("waiting_seen_at"))
        batch_op.add_column(sa.Column("waiting_nodes", sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_waiting_seen_at"), ["waiting_seen_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_waiting_seen_at"))
        batch_op.drop_column("waiting_nodes")
        batch_op.drop_column("waiting_seen_at")
        batch_op.drop_column("waiting_since")
