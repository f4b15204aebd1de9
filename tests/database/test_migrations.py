"""Migrations on SQLite and MariaDB: from empty to head, status, idempotent init, a failing revision stays pending."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from database import migrate
from database.alembic_env import configure_options, load_models, migration_engine
from database.engine import METADATA, reset_engines
from database.enums import DatabaseName
from database.errors import MigrationError
from tests.fixtures.databases import BACKENDS, DatabaseUrls, point_at

MakeUrls = Callable[[str], DatabaseUrls]

BROKEN_REVISION = '''"""broken on purpose"""

import sqlalchemy as sa
from alembic import op

revision = "broken0001"
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("half_done", sa.Column("id", sa.Integer(), primary_key=True))
    op.execute("THIS IS NOT SQL")


def downgrade() -> None:
    op.drop_table("half_done")
'''


def _tables(url: str) -> set[str]:
    engine = migration_engine(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def empty(
    request: pytest.FixtureRequest, empty_database_urls: MakeUrls, monkeypatch: pytest.MonkeyPatch
) -> DatabaseUrls:
    urls = empty_database_urls(request.param)
    point_at(monkeypatch, urls)
    return urls


def test_status_of_empty_databases_lists_every_revision_pending(empty: DatabaseUrls) -> None:
    rows = migrate.status()

    assert [row["database"] for row in rows] == ["client", "admin", "shared"]
    for row in rows:
        assert row["current"] is None
        assert row["head"] is not None
        assert row["pending"] and row["pending"][-1] == row["head"]
        assert row["ok"] is False


def test_init_creates_every_table_and_reports_ok(empty: DatabaseUrls) -> None:
    rows = migrate.init()

    assert all(row["ok"] and row["current"] == row["head"] and not row["pending"] for row in rows)
    load_models()
    for name, url in empty.urls.items():
        assert set(METADATA[name].tables) <= _tables(url)
        assert f"alembic_version_{name.value}" in _tables(url)


def test_init_twice_changes_nothing(empty: DatabaseUrls) -> None:
    first = migrate.init()
    second = migrate.init()

    assert first == second


def test_migrated_schema_matches_the_models(empty: DatabaseUrls) -> None:
    """No drift: autogenerate against a freshly migrated database finds nothing to do."""
    migrate.init()
    load_models()
    for name, url in empty.urls.items():
        engine = migration_engine(url)
        with engine.connect() as conn:
            opts = configure_options(name, METADATA[name], url)
            opts.pop("target_metadata")
            ctx = MigrationContext.configure(conn, opts=opts)
            assert compare_metadata(ctx, METADATA[name]) == [], name
        engine.dispose()


@pytest.mark.mariadb
def test_init_creates_missing_mysql_schema(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`comfyws db init` against a MySQL server whose databases do not exist yet."""
    server = request.getfixturevalue("mariadb")
    names = {n: f"{server.prefix}_new_{n.value}" for n in DatabaseName}
    server.created.extend(names.values())  # dropped at the end of the session
    urls = DatabaseUrls("mariadb", {n: f"{server.server_url}/{schema}" for n, schema in names.items()})
    point_at(monkeypatch, urls)

    assert not any(row["ok"] for row in migrate.status())
    rows = migrate.init()

    assert all(row["ok"] for row in rows)


def test_upgrade_of_one_database_leaves_the_others(empty: DatabaseUrls) -> None:
    migrate.upgrade(DatabaseName.SHARED)

    by_name = {row["database"]: row for row in migrate.status()}
    assert by_name["shared"]["ok"]
    assert not by_name["client"]["ok"] and not by_name["admin"]["ok"]


def test_status_hides_the_password_and_reports_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYWS_DB_CLIENT_URL", "mysql+pymysql://root:s3cret@127.0.0.1:1/nowhere")
    reset_engines()

    (row,) = migrate.status(DatabaseName.CLIENT)

    assert "s3cret" not in row["url"] and "***" in row["url"]
    assert row["ok"] is False and row["error"]


def _broken_history(tmp_path: Path) -> Path:
    location = tmp_path / "client_migrations"
    shutil.copytree(
        migrate.script_location(DatabaseName.CLIENT), location, ignore=shutil.ignore_patterns("__pycache__")
    )
    head = migrate.status(DatabaseName.CLIENT)[0]["head"]
    (location / "versions" / "9999_broken0001_broken.py").write_text(BROKEN_REVISION.format(down=head))
    return location


def test_failing_migration_is_reported_and_not_marked_applied(empty: DatabaseUrls, tmp_path: Path) -> None:
    locations = {DatabaseName.CLIENT: _broken_history(tmp_path)}
    good_head = migrate.status(DatabaseName.CLIENT)[0]["head"]

    with pytest.raises(MigrationError) as failure:
        migrate.upgrade(DatabaseName.CLIENT, locations=locations)

    assert failure.value.database == "client"
    assert failure.value.revision == "broken0001"
    assert "client" in str(failure.value) and "broken0001" in str(failure.value)
    (row,) = migrate.status(DatabaseName.CLIENT, locations=locations)
    assert row["current"] == good_head  # the revision before it was committed on its own
    assert row["pending"] == ["broken0001"]
    assert row["ok"] is False
    if empty.backend == "sqlite":  # transactional DDL: nothing of the broken revision is left behind
        assert "half_done" not in _tables(empty.urls[DatabaseName.CLIENT])
