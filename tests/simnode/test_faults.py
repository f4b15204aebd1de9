"""Injected faults behave as documented: failures, hangs until interrupt, dropped sockets, crashes, rejections."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import websockets

from tests.fixtures.simnode import SimNode
from tests.simnode.helpers import connect, new_client_id, record_until_done, sd_graph, wait_for, wait_history


async def test_fail_next_fails_mid_run_then_recovers(simnode: SimNode) -> None:
    simnode.control(fail_next=1)
    client_id = new_client_id()
    ws = await connect(simnode.ws_url, client_id, metadata=False)
    async with httpx.AsyncClient(base_url=simnode.url) as client:
        prompt_id = (await client.post("/prompt", json={"prompt": sd_graph(steps=6), "client_id": client_id})).json()[
            "prompt_id"]
        run = await record_until_done(ws, prompt_id)
        error = run.of("execution_error")[0]
        assert (error["node_id"], error["node_type"], error["executed"]) == ("5", "KSampler", ["1", "4", "3", "2"])
        assert {"exception_message", "exception_type", "traceback", "current_inputs"} <= set(error)
        assert len(run.of("progress")) == 3
        entry = await wait_history(client, prompt_id)
        assert (entry["status"]["status_str"], entry["status"]["completed"]) == ("error", False)
        # closed before the next run: broadcasts it would not read would stall the close handshake
        await ws.close()
        again = (await client.post("/prompt", json={"prompt": sd_graph(seed=5)})).json()["prompt_id"]
        assert (await wait_history(client, again))["status"]["status_str"] == "success"


async def test_hang_stalls_until_interrupted(simnode: SimNode) -> None:
    simnode.control(hang_next=1)
    client_id = new_client_id()
    ws = await connect(simnode.ws_url, client_id, metadata=False)
    async with httpx.AsyncClient(base_url=simnode.url) as client:
        prompt_id = (await client.post("/prompt", json={"prompt": sd_graph(steps=50), "client_id": client_id})).json()[
            "prompt_id"]

        async def stalled() -> bool:
            return simnode.state()["steps"] >= 2

        await wait_for(stalled)
        assert (await client.post("/interrupt", json={"prompt_id": "not-this-one"})).status_code == 200
        assert (await client.get(f"/history/{prompt_id}")).json() == {}
        await client.post("/interrupt", json={"prompt_id": prompt_id})
        run = await record_until_done(ws, prompt_id)
        assert len(run.of("progress")) == 2
        assert run.of("execution_interrupted")[0]["node_id"] == "5"
        entry = await wait_history(client, prompt_id)
        assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    await ws.close()


async def test_dropped_socket_does_not_stop_the_prompt(simnode: SimNode) -> None:
    simnode.control(drop_socket_next=1)
    client_id = new_client_id()
    ws = await connect(simnode.ws_url, client_id, metadata=False)
    async with httpx.AsyncClient(base_url=simnode.url) as client:
        prompt_id = (await client.post("/prompt", json={"prompt": sd_graph(steps=8), "client_id": client_id})).json()[
            "prompt_id"]
        with pytest.raises(websockets.ConnectionClosed):
            await record_until_done(ws, prompt_id)
        entry = await wait_history(client, prompt_id)
    assert entry["status"]["status_str"] == "success"
    assert simnode.state()["executions"] == {prompt_id: 1}


async def test_die_after_steps_kills_the_process(simnode_factory: Any) -> None:
    node = simnode_factory()
    node.control(die_after_steps=3)
    async with httpx.AsyncClient(base_url=node.url) as client:
        await client.post("/prompt", json={"prompt": sd_graph(steps=10)})

    async def dead() -> bool:
        return not node.alive()

    await wait_for(dead)
    assert node.process.returncode == 17


def test_reject_all_answers_400(shared_node: SimNode) -> None:
    shared_node.control(reject_all=True)
    try:
        response = httpx.post(f"{shared_node.url}/prompt", json={"prompt": sd_graph()})
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "prompt_outputs_failed_validation"
    finally:
        shared_node.control(reject_all=False)
    assert httpx.post(f"{shared_node.url}/prompt", json={"prompt": sd_graph()}).status_code == 200
