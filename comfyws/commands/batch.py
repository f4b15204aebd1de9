"""`comfyws batch submit|status|cancel|download|run`: batches through the API, and the scheduled batch by hand."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from comfyws.apiclient import ApiError, ServiceClient

FINAL = ("completed", "completed_with_errors", "failed", "cancelled")
API_OPTION = typer.Option("http://127.0.0.1:8000", envvar="COMFYWS_API_URL", help="The service's API")

batch_app = typer.Typer(help="Batches: many jobs as one group (CSV, JSONL or YAML files).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(batch_app, name="batch")


@batch_app.command("submit")
def submit(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="A .csv, .jsonl or .yaml batch"),
    task_type: str = typer.Option(None, help="For CSV/JSONL (a YAML spec names its own)"),
    workflow: str = typer.Option(None, help="workflow_name"),
    defaults: str = typer.Option("{}", help="JSON object of parameters every item starts from (CSV/JSONL)"),
    priority: str = typer.Option("low", help="high | normal | low"),
    name: str = typer.Option(None, help="Shown in lists"),
    wait: bool = typer.Option(False, help="Show progress, then download the zip of results"),
    output_dir: Path = typer.Option(Path("comfyws-results"), help="Where --wait puts the zip"),
    api: str = API_OPTION,
) -> None:
    """Submit a batch; invalid items are listed by index (and row) and do not stop the rest."""
    _exit(_submit(api, file, task_type, workflow, defaults, priority, name, wait, output_dir))


async def _submit(api: str, file: Path, task_type: str | None, workflow: str | None, defaults: str,
                  priority: str, name: str | None, wait: bool, output_dir: Path) -> int:
    async with _Client(api) as client:
        if file.suffix.lower() in (".yaml", ".yml"):
            spec = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
            spec.pop("client", None)  # the CLI's own client owns what it submits
            if "csv" in spec:
                raise typer.BadParameter("a YAML spec with `csv:` runs with `comfyws batch run`", param_hint="FILE")
            batch = await client.submit_batch({"priority": priority, **spec, **({"name": name} if name else {})})
        else:
            if task_type is None:
                raise typer.BadParameter("--task-type is required for CSV and JSONL files")
            form = {"task_type": task_type, "defaults": defaults, "priority": priority}
            form |= {k: v for k, v in {"workflow_name": workflow, "name": name}.items() if v}
            batch = await client.upload_batch(file, form)
        _report(batch)
        if not wait:
            return 0
        final = await _follow(client, batch["batch_id"])
        typer.echo(f"batch {final['batch_id']} {final['status']} {json.dumps(final['counts'])}")
        path = await client.download_stream(f"/api/v2/batches/{final['batch_id']}/results.zip",
                                            output_dir / f"batch-{final['batch_id']}.zip")
        typer.echo(f"results: {path}")
        return 0 if final["status"] == "completed" else 1


def _report(batch: dict[str, Any]) -> None:
    typer.echo(f"batch {batch['batch_id']} {batch['status']}: {batch['total']} items, "
               f"{batch['counts'].get('invalid', 0)} invalid")
    for item in batch.get("items") or []:
        if item.get("error"):
            row = f" (row {item['row']})" if item.get("row") else ""
            typer.echo(f"  item {item['index']}{row}: {item['error']}", err=True)


async def _follow(client: ServiceClient, batch_id: str) -> dict[str, Any]:
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns) as bar:
        row = bar.add_task("batch", total=None)
        while True:
            batch = await client.batch(batch_id)
            counts = batch["counts"]
            done, failed = counts.get("completed", 0), counts.get("failed", 0) + counts.get("invalid", 0)
            running = counts.get("running", 0) + counts.get("queued", 0)
            bar.update(row, total=batch["total"], completed=done + failed + counts.get("cancelled", 0),
                       description=f"done {done} / failed {failed} / running {running}")
            if batch["status"] in FINAL:
                return batch
            await asyncio.sleep(1.0)


@batch_app.command("status")
def status(batch_id: str, api: str = API_OPTION) -> None:
    """A batch's status, counts and failed items."""
    _exit(_status(api, batch_id))


async def _status(api: str, batch_id: str) -> int:
    async with _Client(api) as client:
        batch = await client.batch(batch_id)
    typer.echo(f"batch {batch_id} {batch['status']} progress {batch['progress']:.0%} {json.dumps(batch['counts'])}")
    for item in batch.get("items") or []:
        if item.get("error") or item.get("status") == "failed":
            typer.echo(f"  item {item['index']}: {item.get('error') or 'failed'}")
    return 0


@batch_app.command("cancel")
def cancel(batch_id: str, api: str = API_OPTION) -> None:
    """Cancel what has not finished."""
    _exit(_cancel(api, batch_id))


async def _cancel(api: str, batch_id: str) -> int:
    async with _Client(api) as client:
        batch = await client.cancel_batch(batch_id)
    typer.echo(f"batch {batch_id} {batch['status']} {json.dumps(batch['counts'])}")
    return 0


@batch_app.command("download")
def download(batch_id: str, output_dir: Path = typer.Option(Path("comfyws-results")), api: str = API_OPTION) -> None:
    """Download the zip of a batch's results (files by index and manifest.json)."""
    _exit(_download(api, batch_id, output_dir))


async def _download(api: str, batch_id: str, output_dir: Path) -> int:
    async with _Client(api) as client:
        path = await client.download_stream(f"/api/v2/batches/{batch_id}/results.zip",
                                            output_dir / f"batch-{batch_id}.zip")
    typer.echo(str(path))
    return 0


@batch_app.command("run")
def run(
    spec: Path = typer.Argument(..., exists=True, dir_okay=False, help="A batch spec (YAML) naming its client"),
    output_dir: str = typer.Option(None, help="Copy results here ({date} is replaced), as the schedule does"),
    retention_days: int = typer.Option(None, help="Remove dated folders beside it older than this"),
) -> None:
    """Run the scheduled batch flow once, here and now (the Prefect UI shows the run and its item runs)."""
    from flows.run_batch import run_batch

    result = asyncio.run(run_batch(spec=str(spec.resolve()), output_dir=output_dir,
                                   retention_days=retention_days))
    typer.echo(json.dumps(result))
    raise typer.Exit(0 if result["status"] == "completed" else 1)


class _Client:
    """The CLI's API session: logged in on entry, closed on exit."""

    def __init__(self, api: str) -> None:
        self.client = ServiceClient(api)

    async def __aenter__(self) -> ServiceClient:
        await self.client.login()
        return self.client

    async def __aexit__(self, *_exc: object) -> None:
        await self.client.aclose()


def _exit(work: Any) -> None:
    try:
        code = asyncio.run(work)
    except ApiError as exc:
        typer.echo(f"error: {exc}", err=True)
        code = 2
    raise typer.Exit(code)
