"""`comfyws db ...` on SQLite, through the real typer app: output an operator reads and exit codes scripts check."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from comfyws.commands import db
from database import migrate
from database.enums import DatabaseName
from tests.fixtures.databases import DatabaseUrls, point_at

runner = CliRunner()
# The `db` commands alone, registered as comfyws.cli does, so a neighbour's command module cannot break these tests.
app = typer.Typer()
db.register(app)


@pytest.fixture
def empty_sqlite(
    empty_database_urls: Callable[[str], DatabaseUrls], monkeypatch: pytest.MonkeyPatch
) -> DatabaseUrls:
    urls = empty_database_urls("sqlite")
    point_at(monkeypatch, urls)
    return urls


def test_status_of_new_databases_exits_nonzero_and_lists_pending(empty_sqlite: DatabaseUrls) -> None:
    result = runner.invoke(app, ["db", "status"])

    assert result.exit_code == 1
    assert result.output.count("PENDING") == 4  # header + three databases
    assert "pending:" in result.output


def test_init_then_status_is_ok(empty_sqlite: DatabaseUrls) -> None:
    init = runner.invoke(app, ["db", "init"])
    status = runner.invoke(app, ["db", "status"])
    alias = runner.invoke(app, ["db", "migration-status"])
    again = runner.invoke(app, ["db", "init"])

    assert init.exit_code == 0, init.output
    assert status.exit_code == 0 and status.output.count(" ok ") == 3
    heads = [row["head"] or "?" for row in migrate.status()]
    assert all(head in status.output for head in heads)
    assert alias.exit_code == 0 and alias.output == status.output
    assert again.exit_code == 0


def test_migrate_one_database(empty_sqlite: DatabaseUrls) -> None:
    result = runner.invoke(app, ["db", "migrate", "--database", "admin"])

    assert result.exit_code == 0, result.output
    by_name = {row["database"]: row["ok"] for row in migrate.status()}
    assert by_name == {"client": False, "admin": True, "shared": False}


def test_unreachable_database_fails_status(
    monkeypatch: pytest.MonkeyPatch, empty_sqlite: DatabaseUrls
) -> None:
    point_at(monkeypatch, DatabaseUrls("mysql", {DatabaseName.ADMIN: "mysql+pymysql://u:pw@127.0.0.1:1/x"}))

    result = runner.invoke(app, ["db", "status", "--database", "admin"])

    assert result.exit_code == 1
    assert "ERROR" in result.output and "pw" not in result.output


def _copy_history(tmp_path: Path) -> Path:
    target = tmp_path / "shared_migrations"
    shutil.copytree(
        migrate.script_location(DatabaseName.SHARED), target, ignore=shutil.ignore_patterns("__pycache__")
    )
    return target


def test_revision_writes_a_new_migration(empty_sqlite: DatabaseUrls, tmp_path: Path) -> None:
    directory = _copy_history(tmp_path)
    runner.invoke(app, ["db", "init"])

    result = runner.invoke(
        app,
        [
            "db",
            "revision",
            "add_tags",
            "--database",
            "shared",
            "--message",
            "Tags on jobs.",
            "--directory",
            str(directory),
        ],
    )

    assert result.exit_code == 0, result.output
    (created,) = list((directory / "versions").glob("*add_tags.py"))
    text = created.read_text()
    assert "Tags on jobs." in text and "down_revision" in text
    rows = migrate.status(DatabaseName.SHARED, locations={DatabaseName.SHARED: directory})
    assert rows[0]["pending"] and rows[0]["head"] != migrate.status(DatabaseName.SHARED)[0]["head"]


def test_revision_refuses_when_the_database_is_behind(empty_sqlite: DatabaseUrls, tmp_path: Path) -> None:
    directory = _copy_history(tmp_path)

    result = runner.invoke(
        app, ["db", "revision", "x", "--database", "shared", "--directory", str(directory)]
    )

    assert result.exit_code == 1
    assert "not up to date" in result.output
    assert not list((directory / "versions").glob("*_x.py"))
