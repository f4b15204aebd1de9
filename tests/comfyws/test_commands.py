"""The listening commands default to loopback, so every place that starts them for the network says so."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from comfyws import cli
from comfyws.settings import PROJECT_ROOT
from comfyws.supervisor import backoff_delay

COMPOSE_FILES = sorted((PROJECT_ROOT / "docker").glob("docker-compose*.yml"))
LISTENERS = {("comfyws", "api"), ("comfyws", "frontend"), ("comfyws", "simnode")}


@pytest.mark.parametrize("command", [["run"], ["api"], ["frontend", "client"]])
def test_the_default_host_is_loopback(command: list[str]) -> None:
    result = CliRunner().invoke(cli.app, [*command, "--help"], env={"COLUMNS": "200", "COMFYWS_RUN_HOST": ""})
    assert result.exit_code == 0, result.output
    host_line = next(line for line in result.output.splitlines() if "--host" in line)
    assert "127.0.0.1" in host_line


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: Path(p).name)
def test_compose_services_pass_their_host(path: Path) -> None:
    services = yaml.safe_load(path.read_text())["services"]
    listening = {name: service["command"] for name, service in services.items()
                 if tuple(service.get("command", [])[:2]) in LISTENERS}
    assert listening, "the compose file starts the API, the front ends and a node"
    assert {name: c for name, c in listening.items() if "--host" not in c} == {}


def test_restart_backoff_doubles_up_to_30s() -> None:
    assert [backoff_delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]
