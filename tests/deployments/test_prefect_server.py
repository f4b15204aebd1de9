"""The Prefect server as `comfyws run` starts it: SQLite writers queue instead of failing, and a 503 asks for a
quick retry. (The same burst against a plain `prefect server start` gets 503 "database is locked" for nearly
every flow run it creates.)"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections import Counter

import httpx
import pytest
import sqlalchemy.exc
from prefect.server.api import server
from starlette.requests import Request

from deployments.prefect_server import RETRY_AFTER_S, ask_for_quick_retries


@pytest.mark.prefect
def test_a_burst_of_concurrent_writes_gets_no_database_is_locked(prefect_server: str) -> None:
    async def burst() -> Counter[int]:
        statuses: Counter[int] = Counter()
        async with httpx.AsyncClient(base_url=prefect_server, timeout=60) as http:
            flow = (await http.post("/flows/", json={"name": "lock-burst"})).json()["id"]
            deployment = (await http.post("/deployments/", json={"name": "burst", "flow_id": flow})).json()["id"]

            async def one_run() -> None:
                created = await http.post(f"/deployments/{deployment}/create_flow_run", json={})
                statuses[created.status_code] += 1
                if created.status_code != 201:
                    return
                for state in ("PENDING", "RUNNING", "COMPLETED"):
                    answer = await http.post(f"/flow_runs/{created.json()['id']}/set_state",
                                             json={"state": {"type": state}})
                    statuses[answer.status_code] += 1

            await asyncio.gather(*(one_run() for _ in range(20)))
        return statuses

    # Raw HTTP, no client retries: every write of the burst must succeed the first time.
    assert asyncio.run(burst()) == Counter({201: 80})


@pytest.mark.prefect
def test_pausing_and_resuming_a_work_queue_answers_at_once(prefect_server: str) -> None:
    # The server reads in a second session while it emits the queue's status event, inside the write transaction:
    # had that session also begun IMMEDIATE, it would wait for the first one's lock (the busy timeout, 60 s).
    with httpx.Client(base_url=prefect_server, timeout=10) as http:
        pool = http.post("/work_pools/", json={"name": f"pause-{uuid.uuid4().hex[:8]}"}).json()
        queue = pool["default_queue_id"]
        for paused in (True, False):
            answer = http.patch(f"/work_queues/{queue}", json={"is_paused": paused})
            assert answer.status_code == 204, answer.text
            assert http.get(f"/work_queues/{queue}").json()["is_paused"] is paused


def test_a_503_tells_prefect_clients_to_retry_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "custom_internal_exception_handler", server.custom_internal_exception_handler)
    ask_for_quick_retries()
    locked = sqlalchemy.exc.OperationalError("INSERT ...", {}, sqlite3.OperationalError("database is locked"))
    request = Request({"type": "http", "method": "POST", "path": "/api/flow_runs/", "headers": []})

    busy = asyncio.run(server.custom_internal_exception_handler(request, locked))
    broken = asyncio.run(server.custom_internal_exception_handler(request, ValueError("a bug")))

    assert (busy.status_code, busy.headers["Retry-After"]) == (503, str(RETRY_AFTER_S))
    assert broken.status_code == 500 and "Retry-After" not in broken.headers
