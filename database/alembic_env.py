"""What every Alembic `env.py` of the three databases does: one shared body, parameterised by database name."""

from __future__ import annotations

import importlib
from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event, make_url
from sqlalchemy.pool import NullPool

from database.engine import METADATA, database_url
from database.enums import DatabaseName
from database.types import StrEnumType, UTCDateTime


def version_table(name: DatabaseName) -> str:
    """Each database keeps its own version table, so three histories may even share one schema."""
    return f"alembic_version_{name.value}"


def load_models() -> None:
    """Import every models module so the metadata holds all tables."""
    for name in DatabaseName:
        importlib.import_module(f"database.{name.value}.models")


def migration_engine(url: str) -> Engine:
    """An engine for running migrations: no pool, and transactional DDL on SQLite."""
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, poolclass=NullPool)
    engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite never opens a transaction before DDL; take control so a failed revision rolls back whole.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        # Batch mode copies and drops tables: with foreign keys on, the drop would cascade-delete child rows.
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Render our UTCDateTime as plain SQLAlchemy types so migrations never import application code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        autogen_context.imports.add("from sqlalchemy.dialects import mysql")
        return 'sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")'
    if type_ == "type" and isinstance(obj, StrEnumType):
        return f"sa.String(length={obj.length})"
    return False


def _include_name(other_tables: set[str]) -> Any:
    def include(name: str | None, type_: str, _parent: Any) -> bool:
        if type_ != "table" or name is None:
            return True
        return name not in other_tables and not name.startswith("alembic_version")

    return include


def _compare_type(
    _ctx: Any, _inspected: Any, metadata_column: Any, inspected_type: Any, metadata_type: Any
) -> bool | None:
    # Reflection reads our DATETIME(6) back as DATETIME(fsp=6): the same type, not a change.
    if isinstance(metadata_type, UTCDateTime) and isinstance(inspected_type, DateTime):
        return False
    return None


def configure_options(name: DatabaseName, metadata: MetaData, url: str) -> dict[str, Any]:
    others = {t for other, md in METADATA.items() if other is not name for t in md.tables}
    return {
        "target_metadata": metadata,
        "version_table": version_table(name),
        "render_as_batch": make_url(url).get_backend_name() == "sqlite",
        "transaction_per_migration": True,
        "render_item": _render_item,
        "include_name": _include_name(others),
        "compare_type": _compare_type,
        "compare_server_default": False,
    }


def run(name: DatabaseName) -> None:
    """The body of `env.py`: online (a connection) or offline (SQL script) migrations for database `name`."""
    load_models()
    config = context.config
    url = config.attributes.get("url") or database_url(name)
    options = configure_options(name, METADATA[name], url)
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, **options)
        context.run_migrations()
        return
    engine = migration_engine(url)
    try:
        with engine.connect() as conn:
            context.configure(connection=conn, **options)
            context.run_migrations()
    finally:
        engine.dispose()
