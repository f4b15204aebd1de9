"""The API restarting under running jobs loses and repeats nothing; the README's curl session works as written."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from PIL import Image
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from tests.api.conftest import PROJECT_ROOT, reset_caches
from tests.fixtures.prefect_server import wait_until
from tests.fixtures.stack import FINAL, Stack, restart_api, stack_environment

pytestmark = pytest.mark.prefect

JOBS = 4
FOLLOW_TIMEOUT_S = 90.0


@pytest.fixture(scope="module", autouse=True)
def _package_environment(api_env_vars: dict[str, str]) -> Iterator[None]:
    """The stack may be started here, inside tests/api: give the package's environment back to the next modules."""
    yield
    os.environ.update(api_env_vars)
    reset_caches()


@dataclass
class Follow:
    """What the owner's socket for one job saw, across reconnections."""

    connections: int = 0
    statuses: list[str] = field(default_factory=list)
    final_at: float = 0.0


async def _follow(stack: Stack, token: str, task_id: str) -> Follow:
    """The owner's WebSocket for one job: reconnect whenever it drops, until a final status arrives."""
    seen = Follow()
    deadline = time.monotonic() + FOLLOW_TIMEOUT_S
    while time.monotonic() < deadline:
        url = stack.api_url.replace("http://", "ws://") + f"/api/v2/ws/tasks/{task_id}?token={token}"
        try:
            async with connect(url, open_timeout=5) as socket:
                seen.connections += 1
                async for raw in socket:
                    event = json.loads(raw)
                    if event["type"] == "status":
                        seen.statuses.append(event["status"])
                        if event["status"] in FINAL:
                            seen.final_at = time.monotonic()
                            return seen
        except (OSError, TimeoutError, WebSocketException):
            pass  # the API is restarting
        await asyncio.sleep(0.05)  # reconnect back-off, as a browser client would
    raise AssertionError(f"no final status for {task_id} within {FOLLOW_TIMEOUT_S}s: {seen}")


async def _statuses(stack: Stack, token: str, ids: list[str]) -> list[str]:
    async with httpx.AsyncClient(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        return [(await http.get(f"/api/v2/tasks/{task_id}")).json()["status"] for task_id in ids]


async def _until_running(stack: Stack, token: str, ids: list[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        statuses = await _statuses(stack, token, ids)
        assert not set(statuses) & set(FINAL), f"a job finished before the restart: {statuses}"
        if "running" in statuses:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no job started running on the node")


def _executions(stack: Stack) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in stack.simnodes:
        for prompt, n in node.state().get("executions", {}).items():
            counts[prompt] = counts.get(prompt, 0) + n
    return counts


@pytest.fixture
def slow_nodes(stack: Stack) -> Iterator[None]:
    for node in stack.simnodes:
        node.control(step_delay=0.1)
    yield
    for node in stack.simnodes:
        node.control(step_delay=0.01)


async def test_jobs_in_flight_finish_across_an_api_restart(stack: Stack, slow_nodes: None) -> None:
    token = stack.new_client_token()
    before = _executions(stack)
    ids = [
        stack.submit(token, "text-to-image", {"prompt": f"restart {i}", "steps": 30, "width": 64, "height": 64,
                                              "seed": i})["task_id"]
        for i in range(JOBS)
    ]  # fmt: skip
    followers = [asyncio.create_task(_follow(stack, token, task_id)) for task_id in ids]
    await _until_running(stack, token, ids)
    restarted_at = time.monotonic()
    await asyncio.to_thread(restart_api, stack)
    seen = await asyncio.wait_for(asyncio.gather(*followers), timeout=FOLLOW_TIMEOUT_S)

    # Every owner's socket ends on the final state; those still open at the restart reconnected to get it.
    assert [s.statuses[-1] for s in seen] == ["completed"] * JOBS, seen
    assert all(s.connections >= 2 or s.final_at < restarted_at for s in seen), seen
    assert any(s.connections >= 2 for s in seen), seen

    # The new process serves each job's state and its file; the client's list holds each job exactly once.
    with stack.http(token) as http:
        listed = http.get("/api/v2/tasks", params={"limit": 200}).json()
        assert sorted(t["task_id"] for t in listed["items"]) == sorted(ids) and listed["total"] == JOBS
        for task_id in ids:
            task = http.get(f"/api/v2/tasks/{task_id}").json()
            assert task["status"] == "completed" and task["attempts"] == 1 and len(task["results"]) == 1, task
            data = http.get(task["results"][0]["url"]).content
            assert hashlib.sha256(data).hexdigest() == task["results"][0]["sha256"]

    # Nothing ran twice on the nodes.
    after = _executions(stack)
    new = {prompt: n - before.get(prompt, 0) for prompt, n in after.items() if n != before.get(prompt, 0)}
    assert sorted(new.values()) == [1] * JOBS, new


@dataclass
class Curl:
    method: str
    path: str
    headers: dict[str, str]
    data: list[str]


def _readme_curls() -> list[Curl]:
    """The curl commands of the README's "A curl session", in order, with their shell variables unexpanded."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    block = readme.split("## A curl session", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        if "curl " not in line or line.lstrip().startswith("#"):
            continue
        args = shlex.split(line[line.index("curl ") :].split("|")[0].rstrip(" )"))
        commands.append(_parse_curl(args[1:]))
    return commands


def _parse_curl(args: list[str]) -> Curl:
    method, path, headers, data = "", "", {}, []
    pairs = iter(args)
    for arg in pairs:
        if arg == "-X":
            method = next(pairs)
        elif arg == "-H":
            name, _, value = next(pairs).partition(":")
            headers[name.strip().lower()] = value.strip()
        elif arg == "-d":
            data.append(next(pairs))
        elif arg == "-o":
            next(pairs)
        elif arg.startswith("$API"):
            path = arg.removeprefix("$API")
    return Curl(method or ("POST" if data else "GET"), path, headers, data)


def _run(http: httpx.Client, curl: Curl, variables: dict[str, str]) -> httpx.Response:
    def expand(text: str) -> str:
        for name, value in variables.items():
            text = text.replace(f"${name}", value)
        return text

    headers = {name: expand(value) for name, value in curl.headers.items()}
    if curl.data and curl.data[0].lstrip().startswith("{"):
        return http.request(curl.method, expand(curl.path), headers=headers, content=expand(curl.data[0]))
    form = dict(expand(item).split("=", 1) for item in curl.data)  # curl -d: form-encoded fields
    return http.request(curl.method, expand(curl.path), headers=headers, data=form or None)


def test_the_readme_curl_session_works_as_written(stack: Stack) -> None:
    register, token, submit, read, download = _readme_curls()
    variables: dict[str, str] = {}
    with httpx.Client(base_url=stack.api_url, timeout=30) as http:
        registered = _run(http, register, variables)
        assert registered.status_code == 201, registered.text
        variables |= {
            "CLIENT_ID": registered.json()["client_id"],
            "CLIENT_SECRET": registered.json()["client_secret"],
        }
        issued = _run(http, token, variables)
        assert issued.status_code == 200, issued.text
        variables["TOKEN"] = issued.json()["access_token"]
        submitted = _run(http, submit, variables)
        assert submitted.status_code == 202 and submitted.json()["status"] == "queued", submitted.text
        variables["TASK"] = submitted.json()["task_id"]
        task = wait_until(
            lambda: (t := _run(http, read, variables).json())["status"] in FINAL and t,
            timeout=60,
            interval=0.1,
            what="the README's task to finish",
        )
        assert task["status"] == "completed", task
        result = _run(http, download, variables)
    assert result.status_code == 200
    with Image.open(io.BytesIO(result.content)) as image:
        assert image.format == "PNG" and image.size == (512, 512)


def test_a_job_committed_by_an_api_that_died_before_launching_it_runs_after_restart(stack: Stack) -> None:
    """The ledger row is written before the flow run is created: if the API dies in between, the next API
    process dispatches the job; it is neither lost nor run twice."""
    from database.client import repositories as client_repo
    from database.engine import session_scope
    from database.enums import DatabaseName, Priority
    from database.shared import repositories as ledger

    client_id, secret = stack.register_client()
    token = stack.client_token(client_id, secret)
    job_id = f"orphan-{os.urandom(6).hex()}"
    with stack_environment(stack):
        with session_scope(DatabaseName.SHARED) as session:
            ledger.create_job(session, job_id=job_id, client_id=client_id, task_type="text_to_image",
                              workflow_name="sd_basic", params={"prompt": "left behind", "steps": 2},
                              priority=Priority.NORMAL, node_group="default")
        with session_scope(DatabaseName.CLIENT) as session:
            client_repo.add_client_job(session, job_id=job_id, client_id=client_id, task_type="text_to_image")
    assert stack.task(token, job_id)["status"] == "pending"
    restart_api(stack)
    done = stack.wait_final(token, job_id)
    assert done["status"] == "completed", done
    assert done["attempts"] == 1
