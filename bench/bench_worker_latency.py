"""Benchmark of the in-process worker: run_deployment -> flow body start and -> Completed, and worker CPU per run.

Starts its own Prefect server (SQLite, temp home) and one `comfyws worker`, deploys a trivial async flow,
then runs it N times one after the other, twice: tagged `job:<id>` as the API tags a job's run (the worker takes
it straight from its Scheduled event) and untagged (the event wakes the worker's poll, which takes it).
Usage: `.venv/bin/python bench/bench_worker_latency.py [--runs 30]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from prefect import flow

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GROUP = "bench"


@flow(name="bench-stamp")
async def stamp(path: str) -> None:
    """Writes the wall-clock time at which its body started."""
    Path(path).write_text(repr(time.time()))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _one_run(directory: Path, index: int, *, as_job: bool) -> tuple[float, float, float]:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    from deployments.names import job_tag

    marker = directory / f"stamp-{index}-{as_job}"
    tags = [job_tag(f"bench-{index}")] if as_job else None
    begin = time.time()
    run = await run_deployment(f"bench-stamp/{GROUP}", parameters={"path": str(marker)}, timeout=0, tags=tags)
    async with get_client() as client:
        while True:
            current = await client.read_flow_run(run.id)
            if current.state is not None and current.state.is_final():
                break
            await asyncio.sleep(0.005)
        states = await client.read_flow_run_states(run.id)
    assert current.state is not None and current.state.is_completed(), current.state
    claimed = min(s.timestamp.timestamp() for s in states if s.is_pending()) - begin
    body = float(marker.read_text()) - begin
    return claimed, body, current.state.timestamp.timestamp() - begin


async def _bench(runs: int, directory: Path, worker_pid: int, *, as_job: bool) -> tuple[list[list[float]], float]:
    await _one_run(directory, -1, as_job=as_job)  # warm-up: first flow import
    cpu_before = _cpu_seconds(worker_pid)
    results = [await _one_run(directory, i, as_job=as_job) for i in range(runs)]
    cpu = (_cpu_seconds(worker_pid) - cpu_before) / runs
    return [list(column) for column in zip(*results, strict=True)], cpu


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    sys.path.insert(0, str(PROJECT_ROOT))  # run as a script: make the project's packages importable

    from comfyws.config import NodeGroup, NodesConfig, ServiceConfig
    from deployments.setup import ensure_infrastructure
    from tests.fixtures.prefect_server import running_prefect_server, start_worker

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        spec = directory / "prefect.yaml"
        spec.write_text(
            "deployments:\n  - name: default\n    entrypoint: bench/bench_worker_latency.py:stamp\n"
        )
        with running_prefect_server(directory) as _:
            config = ServiceConfig(nodes=NodesConfig(groups={GROUP: NodeGroup()}))
            asyncio.run(ensure_infrastructure(config, prefect_yaml=spec, project_root=PROJECT_ROOT))
            worker = start_worker(GROUP, directory, concurrency=8, poll_interval=10.0)
            try:
                rounds = {as_job: asyncio.run(_bench(args.runs, directory, worker.process.pid, as_job=as_job))
                          for as_job in (True, False)}
            finally:
                code = worker.stop()
    print(f"{args.runs} sequential runs each, in-process worker (poll fallback 10 s)")
    for as_job, ((claimed, body, done), cpu) in rounds.items():
        how = "tagged job:<id> (taken from its Scheduled event)" if as_job else "untagged (the event wakes a poll)"
        print(f"\n{how}")
        print(f"{'measure':<28}{'median':>10}{'p95':>10}{'max':>10}")
        for label, values in (
            ("run_deployment -> claimed", claimed),
            ("run_deployment -> body", body),
            ("run_deployment -> Completed", done),
        ):
            print(f"{label:<28}{statistics.median(values):>9.3f}s{_p95(values):>9.3f}s{max(values):>9.3f}s")
        print(f"{'worker CPU per run':<28}{cpu:>9.3f}s")
    print(f"\nworker exit code after SIGTERM: {code}")


if __name__ == "__main__":
    main()
