"""Issue 10 figures: jobs through ordinary faults. For each case, submitted / completed / failed / run twice / lost:
(a) the only node SIGKILLed with 20 jobs queued, restarted on its port 3 s later; (b) one of 3 nodes SIGKILLed;
(c) the worker SIGKILLed and started again; (d) the API SIGKILLed during a burst of submits whose clients retry
with an Idempotency-Key; (e) the Prefect server restarted under load. Plus the time from the node's return in (a)
to the first job that resumed on it. Target in every case: all complete, 0 run twice, 0 lost.

Run twice: a job with more than one succeeded attempt, or whose prompts ran to success more than once on the nodes
(their own /history and execution counters). Lost: a job (or in (d) an Idempotency-Key) without a final state by the
case's deadline. One stack (embedded SQLite Prefect server, 3 simulated nodes of 2 slots, one worker) serves every
case, each on its own client.

Run: .venv/bin/python bench/bench_faults.py [--jobs 20] [--steps 10] [--step-delay 0.3] [--outage 3]
     [--cases a,b,c,d,e]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from harness import BenchStack, _token, bench_stack

from tests.fixtures.prefect_server import start_worker, wait_until
from tests.fixtures.simnode import start_simnode

FINAL = {"completed", "failed", "cancelled"}
CASE_DEADLINE_S = 300.0


@dataclass
class Case:
    name: str
    submitted: int
    completed: int
    failed: int
    run_twice: int
    lost: int
    seconds: float
    note: str = ""

    def line(self) -> str:
        return (f"  {self.name:<44} {self.submitted:>9} {self.completed:>9} {self.failed:>6} {self.run_twice:>9} "
                f"{self.lost:>4} {self.seconds:>7.1f} s  {self.note}")


class Faults:
    """The stack plus what a fault case needs: per-case clients, node restarts, admin reads."""

    def __init__(self, stack: BenchStack, step_delay: float) -> None:
        self.stack = stack
        self.step_delay = step_delay
        self.admin = _admin_token(stack.api_url)
        self.extra: list[subprocess.Popen[bytes]] = []  # processes started here that the harness does not know

    def new_client(self) -> None:
        self.stack.token = _token(self.stack.api_url)

    def submit(self, steps: int, **headers: str) -> str:
        body = {"prompt": f"fault {uuid.uuid4().hex[:8]}", "steps": steps, "width": 64, "height": 64, "seed": 1}
        with self.stack.http() as http:
            response = http.post("/api/v2/tasks/text-to-image", json=body, headers=headers)
        response.raise_for_status()
        return str(response.json()["task_id"])

    def submit_all(self, jobs: int, steps: int) -> list[str]:
        """`jobs` submits from 8 clients at once (a submit waits for its flow run: one by one takes long)."""
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(lambda _: self.submit(steps), range(jobs)))

    def task(self, task_id: str) -> dict[str, Any]:
        with self.stack.http() as http:
            return dict(http.get(f"/api/v2/tasks/{task_id}").json())

    def admin_task(self, task_id: str) -> dict[str, Any]:
        with httpx.Client(base_url=self.stack.api_url, headers={"Authorization": f"Bearer {self.admin}"},
                          timeout=60) as http:
            return dict(http.get(f"/api/v2/admin/tasks/{task_id}").json())

    def node_action(self, index: int, action: str) -> None:
        with httpx.Client(base_url=self.stack.api_url, headers={"Authorization": f"Bearer {self.admin}"},
                          timeout=60) as http:
            http.post(f"/api/v2/admin/nodes/bench-{index}/{action}").raise_for_status()

    def restart_node(self, index: int) -> None:
        old = self.stack.nodes[index]
        self.stack.nodes[index] = start_simnode(port=old.port, data_dir=old.data_dir, step_delay=self.step_delay)

    def wait_any_running(self) -> int:
        """The index of a node executing a prompt (read from the nodes: faster than the jobs go by)."""

        def running() -> list[int] | None:  # a list: node 0 must not read as "not yet"
            for index, node in enumerate(self.stack.nodes):
                if node.alive() and httpx.get(f"{node.url}/sim/state", timeout=30).json()["running"]:
                    return [index]
            return None

        found: list[int] = wait_until(running, timeout=120, interval=0.02, what="a prompt running on a node")
        return found[0]

    def settle(self, name: str, task_ids: list[str], started: float, note: str = "") -> Case:
        final = _wait_final(self, task_ids)
        statuses = Counter(t["status"] for t in final.values())
        return Case(name=name, submitted=len(task_ids), completed=statuses["completed"], failed=statuses["failed"],
                    run_twice=self.run_twice(task_ids), lost=len(task_ids) - len(final),
                    seconds=time.perf_counter() - started, note=note)

    def run_twice(self, task_ids: list[str]) -> int:
        """Jobs that ran to success more than once: by their attempts, and by every live node's own records."""
        prompt_job: dict[str, str] = {}
        twice: set[str] = set()
        for task_id in task_ids:
            attempts = self.admin_task(task_id).get("attempt_list", [])
            if sum(a["status"] == "succeeded" for a in attempts) > 1:
                twice.add(task_id)
            prompt_job.update({a["prompt_id"]: task_id for a in attempts})
        successes: Counter[str] = Counter()
        for node in self.stack.nodes:
            if not node.alive():
                continue
            history = httpx.get(f"{node.url}/history", timeout=30).json()
            executions = httpx.get(f"{node.url}/sim/state", timeout=30).json()["executions"]
            for prompt_id, entry in history.items():
                if prompt_id in prompt_job and entry["status"]["status_str"] == "success":
                    successes[prompt_job[prompt_id]] += 1
            twice |= {prompt_job[p] for p, count in executions.items() if count > 1 and p in prompt_job}
        twice |= {job for job, count in successes.items() if count > 1}
        return len(twice)


def _admin_token(api_url: str) -> str:
    response = httpx.post(f"{api_url}/admin/auth/login", timeout=60, json={
        "username": "admin", "password": os.environ["COMFYWS_API_ADMIN_PASSWORD"]})
    return str(response.json()["access_token"])


def _wait_final(faults: Faults, task_ids: list[str]) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + CASE_DEADLINE_S
    final: dict[str, dict[str, Any]] = {}
    while len(final) < len(task_ids) and time.monotonic() < deadline:
        for task_id in task_ids:
            if task_id not in final:
                try:
                    task = faults.task(task_id)
                except (httpx.HTTPError, ValueError):
                    continue  # the API itself may be restarting
                if task["status"] in FINAL:
                    final[task_id] = task
        time.sleep(0.2)  # polling interval
    return final


def case_only_node(faults: Faults, jobs: int, steps: int, outage_s: float) -> tuple[Case, float]:
    """(a) bench-0 alone; SIGKILL it once a job runs there, start it again on its port `outage_s` later."""
    faults.new_client()
    for index in (1, 2):
        faults.node_action(index, "disable")
    started = time.perf_counter()
    task_ids = faults.submit_all(jobs, steps)
    faults.wait_any_running()
    faults.stack.nodes[0].kill()
    time.sleep(outage_s)  # the outage itself
    faults.restart_node(0)
    returned = datetime.now(UTC)
    case = faults.settle(f"(a) only node killed {outage_s:g} s, {jobs} queued", task_ids, started)
    resumed = [datetime.fromisoformat(a["started_at"]).replace(tzinfo=UTC) for t in task_ids
               for a in faults.admin_task(t)["attempt_list"]]
    first = min((at for at in resumed if at >= returned), default=None)
    for index in (1, 2):
        faults.node_action(index, "enable")
    return case, (first - returned).total_seconds() if first else float("nan")


def case_one_of_three(faults: Faults, jobs: int, steps: int) -> Case:
    """(b) three nodes; SIGKILL the node of the first running job (started again after the case)."""
    faults.new_client()
    started = time.perf_counter()
    task_ids = faults.submit_all(jobs, steps)
    victim = faults.wait_any_running()
    faults.stack.nodes[victim].kill()
    case = faults.settle(f"(b) 1 of 3 nodes killed, {jobs} jobs", task_ids, started, note=f"bench-{victim} killed")
    faults.restart_node(victim)
    return case


def case_worker(faults: Faults, jobs: int, steps: int) -> Case:
    """(c) SIGKILL the worker while jobs run, start a new one (its start-up sweep hands the runs back)."""
    faults.new_client()
    started = time.perf_counter()
    task_ids = faults.submit_all(jobs, steps)
    faults.wait_any_running()
    os.kill(faults.stack.worker_pid, signal.SIGKILL)
    os.waitpid(faults.stack.worker_pid, 0)  # reaped: a zombie would still look alive to the sweep
    worker = start_worker("default", faults.stack.root, concurrency=8, poll_interval=5.0)
    faults.stack.worker_pid = worker.process.pid
    return faults.settle(f"(c) worker killed and restarted, {jobs} jobs", task_ids, started)


def case_api(faults: Faults, jobs: int, steps: int) -> Case:
    """(d) `jobs` clients submit at once, each retrying with its own Idempotency-Key until answered; the API is
    SIGKILLed after the first answers and started again on its port."""
    from tests.fixtures.stack import _start_api

    faults.new_client()
    keys = [f"bench-{uuid.uuid4().hex}" for _ in range(jobs)]
    answers: dict[str, str] = {}
    started = time.perf_counter()
    threads = [threading.Thread(target=_submit_until_answered, args=(faults, key, steps, answers)) for key in keys]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(answers) >= max(1, jobs // 5), timeout=120, interval=0.01, what="first answers")
    port = int(faults.stack.api_url.rsplit(":", 1)[1])
    os.killpg(faults.stack.api_process.pid, signal.SIGKILL)
    faults.stack.api_process.wait(timeout=20)
    killed_after = len(answers)
    faults.stack.api_process, _ = _start_api(faults.stack.root, port)
    for thread in threads:
        thread.join(timeout=CASE_DEADLINE_S)
    task_ids = sorted(set(answers.values()))
    with faults.stack.http() as http:
        made = http.get("/api/v2/tasks", params={"limit": 200}).json()["total"]
    case = faults.settle(f"(d) API killed during a burst of {jobs} submits", task_ids, started,
                         note=f"killed after {killed_after} answers; {made} jobs made for {jobs} keys")
    case.submitted = jobs
    case.lost += jobs - len(answers)
    case.run_twice += max(0, made - len(task_ids))  # a second job for a key would run the request twice
    return case


def _submit_until_answered(faults: Faults, key: str, steps: int, answers: dict[str, str]) -> None:
    body = {"prompt": f"burst {key[-8:]}", "steps": steps, "width": 64, "height": 64, "seed": 1}
    deadline = time.monotonic() + CASE_DEADLINE_S
    while time.monotonic() < deadline:
        try:
            with faults.stack.http() as http:
                response = http.post("/api/v2/tasks/text-to-image", json=body, headers={"Idempotency-Key": key})
            if response.status_code in (200, 201, 202):
                answers[key] = str(response.json()["task_id"])
                return
        except httpx.HTTPError:
            pass  # the API is down: retry, as a client would
        time.sleep(0.2)  # a client's retry pause


def case_prefect(faults: Faults, jobs: int, steps: int) -> Case:
    """(e) SIGTERM the Prefect server while jobs run and start it again on its port and database."""
    from deployments.prefect_server import server_command

    faults.new_client()
    started = time.perf_counter()
    task_ids = faults.submit_all(jobs, steps)
    faults.wait_any_running()
    api = os.environ["PREFECT_API_URL"]
    port = int(api.rsplit(":", 1)[1].split("/", 1)[0])
    os.killpg(faults.stack.prefect_pid, signal.SIGTERM)
    wait_until(lambda: not _answers(api), timeout=60, interval=0.1, what="the Prefect server to stop")
    with (faults.stack.root / "prefect" / "server-restarted.log").open("wb") as log:
        process = subprocess.Popen(server_command(host="127.0.0.1", port=port), stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    faults.extra.append(process)
    down = time.perf_counter()
    wait_until(lambda: _answers(api), timeout=120, interval=0.2, what="the Prefect server to answer again")
    note = f"server down {time.perf_counter() - down:.1f} s"
    return faults.settle(f"(e) Prefect server restarted, {jobs} jobs", task_ids, started, note=note)


def _answers(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _start_monitor(stack: BenchStack) -> subprocess.Popen[bytes]:
    with (stack.root / "monitor.log").open("wb") as log:
        return subprocess.Popen([sys.executable, "-c", "from comfyws.cli import main; main()", "monitor"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def main() -> None:
    args = _parse_args()
    cases: list[Case] = []
    resume_s = float("nan")
    with bench_stack(nodes=3, step_delay=args.step_delay, concurrency=8, max_concurrent=2) as stack:
        faults = Faults(stack, args.step_delay)
        faults.extra.append(_start_monitor(stack))  # as `comfyws run` does: health probes, suspects every second
        try:
            runs: dict[str, Callable[[], Case]] = {
                "b": lambda: case_one_of_three(faults, args.jobs, args.steps),
                "c": lambda: case_worker(faults, args.jobs, args.steps),
                "d": lambda: case_api(faults, 2 * args.jobs, args.steps),
                "e": lambda: case_prefect(faults, args.jobs, args.steps),
            }
            for name in args.cases:
                if name == "a":
                    case, resume_s = case_only_node(faults, args.jobs, args.steps, args.outage)
                else:
                    case = runs[name]()
                cases.append(case)
                print(case.line(), flush=True)
        finally:
            for process in faults.extra:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
    print(f"\nFaults ({args.steps} steps of {args.step_delay:g} s per job, 3 nodes x 2 slots, one worker):")
    print(f"  {'case':<44} {'submitted':>9} {'completed':>9} {'failed':>6} {'run twice':>9} {'lost':>4} {'time':>9}")
    for case in cases:
        print(case.line())
    if "a" in args.cases:
        print(f"\n  node back -> first resumed job running on it: {resume_s:.2f} s")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=20, help="jobs per case ((d) submits twice as many)")
    parser.add_argument("--steps", type=int, default=10, help="sampler steps per job")
    parser.add_argument("--step-delay", type=float, default=0.3, help="seconds per step on the simulated nodes")
    parser.add_argument("--outage", type=float, default=3.0, help="seconds the only node stays down in (a)")
    parser.add_argument("--cases", type=lambda v: v.split(","), default=["a", "b", "c", "d", "e"])
    return parser.parse_args()


if __name__ == "__main__":
    main()
