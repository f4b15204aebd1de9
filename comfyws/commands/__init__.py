"""CLI command modules: each defines `register(app: typer.Typer) -> None` and is picked up by `comfyws.cli`."""
