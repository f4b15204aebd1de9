"""Issue 2 figures: the time the service adds on top of the node's own execution, Prefect server CPU per job,
jobs per second with an instant node (SQLite and PostgreSQL Prefect servers), worker memory with 1 and 8 jobs in
flight, and a burst of 200 jobs that must all complete exactly once.

Run: .venv/bin/python bench/bench_pipeline.py [--jobs 50] [--burst 200] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import websockets
from harness import BenchStack, bench_stack, percentile, rss_mb, tree_cpu_seconds

FINAL = {"completed", "failed", "cancelled"}


class Watcher:
    """One WebSocket for all of the client's jobs; resolves a future per job when it reaches a final state."""

    def __init__(self, stack: BenchStack) -> None:
        self.url = stack.api_url.replace("http", "ws", 1) + f"/api/v2/ws/tasks?token={stack.token}"
        self.done: dict[str, asyncio.Future[tuple[float, dict[str, Any]]]] = {}
        self.early: dict[str, tuple[float, dict[str, Any]]] = {}

    def expect(self, task_id: str) -> asyncio.Future[tuple[float, dict[str, Any]]]:
        future = self.done.setdefault(task_id, asyncio.get_running_loop().create_future())
        if task_id in self.early and not future.done():
            future.set_result(self.early.pop(task_id))
        return future

    async def run(self, ready: asyncio.Event) -> None:
        async with websockets.connect(self.url, max_size=None) as socket:
            ready.set()
            async for raw in socket:
                event = json.loads(raw)
                if event.get("type") == "status" and event.get("status") in FINAL:
                    item = (time.perf_counter(), event)
                    future = self.done.get(event["task_id"])
                    if future is None:
                        self.early[event["task_id"]] = item
                    elif not future.done():
                        future.set_result(item)


def _body(seed: int, steps: int) -> dict[str, Any]:
    return {"prompt": f"bench {uuid.uuid4().hex[:8]}", "seed": seed, "steps": steps, "width": 64, "height": 64}


async def _bare_runs(stack: BenchStack, jobs: int, steps: int) -> list[float]:
    """Same graph straight to the node with the bare client: wall time minus node execution time."""
    from workers.comfyui import ComfyUIClient
    from workflows.catalog import get_catalog
    from workflows.render import render

    workflow = get_catalog().get("text_to_image", None)
    overheads = []
    async with ComfyUIClient(stack.nodes[0].url, client_id="bench-bare") as client:
        for i in range(jobs):
            graph = render(workflow, _body(10_000 + i, steps)).graph
            start = time.perf_counter()
            result = await client.run(graph, prompt_id=str(uuid.uuid4()))
            for ref in result.files:
                await client.view(ref)
            overheads.append(time.perf_counter() - start - (result.execution_s or 0.0))
    return overheads


async def _service_runs(stack: BenchStack, jobs: int, steps: int) -> tuple[list[float], float]:
    watcher = Watcher(stack)
    ready = asyncio.Event()
    listener = asyncio.create_task(watcher.run(ready))
    await ready.wait()
    overheads: list[float] = []
    cpu_before = tree_cpu_seconds(stack.prefect_pid)
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60,
                                 headers={"Authorization": f"Bearer {stack.token}"}) as http:
        for i in range(jobs):
            start = time.perf_counter()
            response = await http.post("/api/v2/tasks/text-to-image", json=_body(i, steps))
            task_id = response.json()["task_id"]
            finished, event = await asyncio.wait_for(watcher.expect(task_id), 120)
            assert event["status"] == "completed", event
            execution = await _execution_seconds(task_id)
            overheads.append(finished - start - execution)
    cpu = (tree_cpu_seconds(stack.prefect_pid) - cpu_before) / jobs
    listener.cancel()
    return overheads, cpu


async def _execution_seconds(task_id: str) -> float:
    from database.engine import session_scope
    from database.enums import DatabaseName
    from database.shared import repositories as repo

    def read() -> float:
        with session_scope(DatabaseName.SHARED) as session:
            job = repo.get_job(session, task_id)
            assert job is not None
            return sum(a.execution_seconds or 0.0 for a in job.attempt_rows)

    return await asyncio.to_thread(read)


async def _burst(stack: BenchStack, count: int, steps: int) -> dict[str, Any]:
    """Submit `count` jobs at once; wait for all; check none lost and none executed twice on the node."""
    watcher = Watcher(stack)
    ready = asyncio.Event()
    listener = asyncio.create_task(watcher.run(ready))
    await ready.wait()
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=120,
                                 headers={"Authorization": f"Bearer {stack.token}"}) as http:
        start = time.perf_counter()
        responses = await asyncio.gather(*(http.post("/api/v2/tasks/text-to-image", json=_body(i, steps))
                                           for i in range(count)))
        accepted = [r.json()["task_id"] for r in responses if r.status_code == 202]
        results = await asyncio.wait_for(asyncio.gather(*(watcher.expect(t) for t in accepted)), 1800)
        elapsed = time.perf_counter() - start
    listener.cancel()
    statuses = [event["status"] for _, event in results]
    executions: dict[str, int] = {}
    for node in stack.nodes:
        for prompt, n in node.state()["executions"].items():
            executions[prompt] = executions.get(prompt, 0) + n
    return {
        "submitted": count, "accepted": len(accepted), "completed": statuses.count("completed"),
        "rejected_at_submit": {r.status_code for r in responses if r.status_code != 202},
        "run_twice": sum(1 for n in executions.values() if n > 1), "seconds": elapsed,
        "jobs_per_s": statuses.count("completed") / elapsed,
    }


async def _rss_in_flight(stack: BenchStack, count: int) -> float:
    stack.nodes[0].control(step_delay=0.1)
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60,
                                 headers={"Authorization": f"Bearer {stack.token}"}) as http:
        ids = [(await http.post("/api/v2/tasks/text-to-image", json=_body(i, 40))).json()["task_id"]
               for i in range(count)]
        peak = 0.0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            peak = max(peak, rss_mb(stack.worker_pid))
            states = [(await http.get(f"/api/v2/tasks/{t}")).json()["status"] for t in ids]
            if all(s in FINAL for s in states):
                break
            await asyncio.sleep(0.2)
    stack.nodes[0].control(step_delay=0.0)
    return peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--step-delay", type=float, default=0.02)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--throughput-jobs", type=int, default=100)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    with bench_stack(step_delay=args.step_delay, max_concurrent=8) as stack:
        bare = asyncio.run(_bare_runs(stack, args.jobs, args.steps))
        service, cpu = asyncio.run(_service_runs(stack, args.jobs, args.steps))
        rows += [
            (f"bare client overhead ({args.jobs} jobs) p50 / p95", f"{percentile(bare, .5)*1000:.0f} / {percentile(bare, .95)*1000:.0f} ms"),
            (f"service overhead ({args.jobs} jobs) p50 / p95", f"{percentile(service, .5)*1000:.0f} / {percentile(service, .95)*1000:.0f} ms"),
            ("Prefect server CPU per job", f"{cpu:.3f} s"),
        ]
        stack.nodes[0].control(step_delay=0.0)
        rows.append(("worker RSS, 1 job in flight", f"{asyncio.run(_rss_in_flight(stack, 1)):.0f} MB"))
        rows.append(("worker RSS, 8 jobs in flight", f"{asyncio.run(_rss_in_flight(stack, 8)):.0f} MB"))
        tput = asyncio.run(_burst(stack, args.throughput_jobs, 1))
        rows.append((f"instant node, SQLite Prefect: {args.throughput_jobs} jobs", f"{tput['jobs_per_s']:.1f} jobs/s"))
        burst = asyncio.run(_burst(stack, args.burst, 1))
        rows.append((f"burst of {args.burst} at once (SQLite)",
                     f"{burst['completed']}/{burst['submitted']} completed, {burst['run_twice']} run twice, "
                     f"{burst['seconds']:.0f} s, refused at submit: {sorted(burst['rejected_at_submit']) or 'none'}"))
    if not args.skip_postgres:
        with bench_stack(postgres=True, step_delay=0.0, max_concurrent=8) as stack:
            tput = asyncio.run(_burst(stack, args.throughput_jobs, 1))
            rows.append((f"instant node, PostgreSQL Prefect: {args.throughput_jobs} jobs", f"{tput['jobs_per_s']:.1f} jobs/s"))
    width = max(len(k) for k, _ in rows)
    print("\nComfyUI Web Service pipeline benchmark")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


if __name__ == "__main__":
    main()
