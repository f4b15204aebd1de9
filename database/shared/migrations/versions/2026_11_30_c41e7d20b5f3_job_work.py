"""job_work

jobs.work: the job's size (the sampler steps its graph runs), recorded at submit so least_loaded can weigh the
work still waiting in a group against the work a node has ahead of it.

Revision ID: c41e7d20b5f3
Revises: a8b405ac068b
Create Date: 2026-11-30 08:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c41e7d20b5f3"
down_revision: str | Sequence[str] | None = "a8b405ac068b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("work", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("work")
