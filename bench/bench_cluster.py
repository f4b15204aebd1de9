"""Cluster figures per balancing strategy: makespan of a mixed burst on nodes of mixed speed against the ideal,
per-node busy fractions and idle gaps; the dispatch ceiling with instant nodes; failover time after a node dies.

One stack (the embedded SQLite Prefect server, or PostgreSQL with --postgres; 8 simulated nodes; one worker) serves
every round; the strategy is switched through the admin API between rounds and the nodes' histories are cleared.
Node busy time comes from each node's own history (`execution_start` / `execution_success` timestamps), job times
from the ledger.

Run: .venv/bin/python bench/bench_cluster.py [--jobs 400] [--unit-delay 3.0] [--concurrency 24] [--postgres]
     [--strategies least_loaded,round_robin,...] [--skip-ceiling] [--skip-failover]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from harness import BenchStack, bench_stack, cpu_seconds, percentile, tree_cpu_seconds

from tests.fixtures.simnode import SimNode, start_simnode

SPEEDS = (1.0, 1.0, 1.5, 1.5, 2.0, 2.0, 3.0, 3.0)
STRATEGIES = ("least_loaded", "round_robin", "weighted", "random", "model_aware")
GROUP = "default"
FINAL = {"completed", "failed", "cancelled"}
# Steps per job: mostly short, some medium, a few long (mean ~5 steps).
STEP_MIX = ((0.6, 2, 4), (0.3, 5, 8), (0.1, 10, 16))


@dataclass
class NodeUse:
    """One node's share of a round: prompts run, busy seconds, and where its idle time went."""

    node_id: str
    speed: float
    jobs: int = 0
    busy_s: float = 0.0
    idle_start_s: float = 0.0  # round start -> first prompt starts
    gaps_s: float = 0.0  # between its prompts
    idle_tail_s: float = 0.0  # its last prompt ends -> round ends


@dataclass
class RoundResult:
    strategy: str
    jobs: int
    completed: int
    makespan_s: float
    ideal_s: float
    submit_s: float
    load: tuple[float, float, float]
    cpu: str = ""
    nodes: list[NodeUse] = field(default_factory=list)

    @property
    def over_ideal(self) -> float:
        return self.makespan_s / self.ideal_s - 1


# ---------------------------------------------------------------- the stack around the rounds


def _admin_headers(stack: BenchStack) -> dict[str, str]:
    response = httpx.post(f"{stack.api_url}/admin/auth/login", timeout=30,
                          json={"username": "admin", "password": os.environ["COMFYWS_API_ADMIN_PASSWORD"]})
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def set_strategy(stack: BenchStack, admin: dict[str, str], strategy: str) -> None:
    response = httpx.put(f"{stack.api_url}/api/v2/admin/strategy/{GROUP}", headers=admin, timeout=30,
                         json={"strategy": strategy})
    response.raise_for_status()
    assert response.json()["strategy"] == strategy, response.text


def register(node: SimNode, index: int, *, max_concurrent: int) -> None:
    """(Re-)register bench-<index>; weight = relative speed, what an operator would set for `weighted`."""
    from workers import registry

    registry.register_node(node_id=f"bench-{index}", base_url=node.url, group=GROUP, max_concurrent=max_concurrent,
                           capabilities=[], weight=SPEEDS[index % len(SPEEDS)])


def set_speeds(stack: BenchStack, unit_delay: float) -> None:
    for index, node in enumerate(stack.nodes):
        node.control(step_delay=unit_delay / SPEEDS[index % len(SPEEDS)])


def reset_nodes(stack: BenchStack) -> None:
    """Between rounds: no prompt may be left, and the history (our busy-time source) starts empty."""
    for node in stack.nodes:
        state = node.state()
        assert state["running"] is None and not state["pending"], f"{node.url} still busy: {state}"
        httpx.post(f"{node.url}/history", json={"clear": True}, timeout=10).raise_for_status()
        httpx.post(f"{node.url}/free", json={"unload_models": True, "free_memory": True}, timeout=10)


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def cpu_by_part(stack: BenchStack) -> dict[str, float]:
    """CPU seconds used so far by each part of the stack (PostgreSQL: every backend on the machine)."""
    own = os.times()
    return {
        "prefect": tree_cpu_seconds(stack.prefect_pid), "worker": cpu_seconds(stack.worker_pid),
        "api": tree_cpu_seconds(stack.api_process.pid), "nodes": sum(cpu_seconds(n.process.pid) for n in stack.nodes),
        "postgres": _postgres_cpu(), "bench": own.user + own.system,
    }


def cpu_per_job(before: dict[str, float], after: dict[str, float], jobs: int) -> str:
    parts = [f"{k} {(after[k] - before[k]) / jobs:.3f}" for k in before]
    total = sum(after[k] - before[k] for k in before) / jobs
    return f"{total:.2f} CPU-s/job ({', '.join(parts)})"


def _postgres_cpu() -> float:
    total = 0.0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if Path(f"/proc/{entry.name}/comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue  # the process ended while we looked
    return total


# ---------------------------------------------------------------- jobs and the ledger


def draw_steps(count: int, *, seed: int) -> list[int]:
    rng = random.Random(seed)
    weights = [w for w, _, _ in STEP_MIX]
    return [rng.randint(low, high) for _, low, high in rng.choices(STEP_MIX, weights=weights, k=count)]


def _body(steps: int, seed: int) -> dict[str, Any]:
    return {"prompt": f"cluster {uuid.uuid4().hex[:8]}", "seed": seed, "steps": steps, "width": 64, "height": 64}


async def submit_all(stack: BenchStack, steps: list[int]) -> list[str]:
    """Every job at once, concurrently through the API; all must be accepted."""
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=300, limits=limits,
                                 headers={"Authorization": f"Bearer {stack.token}"}) as http:
        responses = await asyncio.gather(*(http.post("/api/v2/tasks/text-to-image", json=_body(n, i))
                                           for i, n in enumerate(steps)))
    refused = [r.status_code for r in responses if r.status_code != 202]
    assert not refused, f"refused at submit: {refused}"
    return [r.json()["task_id"] for r in responses]


def ledger_jobs(ids: list[str]) -> list[Any]:
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from database.engine import session_scope
    from database.enums import DatabaseName
    from database.shared.models import Job

    with session_scope(DatabaseName.SHARED) as session:
        stmt = select(Job).where(Job.id.in_(ids)).options(selectinload(Job.attempt_rows))
        jobs = list(session.scalars(stmt))
        session.expunge_all()
    return jobs


def wait_final(ids: list[str], *, timeout: float) -> list[Any]:
    """Poll the ledger (with a deadline) until every job is final."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = ledger_jobs(ids)
        if len(jobs) == len(ids) and all(str(j.status) in FINAL for j in jobs):
            return jobs
        if time.monotonic() > deadline:
            left = sum(1 for j in jobs if str(j.status) not in FINAL)
            raise TimeoutError(f"{left} of {len(ids)} jobs not final after {timeout:.0f}s")
        time.sleep(0.25)  # polling interval


# ---------------------------------------------------------------- round 1: cluster efficiency


def node_intervals(node: SimNode) -> list[tuple[float, float]]:
    """(start, end) in epoch seconds of every prompt in the node's history, from its own timestamps."""
    history = httpx.get(f"{node.url}/history", timeout=30).json()
    spans = []
    for entry in history.values():
        stamps = {event: data["timestamp"] / 1000 for event, data in entry["status"]["messages"]
                  if event in ("execution_start", "execution_success", "execution_error")}
        end = stamps.get("execution_success", stamps.get("execution_error"))
        if "execution_start" in stamps and end is not None:
            spans.append((stamps["execution_start"], end))
    return sorted(spans)


def node_use(node_id: str, speed: float, spans: list[tuple[float, float]], start: float, end: float) -> NodeUse:
    use = NodeUse(node_id=node_id, speed=speed, jobs=len(spans))
    if not spans:
        use.idle_start_s = end - start
        return use
    use.busy_s = sum(b - a for a, b in spans)
    use.idle_start_s = spans[0][0] - start
    use.gaps_s = sum(max(0.0, nxt[0] - prev[1]) for prev, nxt in itertools.pairwise(spans))
    use.idle_tail_s = max(0.0, end - spans[-1][1])
    return use


def efficiency_round(stack: BenchStack, strategy: str, steps: list[int], *, unit_delay: float) -> RoundResult:
    ideal = sum(steps) * unit_delay / sum(SPEEDS[: len(stack.nodes)])
    cpu_before = cpu_by_part(stack)
    t0 = time.time()
    ids = asyncio.run(submit_all(stack, steps))
    submitted = time.time()
    jobs = wait_final(ids, timeout=ideal * 6 + 300)
    end = max(j.finished_at.timestamp() for j in jobs if j.finished_at is not None)
    result = RoundResult(strategy=strategy, jobs=len(ids), submit_s=submitted - t0, makespan_s=end - t0,
                         ideal_s=ideal, load=load_average(), cpu=cpu_per_job(cpu_before, cpu_by_part(stack), len(ids)),
                         completed=sum(1 for j in jobs if str(j.status) == "completed"))
    for index, node in enumerate(stack.nodes):
        speed = SPEEDS[index % len(SPEEDS)]
        result.nodes.append(node_use(f"bench-{index}", speed, node_intervals(node), t0, end))
    return result


def print_rounds(rounds: list[RoundResult]) -> None:
    names = [r.strategy for r in rounds]
    width = max(14, *(len(n) for n in names))
    print("\nCluster efficiency: " + (f"{rounds[0].jobs} jobs, speeds {', '.join(f'{s:g}' for s in SPEEDS)}"
                                     if rounds else "no rounds"))
    rows: list[tuple[str, list[str]]] = [
        ("completed", [f"{r.completed}/{r.jobs}" for r in rounds]),
        ("submit all (s)", [f"{r.submit_s:.1f}" for r in rounds]),
        ("makespan (s)", [f"{r.makespan_s:.1f}" for r in rounds]),
        ("ideal (s)", [f"{r.ideal_s:.1f}" for r in rounds]),
        ("over ideal", [f"{r.over_ideal * 100:+.1f}%" for r in rounds]),
        # The ideal needs the whole path to hand out jobs at least this fast; compare with the dispatch ceiling.
        ("jobs/s needed / done", [f"{r.jobs / r.ideal_s:.1f} / {r.completed / r.makespan_s:.1f}" for r in rounds]),
        ("load avg 1/5m", [f"{r.load[0]:.1f}/{r.load[1]:.1f}" for r in rounds]),
    ]
    for index in range(len(rounds[0].nodes) if rounds else 0):
        label = f"{rounds[0].nodes[index].node_id} x{rounds[0].nodes[index].speed:g}"
        rows.append((f"{label} busy", [_busy_cell(r, r.nodes[index]) for r in rounds]))
    rows.append(("idle: start/gaps/tail (s)", [_idle_cell(r) for r in rounds]))
    key_width = max(len(k) for k, _ in rows)
    print(f"  {'':<{key_width}}  " + "  ".join(f"{n:>{width}}" for n in names))
    for key, cells in rows:
        print(f"  {key:<{key_width}}  " + "  ".join(f"{c:>{width}}" for c in cells))
    for result in rounds:
        print(f"  {result.strategy}: {result.cpu}")


def _busy_cell(result: RoundResult, use: NodeUse) -> str:
    return f"{use.busy_s / result.makespan_s * 100:.0f}% {use.jobs:>3}j"


def _idle_cell(result: RoundResult) -> str:
    start = sum(n.idle_start_s for n in result.nodes)
    gaps = sum(n.gaps_s for n in result.nodes)
    tail = sum(n.idle_tail_s for n in result.nodes)
    return f"{start:.0f}/{gaps:.0f}/{tail:.0f}"


# ---------------------------------------------------------------- round 2: dispatch ceiling


def dispatch_ceiling(stack: BenchStack, count: int) -> dict[str, Any]:
    """Instant nodes: completed jobs per second over the whole burst and over its middle 80 %."""
    for node in stack.nodes:
        node.control(step_delay=0.0)
    cpu_before = cpu_by_part(stack)
    t0 = time.time()
    ids = asyncio.run(submit_all(stack, [1] * count))
    submitted = time.time()
    jobs = wait_final(ids, timeout=count * 2 + 120)
    cpu = cpu_per_job(cpu_before, cpu_by_part(stack), count)
    ends = sorted(j.finished_at.timestamp() for j in jobs if j.finished_at is not None)
    low, high = percentile(ends, 0.1), percentile(ends, 0.9)
    return {
        "jobs": count, "completed": sum(1 for j in jobs if str(j.status) == "completed"),
        "submit_per_s": count / (submitted - t0), "overall_per_s": len(ends) / (ends[-1] - t0),
        "steady_per_s": 0.8 * len(ends) / max(1e-9, high - low), "load": load_average()[0], "cpu": cpu,
    }


# ---------------------------------------------------------------- round 3: failover


def failover_trial(stack: BenchStack, *, steps: int, step_delay: float, max_concurrent: int) -> float:
    """Kill the node running a job; seconds until the job's second attempt started elsewhere."""
    for node in stack.nodes:
        node.control(step_delay=step_delay)
    [job_id] = asyncio.run(submit_all(stack, [steps]))
    index, node, _prompt_id = _running_on_node(stack, job_id, timeout=120)
    killed_at = time.time()
    node.kill()
    second = _second_attempt_start(job_id, timeout=120)
    wait_final([job_id], timeout=120)
    replacement = start_simnode(step_delay=step_delay, data_dir=stack.root / f"node-{index}-{uuid.uuid4().hex[:6]}")
    register(replacement, index, max_concurrent=max_concurrent)
    stack.nodes[index] = replacement
    return second - killed_at


def _running_on_node(stack: BenchStack, job_id: str, *, timeout: float) -> tuple[int, SimNode, str]:
    """Wait until the job's prompt is executing (not just queued) on its node."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [job] = ledger_jobs([job_id])
        if job.node_id and job.prompt_id:
            index = int(job.node_id.rsplit("-", 1)[1])
            node = stack.nodes[index]
            if node.state()["running"] == job.prompt_id:
                return index, node, job.prompt_id
        time.sleep(0.02)  # polling interval
    raise TimeoutError(f"job {job_id} never ran")


def _second_attempt_start(job_id: str, *, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [job] = ledger_jobs([job_id])
        later = [a for a in job.attempt_rows if a.number >= 2]
        if later:
            return float(min(a.started_at for a in later).timestamp())
        time.sleep(0.02)  # polling interval
    raise TimeoutError(f"job {job_id} was not retried")


# ---------------------------------------------------------------- main


def main() -> None:
    args = _parse_args()
    strategies = [s for s in args.strategies.split(",") if s]
    steps = draw_steps(args.jobs, seed=args.seed)
    with bench_stack(postgres=args.postgres, step_delay=args.unit_delay, nodes=len(SPEEDS),
                     concurrency=args.concurrency, max_concurrent=args.max_concurrent) as stack:
        admin = _admin_headers(stack)
        for index, node in enumerate(stack.nodes):
            register(node, index, max_concurrent=args.max_concurrent)
        _warm_up(stack, admin)
        rounds = []
        for strategy in strategies:
            set_strategy(stack, admin, strategy)
            set_speeds(stack, args.unit_delay)
            reset_nodes(stack)
            rounds.append(efficiency_round(stack, strategy, steps, unit_delay=args.unit_delay))
            print_rounds(rounds[-1:])
        if len(rounds) > 1:
            print_rounds(rounds)
        set_strategy(stack, admin, "least_loaded")
        if not args.skip_ceiling:
            _print_ceiling(dispatch_ceiling(stack, args.ceiling_jobs))
        if not args.skip_failover:
            trials = [failover_trial(stack, steps=60, step_delay=0.05, max_concurrent=args.max_concurrent)
                      for _ in range(args.failover_trials)]
            print(f"\nFailover (SIGKILL of the node running the job -> attempt 2 started), {len(trials)} trials: "
                  f"median {statistics.median(trials):.2f} s, all {', '.join(f'{t:.2f}' for t in trials)} s, "
                  f"load avg {load_average()[0]:.1f}")


def _warm_up(stack: BenchStack, admin: dict[str, str]) -> None:
    """A few quick jobs so that imports, connections and caches are hot before anything is timed."""
    set_strategy(stack, admin, "least_loaded")
    for node in stack.nodes:
        node.control(step_delay=0.0)
    wait_final(asyncio.run(submit_all(stack, [1] * 16)), timeout=180)


def _print_ceiling(result: dict[str, Any]) -> None:
    print(f"\nDispatch ceiling (instant nodes, {result['jobs']:.0f} jobs at once, "
          f"{result['completed']:.0f} completed): {result['overall_per_s']:.1f} jobs/s overall, "
          f"{result['steady_per_s']:.1f} jobs/s steady (middle 80%), submits {result['submit_per_s']:.1f}/s, "
          f"load avg {result['load']:.1f}\n  {result['cpu']}")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--unit-delay", type=float, default=3.0, help="seconds per step at speed 1")
    parser.add_argument("--seed", type=int, default=7, help="seed of the job-size draw")
    parser.add_argument("--concurrency", type=int, default=24, help="worker flow runs (>= 8 nodes x slots)")
    parser.add_argument("--max-concurrent", type=int, default=2, help="slots per node")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--ceiling-jobs", type=int, default=200)
    parser.add_argument("--failover-trials", type=int, default=5)
    parser.add_argument("--skip-ceiling", action="store_true")
    parser.add_argument("--skip-failover", action="store_true")
    parser.add_argument("--postgres", action="store_true",
                        help="PostgreSQL Prefect server instead of the embedded SQLite one")
    return parser.parse_args()


if __name__ == "__main__":
    main()
