"""client_rate_limits

A client's quota gains a submit rate (jobs per minute) and a cap on its unfinished jobs; self-registered clients
get the defaults of config.yaml auth.self_registered_quota.

Revision ID: 9c2f4e1a7d35
Revises: fc4d496a2c64
Create Date: 2026-12-08 01:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9c2f4e1a7d35"
down_revision: str | Sequence[str] | None = "fc4d496a2c64"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("jobs_per_minute", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_concurrent_jobs", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("max_concurrent_jobs")
        batch_op.drop_column("jobs_per_minute")
