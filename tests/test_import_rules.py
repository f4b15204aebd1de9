"""The layering of STYLE.md §1, read from the source with `ast`: which package may import which.

Each rule names the importing package, what it may not reach, and why; a failure lists every offending
`file:line -> module`. The API rules are also checked transitively (through every project module the API
imports), because importing an allowed module that itself loads a flow would break the rule just the same.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("api", "flows", "workers", "workflows", "database", "deployments", "comfyws", "frontend")
# secret_store reads the secrets beside the settings (the internal token workers and flows present to the API).
SHARED_CONFIG = ("comfyws.config", "comfyws.settings", "comfyws.http", "comfyws.secret_store")
# The API talks to these only by name or through these narrow modules (docs/ARCHITECTURE.md).
API_MAY_IMPORT = {
    "flows": ("flows.params",),
    "deployments": ("deployments.names",),
    "workers": ("workers.progress", "workers.registry", "workers.balancer"),
    "comfyws": SHARED_CONFIG,
}
LAUNCHER = "api.launcher"
# The batch feeder creates its items' runs itself, as children of its own run (Prefect shows one parent with its
# item runs); a feeder of ledger jobs the API committed, like the launcher.
BATCH_FEEDER = "flows.run_batch"
RUN_FUNCTIONS = {"run_deployment", "arun_deployment", "create_flow_run", "create_flow_run_from_deployment"}
PREFECT_DECORATORS = {"flow", "task"}


@dataclass(frozen=True)
class Edge:
    """One import statement: `source` (a module) imports `target` at `line`."""

    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source.replace('.', '/')}.py:{self.line} -> {self.target}"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def project_files() -> dict[str, Path]:
    """Every module of the service's packages (migration scripts included), by dotted name."""
    return {module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


@cache
def parsed(name: str) -> ast.Module:
    path = project_files()[name]
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _absolute(source: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    is_package = project_files()[source].name == "__init__.py"
    base = source.split(".")[: len(source.split(".")) - node.level + (1 if is_package else 0)]
    return ".".join([*base, *([node.module] if node.module else [])])


@cache
def imports_of(source: str) -> tuple[Edge, ...]:
    """Every module an import statement anywhere in `source` names, late imports in functions included.

    `from pkg import name` yields `pkg.name` when that is a module of ours, else `pkg`.
    """
    return tuple(_edges(source))


def _edges(source: str) -> Iterator[Edge]:
    for node in ast.walk(parsed(source)):
        if isinstance(node, ast.Import):
            yield from (Edge(source, alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(source, node)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield Edge(source, sub if sub in project_files() else base, node.lineno)


def in_package(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(f"{p}.") for p in packages)


def modules_of(package: str) -> list[str]:
    return [m for m in project_files() if in_package(m, package)]


def violations(package: str, forbidden: tuple[str, ...], *, allowed: tuple[str, ...] = ()) -> list[str]:
    """Imports from `package` into `forbidden` packages that are not in (or under) `allowed`."""
    return [
        str(edge)
        for source in modules_of(package)
        for edge in imports_of(source)
        if in_package(edge.target, *forbidden) and not in_package(edge.target, *allowed)
    ]


@cache
def defines_prefect_flow_or_task(name: str) -> bool:
    """Whether a module declares a Prefect @flow or @task (importing it would load Prefect's run machinery)."""
    for node in ast.walk(parsed(name)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                label = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
                if label in PREFECT_DECORATORS:
                    return True
    return False


def reached_from(start: str) -> dict[str, list[str]]:
    """Project modules that importing `start` loads (parents' `__init__` included), each with one import path."""
    paths: dict[str, list[str]] = {start: [start]}
    pending = [start]
    while pending:
        current = pending.pop()
        for edge in imports_of(current):
            for module in _with_parents(edge.target):
                if module in project_files() and module not in paths:
                    paths[module] = [*paths[current], module]
                    pending.append(module)
    return paths


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def test_the_rules_see_the_whole_project() -> None:
    names = project_files()
    assert {"api.launcher", "flows.generate_image", "workers.comfyui.client", "database.engine"} <= set(names)
    assert defines_prefect_flow_or_task("flows.generate_image")
    assert not defines_prefect_flow_or_task("flows.params")
    assert any(e.target == "deployments.names" for e in imports_of(LAUNCHER))


@pytest.mark.parametrize("package", ["workers", "workflows", "database"])
def test_lower_layers_import_nothing_above_them(package: str) -> None:
    above = ("api", "flows", "deployments", "frontend", "comfyws")
    assert violations(package, above, allowed=SHARED_CONFIG) == []


def test_workflows_and_database_stand_alone() -> None:
    assert violations("workflows", ("workers", "database")) == []
    assert violations("database", ("workers", "workflows")) == []


def test_flows_never_import_the_api_or_the_deployments() -> None:
    assert violations("flows", ("api", "deployments", "frontend")) == []
    assert violations("flows", ("comfyws",), allowed=SHARED_CONFIG) == []


def test_deployments_never_import_the_api_and_only_name_flows() -> None:
    assert violations("deployments", ("api", "frontend")) == []
    assert violations("deployments", ("flows",), allowed=("flows.params",)) == []
    assert violations("deployments", ("comfyws",), allowed=SHARED_CONFIG) == []


def test_frontend_talks_to_the_api_over_http_only() -> None:
    assert violations("frontend", ("api", "flows", "workers", "deployments", "database")) == []
    assert violations("frontend", ("comfyws",), allowed=SHARED_CONFIG) == []


@pytest.mark.parametrize("package", sorted(API_MAY_IMPORT))
def test_api_imports_only_the_narrow_modules_of(package: str) -> None:
    assert violations("api", (package,), allowed=API_MAY_IMPORT[package]) == []
    assert violations("api", ("frontend",)) == []


def test_nothing_the_api_loads_defines_a_flow_or_calls_a_node() -> None:
    bad: list[str] = []
    for source in modules_of("api"):
        for module, path in reached_from(source).items():
            if defines_prefect_flow_or_task(module) or in_package(module, "workers.comfyui"):
                bad.append(" -> ".join(path))
    assert bad == []


def test_only_the_launcher_starts_flow_runs() -> None:
    starters: list[str] = []
    for source in project_files():
        for edge in imports_of(source):
            if in_package(edge.target, "prefect.deployments") and source not in (LAUNCHER, BATCH_FEEDER):
                starters.append(str(edge))
        for node in ast.walk(parsed(source)):
            if isinstance(node, ast.Call) and source not in (LAUNCHER, BATCH_FEEDER):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called in RUN_FUNCTIONS:
                    starters.append(f"{source}:{node.lineno} calls {called}")
    assert starters == []


def _start_import_probe() -> subprocess.Popen[str]:
    probe = (
        "import sys, api.app\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('flows.', 'workers.comfyui'))"
        " and m not in ('flows.params',))\n"
        "print('\\n'.join(bad))\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", probe], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


# Started when the module is collected, so the slow interpreter start overlaps with the static checks.
_IMPORT_PROBE = _start_import_probe()


def test_importing_the_api_app_loads_no_flow_and_no_node_client() -> None:
    # The static rules miss importlib and star imports; the interpreter does not.
    stdout, stderr = _IMPORT_PROBE.communicate(timeout=120)
    assert _IMPORT_PROBE.returncode == 0, stderr[-2000:]
    assert stdout.split() == []
