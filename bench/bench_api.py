"""API figures: submit latency (request -> 2xx) with 16 concurrent clients, the sustained submit rate before p95
passes 250 ms, and progress latency (the node emits a step -> the owner's WebSocket receives it).

Progress latency is measured by timestamps on one machine clock: a pass-through tap in front of the simulated node
(bench/node_tap.py) notes when each `progress` message leaves the node (t0); the owner's API WebSocket notes when
the matching progress event arrives (t1). The tap's own hop is inside t1 - t0, so the figure errs high.

Run: .venv/bin/python bench/bench_api.py [--clients 16] [--per-client 20] [--rates 4,8,12,16,24,32,48]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import time
import uuid
from typing import Any

import httpx
import websockets
from harness import BenchStack, bench_stack, free_port, percentile
from node_tap import NodeTap

FINAL = {"completed", "failed", "cancelled"}
P95_LIMIT_S = 0.250
LOG_COPY = "/tmp/bench_api_last_api.log"


def _body(steps: int = 1) -> dict[str, Any]:
    return {"prompt": f"bench {uuid.uuid4().hex[:8]}", "steps": steps, "width": 64, "height": 64, "seed": 1}


def _ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:.0f}"


def _client(stack: BenchStack, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=60, **kwargs
    )


async def _timed_submit(http: httpx.AsyncClient) -> tuple[float, int]:
    start = time.perf_counter()
    try:
        response = await http.post("/api/v2/tasks/text-to-image", json=_body())
    except httpx.HTTPError:  # a dropped connection counts as a refused submit, not a crash of the bench
        return time.perf_counter() - start, 0
    return time.perf_counter() - start, response.status_code


async def submit_latency(stack: BenchStack, clients: int, per_client: int) -> dict[str, Any]:
    """`clients` kept-alive clients, each submitting `per_client` jobs back to back."""

    async def one_client() -> list[tuple[float, int]]:
        async with _client(stack) as http:
            return [await _timed_submit(http) for _ in range(per_client)]

    start = time.perf_counter()
    results = [r for rs in await asyncio.gather(*(one_client() for _ in range(clients))) for r in rs]
    elapsed = time.perf_counter() - start
    ok = [latency for latency, code in results if code == 202]
    return {
        "ok": len(ok),
        "errors": len(results) - len(ok),
        "p50": _ms(ok, 0.5),
        "p95": _ms(ok, 0.95),
        "rate": len(ok) / elapsed,
    }


async def _offered(http: httpx.AsyncClient, rate: float, seconds: float) -> tuple[list[float], int]:
    """Open loop: requests start on schedule whether or not earlier ones answered."""
    start = time.perf_counter()
    tasks = []
    for i in range(round(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_timed_submit(http)))
    results = await asyncio.gather(*tasks)
    return [latency for latency, code in results if code == 202], sum(1 for _, code in results if code != 202)


async def ramp(stack: BenchStack, rates: list[float], seconds: float) -> tuple[list[str], float | None]:
    """Offer each rate for `seconds`; stop at the first whose p95 passes the limit. Returns lines, best rate."""
    lines, best = [], None
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with _client(stack, limits=limits) as http:
        for rate in rates:
            latencies, errors = await _offered(http, rate, seconds)
            p95 = percentile(latencies, 0.95)
            lines.append(
                f"{rate:>5.0f}/s offered: p50 {_ms(latencies, 0.5)} ms, p95 {p95 * 1000:.0f} ms"
                f"{f', {errors} refused' if errors else ''}"
            )
            if p95 > P95_LIMIT_S or errors:
                break
            best = rate
    return lines, best


class OwnerSocket:
    """The owner's all-jobs socket: notes when each progress step and each final status arrives."""

    def __init__(self, stack: BenchStack) -> None:
        self.url = stack.api_url.replace("http", "ws", 1) + f"/api/v2/ws/tasks?token={stack.token}"
        self.steps: dict[tuple[str, int], float] = {}
        self.final: dict[str, str] = {}

    async def run(self, ready: asyncio.Event) -> None:
        async with websockets.connect(self.url, max_size=None) as socket:
            ready.set()
            async for raw in socket:
                arrived = time.time()
                event = json.loads(raw)
                if event.get("type") == "progress":
                    self.steps.setdefault((event["task_id"], int(event["step"])), arrived)
                elif event.get("type") == "status" and event.get("status") in FINAL:
                    self.final[event["task_id"]] = event["status"]


def _prompts_of(task_ids: list[str]) -> dict[str, list[str]]:
    from database.engine import session_scope
    from database.enums import DatabaseName
    from database.shared import repositories as repo

    with session_scope(DatabaseName.SHARED) as session:
        return {t: [a.prompt_id for a in repo.get_job(session, t).attempt_rows] for t in task_ids}  # type: ignore[union-attr]


async def progress_latency(
    stack: BenchStack, tap: NodeTap, *, jobs: int, rounds: int, steps: int
) -> dict[str, Any]:
    owner = OwnerSocket(stack)
    ready = asyncio.Event()
    listener = asyncio.create_task(owner.run(ready))
    await ready.wait()
    task_ids: list[str] = []
    async with _client(stack) as http:
        for _ in range(rounds):
            responses = await asyncio.gather(
                *(http.post("/api/v2/tasks/text-to-image", json=_body(steps)) for _ in range(jobs))
            )
            refused = [r.text for r in responses if r.status_code != 202]
            assert not refused, f"submits refused: {refused[:2]}"
            batch = [r.json()["task_id"] for r in responses]
            task_ids += batch
            deadline = time.monotonic() + 120
            while not all(t in owner.final for t in batch) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
    listener.cancel()
    latencies, missing = [], 0
    for task_id, prompts in (await asyncio.to_thread(_prompts_of, task_ids)).items():
        for (prompt_id, step), t0 in tap.steps.items():
            if prompt_id not in prompts:
                continue
            t1 = owner.steps.get((task_id, step))
            if t1 is None:
                missing += 1
            else:
                latencies.append(t1 - t0)
    return {
        "n": len(latencies),
        "missing": missing,
        "p50": _ms(latencies, 0.5),
        "p95": _ms(latencies, 0.95),
        "max": _ms(latencies, 1.0),
        "completed": sum(1 for t in task_ids if owner.final.get(t) == "completed"),
    }


def _wait_until_idle(timeout: float = 600) -> float:
    """Until every job in the ledger is final (the worker has run the submitted backlog); returns the seconds."""
    from sqlalchemy import func, select

    from database.engine import session_scope
    from database.enums import DatabaseName, JobStatus
    from database.shared.models import Job

    start = time.monotonic()
    while True:
        with session_scope(DatabaseName.SHARED) as session:
            left = session.scalar(select(func.count()).select_from(Job).where(
                Job.status.not_in([JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])))
        if not left:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{left} jobs still not final after {timeout:.0f}s")
        time.sleep(0.5)  # polling interval


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-client", type=int, default=20)
    parser.add_argument("--rates", default="4,8,12,16,24,32,48,64")
    parser.add_argument("--ramp-seconds", type=float, default=5.0)
    parser.add_argument("--progress-jobs", type=int, default=4)
    parser.add_argument("--progress-rounds", type=int, default=3)
    parser.add_argument("--progress-steps", type=int, default=25)
    parser.add_argument("--step-delay", type=float, default=0.04)
    parser.add_argument("--postgres", action="store_true", help="a PostgreSQL-backed Prefect server")
    args = parser.parse_args()
    rows: list[tuple[str, str]] = [
        ("Prefect server database", "PostgreSQL" if args.postgres else "SQLite"),
        ("load average before (1/5/15 min, 2 cores)", _load()),
    ]
    from workers import registry

    with (
        bench_stack(postgres=args.postgres, step_delay=args.step_delay, max_concurrent=8) as stack,
        NodeTap(stack.nodes[0].url, free_port()) as tap,
    ):
        registry.register_node(
            node_id="bench-0",
            base_url=tap.url,
            group="default",
            max_concurrent=8,
            capabilities=[],
            weight=1.0,
        )
        try:
            _run(stack, tap, args, rows)
        finally:
            shutil.copy(stack.root / "api.log", LOG_COPY)  # the stack's folder goes with it
            _print(rows)  # before the stack stops, so a slow shutdown never costs the figures


def _print(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print("\nComfyUI Web Service API benchmark", flush=True)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}", flush=True)


def _run(stack: BenchStack, tap: NodeTap, args: argparse.Namespace, rows: list[tuple[str, str]]) -> None:
    progress = asyncio.run(
        progress_latency(
            stack, tap, jobs=args.progress_jobs, rounds=args.progress_rounds, steps=args.progress_steps
        )
    )
    rows.append(
        (
            f"progress latency node -> owner WS ({progress['n']} steps, {progress['missing']} missing)",
            f"p50 {progress['p50']} / p95 {progress['p95']} / max {progress['max']} ms (target p95 < 100)",
        )
    )
    stack.nodes[0].control(step_delay=0.0)
    submit = asyncio.run(submit_latency(stack, args.clients, args.per_client))
    rows.append(
        (
            f"submit latency, {args.clients} concurrent clients ({submit['ok']} ok, {submit['errors']} errors)",
            f"p50 {submit['p50']} / p95 {submit['p95']} ms, {submit['rate']:.1f} submits/s",
        )
    )
    rows.append(("load average after the submit runs", _load()))
    # The ramp starts once the worker has run that backlog: otherwise it measures the backlog, not the rate.
    rows.append(("backlog of the submit runs finished in", f"{_wait_until_idle():.0f} s"))
    lines, best = asyncio.run(ramp(stack, [float(r) for r in args.rates.split(",")], args.ramp_seconds))
    rows += [("  ramp", line) for line in lines]
    rows.append(
        (
            f"sustained submit rate with p95 <= {P95_LIMIT_S * 1000:.0f} ms",
            f"{best:.0f}/s" if best else "below the lowest offered rate",
        )
    )
    rows.append(("load average after", _load()))


if __name__ == "__main__":
    main()
