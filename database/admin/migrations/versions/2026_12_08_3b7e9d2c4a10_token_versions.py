"""token_versions

Admin users carry a token version (every token names it; disable, enable, role and password changes bump it),
and a registered node keeps the hash of its own token (re-registration and heartbeats need it or an operator).

Revision ID: 3b7e9d2c4a10
Revises: 7058317fcb24
Create Date: 2026-12-08 01:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3b7e9d2c4a10"
down_revision: str | Sequence[str] | None = "7058317fcb24"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("admin_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_version", sa.Integer(), server_default="1", nullable=False))
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.drop_column("token_hash")
    with op.batch_alter_table("admin_users", schema=None) as batch_op:
        batch_op.drop_column("token_version")
