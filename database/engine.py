"""Engines and sessions for the three databases: SQLite files by default, MySQL (pymysql) when configured."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import lru_cache
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from comfyws.settings import get_settings
from database.base import AdminBase, ClientBase, SharedBase
from database.enums import DatabaseName

METADATA: dict[DatabaseName, MetaData] = {
    DatabaseName.CLIENT: ClientBase.metadata,
    DatabaseName.ADMIN: AdminBase.metadata,
    DatabaseName.SHARED: SharedBase.metadata,
}

_ENGINES: dict[
    DatabaseName, Engine
] = {}  # what get_engine created, so reset_engines can dispose exactly that


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COMFYWS_DB_", extra="ignore")

    client_url: str | None = Field(default=None, description="SQLAlchemy URL of the client database")
    admin_url: str | None = Field(default=None, description="SQLAlchemy URL of the admin database")
    shared_url: str | None = Field(default=None, description="SQLAlchemy URL of the shared database")
    echo: bool = Field(default=False, description="Log every SQL statement")
    pool_size: int = Field(default=10, description="Connections kept per MySQL engine")


@lru_cache
def get_database_settings() -> DatabaseSettings:
    return DatabaseSettings()


def database_url(name: DatabaseName) -> str:
    """Environment URL, else the config.yaml mysql block, else a SQLite file under the data directory."""
    explicit = getattr(get_database_settings(), f"{name.value}_url")
    if explicit:
        return str(explicit)
    from comfyws.config import get_config  # late: config reading is only needed without an explicit URL

    mysql = get_config().mysql
    block = getattr(mysql, name.value) if mysql else None
    if block is not None:
        return str(block.url())
    data_dir = get_settings().data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data_dir / f'{name.value}.db'}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    settings = get_database_settings()
    if url.startswith("sqlite"):
        engine = create_engine(
            url, echo=settings.echo, connect_args={"check_same_thread": False, "timeout": 30}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url, echo=settings.echo, pool_size=settings.pool_size, pool_pre_ping=True, pool_recycle=3600
    )


@lru_cache
def get_engine(name: DatabaseName) -> Engine:
    """The process's engine of database `name`, created on first use."""
    engine = make_engine(database_url(name))
    _ENGINES[name] = engine
    return engine


@lru_cache
def get_sessionmaker(name: DatabaseName) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(name), expire_on_commit=False)


@contextmanager
def session_scope(name: DatabaseName) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on error: the caller's unit of work."""
    session = get_sessionmaker(name)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def reset_engines() -> None:
    """Dispose cached engines (tests, or after settings change)."""
    for engine in _ENGINES.values():
        with suppress(Exception):  # disposal of a broken engine must not stop the reset
            engine.dispose()
    _ENGINES.clear()
    get_engine.cache_clear()
    get_sessionmaker.cache_clear()
    get_database_settings.cache_clear()
