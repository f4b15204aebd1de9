"""`comfyws generate <task-type>`: submit a job through the API and (with --wait) follow it to its files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from comfyws.apiclient import ApiError, ServiceClient

TASK_TYPES = ["text-to-image", "text-to-image-sdxl", "image-to-image", "image-to-video"]


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate(
        task_type: str = typer.Argument(..., help=" | ".join(TASK_TYPES)),
        prompt: str = typer.Option(None, help="Positive prompt"),
        negative_prompt: str = typer.Option(None, help="Negative prompt"),
        image: Path = typer.Option(None, help="Input image (image-to-image, image-to-video)", exists=True),
        width: int = typer.Option(None), height: int = typer.Option(None), steps: int = typer.Option(None),
        seed: int = typer.Option(None, help="-1 = random (recorded with the job)"),
        cfg: float = typer.Option(None), workflow: str = typer.Option(None, help="workflow_name"),
        priority: str = typer.Option("normal", help="high | normal | low"),
        param: list[str] = typer.Option([], "--param", "-p", help="Any other parameter, name=value"),
        wait: bool = typer.Option(False, help="Follow progress and download the results"),
        output_dir: Path = typer.Option(Path("comfyws-results"), help="Where --wait puts the files"),
        api: str = typer.Option("http://127.0.0.1:8000", envvar="COMFYWS_API_URL", help="The service's API"),
    ) -> None:
        """Submit one generation job."""
        if task_type not in TASK_TYPES:
            raise typer.BadParameter(f"choose one of {', '.join(TASK_TYPES)}", param_hint="TASK_TYPE")
        body: dict[str, Any] = {k: v for k, v in {
            "prompt": prompt, "negative_prompt": negative_prompt, "width": width, "height": height,
            "steps": steps, "seed": seed, "cfg": cfg, "workflow_name": workflow, "priority": priority,
        }.items() if v is not None}
        for item in param:
            name, _, value = item.partition("=")
            body[name] = value
        try:
            code = asyncio.run(_generate(api, task_type, body, image, wait, output_dir))
        except ApiError as exc:
            typer.echo(f"error: {exc}", err=True)
            code = 2
        raise typer.Exit(code)


async def _generate(api: str, task_type: str, body: dict[str, Any], image: Path | None, wait: bool,
                    output_dir: Path) -> int:
    client = ServiceClient(api)
    try:
        await client.login()
        if image is not None:
            body["image"] = (await client.upload(image))["upload_id"]
        task = await client.submit(task_type, body)
        typer.echo(f"task {task['task_id']} {task['status']}")
        if not wait:
            return 0
        final = await _follow(client, task["task_id"])
        if final["status"] != "completed":
            typer.echo(f"task {final['task_id']} {final['status']}: {final.get('error') or ''}", err=True)
            return 1
        for result in final["results"]:
            path = await client.download(result["url"], output_dir / final["task_id"] / result["filename"])
            typer.echo(f"{result['kind']}: {path}  (sha256 {result['sha256'][:12]}, {result['size']} bytes)")
        return 0
    finally:
        await client.aclose()


async def _follow(client: ServiceClient, task_id: str) -> dict[str, Any]:
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn())
    with Progress(*columns) as bar:
        row = bar.add_task("queued", total=None)
        async for event in client.watch(task_id):
            if event["type"] == "progress":
                bar.update(row, description="running", completed=event["step"], total=event["total"])
            elif event["type"] == "status":
                bar.update(row, description=event["status"])
    return await client.task(task_id)
