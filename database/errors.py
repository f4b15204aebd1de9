"""Errors raised by the database layer: a small hierarchy callers can catch as one."""

from __future__ import annotations


class DatabaseLayerError(Exception):
    """Base of every error this package raises on purpose."""


class JobNotFoundError(DatabaseLayerError, LookupError):
    """No ledger row has this job id."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class MigrationError(DatabaseLayerError):
    """A migration failed; it was not recorded as applied."""

    def __init__(self, database: str, revision: str | None, cause: BaseException) -> None:
        where = f"revision {revision}" if revision else "migration"
        super().__init__(f"{database} database: {where} failed: {cause}")
        self.database = database
        self.revision = revision
        self.cause = cause
