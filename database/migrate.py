"""Migrations of the three databases: create, upgrade, report and author Alembic revisions, no alembic.ini."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TypedDict

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from database.alembic_env import migration_engine, version_table
from database.engine import database_url, reset_engines
from database.enums import DatabaseName
from database.errors import MigrationError

PACKAGE_DIR = Path(__file__).resolve().parent
ScriptLocations = Mapping[DatabaseName, Path]


class MigrationStatus(TypedDict):
    """Where one database stands against its migration history."""

    database: str
    url: str  # password hidden
    current: str | None
    head: str | None
    pending: list[str]  # oldest first
    ok: bool  # reachable and at head
    error: str | None


def script_location(name: DatabaseName) -> Path:
    """The packaged Alembic folder of database `name`."""
    return PACKAGE_DIR / name.value / "migrations"


def alembic_config(
    name: DatabaseName | str, *, url: str | None = None, location: Path | None = None
) -> Config:
    """An Alembic Config built in code: script folder, version table and URL of one database."""
    name = DatabaseName(name)
    config = Config()
    config.set_main_option("script_location", str(location or script_location(name)))
    config.set_main_option("version_table", version_table(name))
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    # Through attributes, not options: configparser would try to interpolate a '%' in a password.
    config.attributes["url"] = url or database_url(name)
    config.attributes["database"] = name.value
    return config


def hide_password(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_path(url: URL) -> Path | None:
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)


def create_database(url: str) -> None:
    """Make sure the database exists: the SQLite file's folder, or the MySQL schema (utf8mb4)."""
    parsed = make_url(url)
    path = _sqlite_path(parsed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    if parsed.get_backend_name() != "mysql" or not parsed.database:
        return
    server = create_engine(parsed._replace(database=None), poolclass=NullPool)  # URL.set ignores None
    try:
        with server.begin() as conn:
            name = parsed.database.replace("`", "``")
            conn.execute(
                text(
                    f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
            )
    finally:
        server.dispose()


def _names(name: DatabaseName | str | None) -> list[DatabaseName]:
    return list(DatabaseName) if name is None else [DatabaseName(name)]


def _current(url: str, name: DatabaseName) -> str | None:
    parsed = make_url(url)
    path = _sqlite_path(parsed)
    if path is not None and not path.exists():
        return None  # reading the status must not create the file
    engine = migration_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": version_table(name)})
            return ctx.get_current_revision()
    finally:
        engine.dispose()


def _pending(scripts: ScriptDirectory, current: str | None) -> list[str]:
    """Revisions from `current` (exclusive) to head, oldest first."""
    revisions: Iterable[Script] = scripts.iterate_revisions("heads", current or "base")
    return [rev.revision for rev in reversed(list(revisions))]


def upgrade(
    name: DatabaseName | str | None = None,
    *,
    revision: str = "head",
    locations: ScriptLocations | None = None,
) -> None:
    """Upgrade one database (or all three) to `revision`; a failing revision raises MigrationError unrecorded."""
    for db in _names(name):
        config = alembic_config(db, location=(locations or {}).get(db))
        scripts = ScriptDirectory.from_config(config)
        url = config.attributes["url"]
        try:
            command.upgrade(config, revision)
        except Exception as exc:
            raise MigrationError(db.value, _failed_revision(url, db, scripts), exc) from exc
    reset_engines()  # pooled connections may have cached the old schema


def _failed_revision(url: str, name: DatabaseName, scripts: ScriptDirectory) -> str | None:
    try:
        pending = _pending(scripts, _current(url, name))
    except SQLAlchemyError:
        return None
    return pending[0] if pending else None


def init(*, locations: ScriptLocations | None = None) -> list[MigrationStatus]:
    """Create any missing database, then upgrade all three to head; returns the status afterwards."""
    for db in DatabaseName:
        create_database(database_url(db))
    upgrade(locations=locations)
    return status(locations=locations)


def status(
    name: DatabaseName | str | None = None, *, locations: ScriptLocations | None = None
) -> list[MigrationStatus]:
    """Current revision, head and pending revisions of each database; unreachable ones carry the error."""
    return [_status_of(db, (locations or {}).get(db)) for db in _names(name)]


def _status_of(name: DatabaseName, location: Path | None) -> MigrationStatus:
    config = alembic_config(name, location=location)
    url: str = config.attributes["url"]
    scripts = ScriptDirectory.from_config(config)
    head = scripts.get_current_head()
    row = MigrationStatus(
        database=name.value, url=hide_password(url), current=None, head=head, pending=[], ok=False, error=None
    )
    try:
        row["current"] = _current(url, name)
    except SQLAlchemyError as exc:
        row["error"] = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        row["pending"] = _pending(scripts, None)
        return row
    row["pending"] = _pending(scripts, row["current"])
    row["ok"] = not row["pending"]
    return row


def revision(
    name: DatabaseName | str,
    message: str,
    *,
    autogenerate: bool = True,
    description: str | None = None,
    location: Path | None = None,
) -> Path:
    """Write a new revision of database `name` (compared against the live database when autogenerating)."""
    config = alembic_config(name, location=location)
    if description:
        config.attributes["description"] = description
    script = command.revision(config, message=message, autogenerate=autogenerate)
    if isinstance(script, list):  # only with several heads, which these linear histories never have
        script = script[0]
    assert script is not None
    return Path(script.path)
