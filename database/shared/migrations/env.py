"""Alembic environment of the shared database: the shared body in database.alembic_env."""

from database.alembic_env import run
from database.enums import DatabaseName

run(DatabaseName.SHARED)
