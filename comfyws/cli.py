"""The `comfyws` command line: every module in `comfyws.commands` adds its commands here."""

from __future__ import annotations

import importlib
import pkgutil

import typer

from comfyws import commands

app = typer.Typer(help="ComfyUI Web Service: generation over ComfyUI nodes with Prefect.", no_args_is_help=True)


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(app)


_register_all()


def main() -> None:
    app()
