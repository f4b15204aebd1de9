"""The docker/ deployment files: both compose files render, name real commands and real settings, and the
scripts do what their usage says. No Docker daemon is needed (`docker-compose config` only parses)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings
from typer.testing import CliRunner

from api.settings import ApiSettings
from comfyws import cli
from comfyws.config import load_config
from comfyws.settings import PROJECT_ROOT, Settings
from database.engine import DatabaseSettings
from deployments.prefect_server import server_command
from flows.settings import FlowSettings
from frontend.server import FrontendSettings
from workers.progress import ProgressSettings

DOCKER = PROJECT_ROOT / "docker"
DEV, PROD = DOCKER / "docker-compose.yml", DOCKER / "docker-compose.prod.yml"
VENV_BIN = Path(os.environ.get("VIRTUAL_ENV", PROJECT_ROOT / ".venv")) / "bin"
COMPOSE = shutil.which("docker-compose")
SECRETS = {
    "MYSQL_ROOT_PASSWORD": "root-pw-1",
    "MYSQL_PASSWORD": "mysql-pw-2",
    "POSTGRES_PASSWORD": "pg-pw-3",
    "REDIS_PASSWORD": "redis-pw-4",
    "COMFYWS_API_JWT_SECRET": "jwt-secret-5",
    "COMFYWS_API_ADMIN_PASSWORD": "admin-pw-6",
    "COMFYWS_INTERNAL_TOKEN": "internal-token-7",
    "COMFYWS_API_NODE_TOKEN": "node-token-8",
}
COMMON_SERVICES = {"prefect", "api", "worker", "monitor", "client-ui", "admin-ui", "redis"}
PUBLISHED = {8000: "api", 8001: "client-ui", 8002: "admin-ui", 4200: "prefect"}
SETTINGS_CLASSES: list[type[BaseSettings]] = [
    Settings, ApiSettings, DatabaseSettings, FlowSettings, FrontendSettings, ProgressSettings
]

needs_compose = pytest.mark.skipif(
    COMPOSE is None, reason="docker-compose is missing: scripts/bootstrap.sh --browser installs it (as root)"
)


def _compose_config(path: Path, *, secrets: bool) -> subprocess.Popen[str]:
    # A clean environment: only docker/.env (read by compose itself) and the secrets given here count.
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    env |= SECRETS if secrets else {}
    assert COMPOSE is not None
    return subprocess.Popen(
        [COMPOSE, "-f", str(path), "config"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


CASES = [(DEV, True), (PROD, True), (PROD, False)]


def _start_renders() -> dict[tuple[Path, bool], subprocess.Popen[str]]:
    """`docker-compose config` of both files, and of the production one without secrets, side by side."""
    if COMPOSE is None:
        return {}
    return {(path, secrets): _compose_config(path, secrets=secrets) for path, secrets in CASES}


# Started when the module is collected, so compose's slow start overlaps with other tests.
_RENDERS = _start_renders()


@cache
def compose_results() -> dict[tuple[Path, bool], tuple[int, str, str]]:
    results = {}
    for case, process in _RENDERS.items():
        stdout, stderr = process.communicate(timeout=60)
        results[case] = (process.returncode, stdout, stderr)
    return results


@cache
def rendered(path: Path) -> dict[str, Any]:
    returncode, stdout, stderr = compose_results()[(path, True)]
    assert returncode == 0, stderr
    config: dict[str, Any] = yaml.safe_load(stdout)
    return config


def own_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services that run the project's image (every role but the databases and Redis)."""
    return {n: s for n, s in config["services"].items() if str(s.get("image", "")).startswith("comfyws:")}


def published_ports(service: dict[str, Any]) -> set[int]:
    ports: set[int] = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports.add(int(entry["published"]))
        else:
            ports.add(int(str(entry).rsplit(":", 2)[-2]))
    return ports


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def setting_variables() -> set[str]:
    """Every environment variable a settings class of the project reads."""
    names: set[str] = set()
    for cls in SETTINGS_CLASSES:
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field_name, field in cls.model_fields.items():
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                names |= {str(choice) for choice in alias.choices}
            else:
                names.add(f"{prefix}{field_name}".upper())
    return names


@needs_compose
@pytest.mark.parametrize("path", [DEV, PROD], ids=["dev", "prod"])
def test_stack_runs_every_role_and_publishes_the_seed_ports(path: Path) -> None:
    services = rendered(path)["services"]
    assert set(services) >= COMMON_SERVICES
    for port, name in PUBLISHED.items():
        assert port in published_ports(services[name]), f"{name} does not publish {port}"
    for name in ("api", "worker"):
        mounts = [str(v).split(":")[1] for v in services[name]["volumes"]]
        assert {"/app/outputs", "/app/uploads", "/app/config.yaml"} <= set(mounts), name


@needs_compose
def test_development_stack_has_a_simulated_node_and_keeps_data_on_volumes() -> None:
    config = rendered(DEV)
    assert "simnode" in config["services"]
    assert {"data", "outputs", "uploads"} <= set(config["volumes"])
    api_env = environment(config["services"]["api"])
    assert api_env["COMFYWS_ENVIRONMENT"] == "development"
    assert api_env["PREFECT_API_URL"] == "http://prefect:4200/api"


@needs_compose
def test_development_config_names_the_simnode_service_and_the_shipped_task_types() -> None:
    dev_config = load_config(DOCKER / "config.dev.yaml")
    assert dev_config.task_types == load_config(PROJECT_ROOT / "config.yaml").task_types
    [node] = dev_config.nodes.static_nodes
    command = rendered(DEV)["services"]["simnode"]["command"]
    assert node.host == "simnode" and str(node.port) == command[command.index("--port") + 1]


@needs_compose
def test_production_stack_uses_mysql_postgres_and_redis_with_secrets_from_the_environment() -> None:
    services = rendered(PROD)["services"]
    assert {"mysql", "postgres"} <= set(services) and "simnode" not in services
    for name, service in own_services(rendered(PROD)).items():
        if name in ("prefect", "client-ui", "admin-ui"):
            continue
        env = environment(service)
        assert env["COMFYWS_ENVIRONMENT"] == "production", name
        assert env["COMFYWS_DB_SHARED_URL"].startswith("mysql+pymysql://comfyws:mysql-pw-2@mysql:3306/"), name
        assert env["COMFYWS_REDIS_URL"] == "redis://:redis-pw-4@redis:6379/0", name
    api_env = environment(services["api"])
    assert api_env["COMFYWS_API_JWT_SECRET"] == SECRETS["COMFYWS_API_JWT_SECRET"]
    assert api_env["COMFYWS_API_ADMIN_PASSWORD"] == SECRETS["COMFYWS_API_ADMIN_PASSWORD"]
    prefect_db = environment(services["prefect"])["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert prefect_db == "postgresql+asyncpg://prefect:pg-pw-3@postgres:5432/prefect"
    source = PROD.read_text(encoding="utf-8")
    assert not [value for value in SECRETS.values() if value in source]


@needs_compose
def test_production_stack_refuses_to_render_without_its_secrets() -> None:
    returncode, _, stderr = compose_results()[(PROD, False)]
    assert returncode != 0
    assert "in docker/.env" in stderr and any(name in stderr for name in SECRETS)


@needs_compose
def test_every_service_command_is_a_real_command_with_valid_options() -> None:
    commands = {
        tuple(service["command"])
        for path in (DEV, PROD)
        for service in own_services(rendered(path)).values()
    }
    # Prefect's CLI is too slow to ask here; its server is started exactly as `comfyws run` starts it.
    prefect = {c[:5] for c in commands if "deployments.prefect_server" in c}
    assert prefect == {("python", "-m", "deployments.prefect_server", "server", "start")}
    assert server_command(host="h", port=1)[1:5] == ["-m", "deployments.prefect_server", "server", "start"]
    comfyws_commands = [c for c in commands if c[0] == "comfyws"]
    assert {c[1] for c in comfyws_commands} >= {"api", "worker", "monitor", "frontend", "db", "deploy", "simnode"}
    # `--help` after the service's own arguments: an unknown subcommand or option exits 2, not 0.
    runner = CliRunner()
    failed = {
        " ".join(c): result.output[-500:]
        for c in comfyws_commands
        if (result := runner.invoke(cli.app, [*c[1:], "--help"])).exit_code != 0
    }
    assert failed == {}
    # The image runs `comfyws` as installed by `pip install .`: the entry point must name this CLI.
    scripts = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts["comfyws"] == "comfyws.cli:main"


@needs_compose
def test_every_comfyws_variable_in_the_stacks_is_a_setting_the_code_reads() -> None:
    known = setting_variables()
    unknown = {
        f"{path.name}:{name}:{key}"
        for path in (DEV, PROD)
        for name, service in own_services(rendered(path)).items()
        for key in environment(service)
        if key.startswith("COMFYWS_") and key not in known
    }
    assert unknown == set()


def test_every_env_template_variable_is_used_by_a_compose_file() -> None:
    template = [
        line.split("=", 1)[0]
        for line in (DOCKER / ".env").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = DEV.read_text(encoding="utf-8") + PROD.read_text(encoding="utf-8")
    assert [name for name in template if f"${{{name}" not in sources] == []
    assert set(SECRETS) <= set(template)


def test_dockerfile_installs_the_project_on_python_311_as_a_non_root_user() -> None:
    lines = [line.strip() for line in (DOCKER / "Dockerfile").read_text(encoding="utf-8").splitlines()]
    assert "FROM python:3.11-slim" in lines
    assert any(line.startswith("RUN pip install . ") or line == "RUN pip install ." for line in lines)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert os.access(DOCKER / "start.sh", os.X_OK) and os.access(DOCKER / "deploy.sh", os.X_OK)


def _fake_docker(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A PATH whose `docker` lacks the compose plugin and whose `docker-compose` records its arguments."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "docker-compose").write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path)}, log


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["build"], "-f docker-compose.yml --env-file .env build"),
        (["start", "-d"], "-f docker-compose.yml --env-file .env up -d"),
        (["-p", "start"], "-f docker-compose.prod.yml --env-file .env up"),
        (["-p", "stop"], "-f docker-compose.prod.yml --env-file .env down"),
        (["status"], "-f docker-compose.yml --env-file .env ps"),
        (["logs", "api"], "-f docker-compose.yml --env-file .env logs -f --tail=200 api"),
        (["-p", "migrate"], "-f docker-compose.prod.yml --env-file .env run --rm migrate"),
    ],
)
def test_deploy_script_maps_the_seed_commands_onto_compose(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    if (DOCKER / ".env.local").exists():
        pytest.skip("a local docker/.env.local changes the env file deploy.sh passes")
    env, log = _fake_docker(tmp_path)
    done = subprocess.run([str(DOCKER / "deploy.sh"), *args], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert log.read_text().strip() == expected


def test_deploy_script_backs_up_through_the_api_container_into_the_given_directory(tmp_path: Path) -> None:
    if (DOCKER / ".env.local").exists():
        pytest.skip("a local docker/.env.local changes the env file deploy.sh passes")
    env, log = _fake_docker(tmp_path)
    target = tmp_path / "backups"
    done = subprocess.run(
        [str(DOCKER / "deploy.sh"), "backup", str(target)], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert log.read_text().strip() == "-f docker-compose.yml --env-file .env exec -T api comfyws-start backup"
    assert len(list(target.glob("comfyws-*.tar.gz"))) == 1
    assert f"backup written to {target}" in done.stdout


def test_deploy_script_explains_itself_and_rejects_unknown_commands(tmp_path: Path) -> None:
    env, _ = _fake_docker(tmp_path)
    helped = subprocess.run([str(DOCKER / "deploy.sh"), "help"], env=env, capture_output=True, text=True)
    assert helped.returncode == 0
    for command in ("build", "start [-d]", "stop", "status", "logs", "migrate", "backup DIR", "update"):
        assert f"deploy.sh [-p] {command}" in helped.stderr
    wrong = subprocess.run([str(DOCKER / "deploy.sh"), "launch"], env=env, capture_output=True, text=True)
    assert wrong.returncode == 2 and "unknown command: launch" in wrong.stderr


def test_start_script_runs_the_command_and_backs_up_a_live_database(tmp_path: Path) -> None:
    import sqlite3

    data, outputs, uploads = (tmp_path / n for n in ("data", "outputs", "uploads"))
    (data / "prefect").mkdir(parents=True)
    (outputs / "job-1").mkdir(parents=True)
    uploads.mkdir()
    (outputs / "job-1" / "image.png").write_bytes(b"png")
    with sqlite3.connect(data / "shared.db") as db:
        db.execute("CREATE TABLE jobs (id TEXT)")
        db.execute("INSERT INTO jobs VALUES ('job-1')")
    env = {
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "COMFYWS_DATA_DIR": str(data), "COMFYWS_OUTPUTS_DIR": str(outputs), "COMFYWS_UPLOADS_DIR": str(uploads),
    }
    start = str(DOCKER / "start.sh")
    echoed = subprocess.run([start, "echo", "role", "ran"], env=env, capture_output=True, text=True, timeout=30)
    assert echoed.stdout == "role ran\n"
    archive = tmp_path / "backup.tar.gz"
    with archive.open("wb") as out:
        subprocess.run([start, "backup"], env=env, stdout=out, check=True, timeout=30)
    with tarfile.open(archive) as tar:
        assert {"data/shared.db", "outputs/job-1/image.png", "uploads"} <= set(tar.getnames())
        tar.extract("data/shared.db", tmp_path / "restored", filter="data")
    with sqlite3.connect(tmp_path / "restored" / "data" / "shared.db") as restored:
        assert restored.execute("SELECT id FROM jobs").fetchall() == [("job-1",)]
