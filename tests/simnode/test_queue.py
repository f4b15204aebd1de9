"""Queue semantics: one prompt at a time, front=true, delete/clear of pending items, client-chosen prompt ids."""

from __future__ import annotations

import uuid

import httpx

from tests.fixtures.simnode import SimNode
from tests.simnode.helpers import sd_graph, wait_for, wait_history


async def test_queue_order_delete_and_clear(simnode: SimNode) -> None:
    simnode.control(step_delay=0.02)
    async with httpx.AsyncClient(base_url=simnode.url) as client:
        async def post(seed: int, **extra: object) -> dict:
            body = {"prompt": sd_graph(seed=seed, steps=400 if seed == 1 else 3), **extra}
            return (await client.post("/prompt", json=body)).json()

        a, b, c = await post(1), await post(2), await post(3)
        d = await post(4, front=True)
        assert d["number"] < 0 < b["number"]

        async def a_running() -> bool:
            running = (await client.get("/queue")).json()["queue_running"]
            return bool(running) and running[0][1] == a["prompt_id"]

        await wait_for(a_running)
        queue = (await client.get("/queue")).json()
        item = queue["queue_running"][0]
        assert len(item) == 5 and item[4] == ["7"] and item[2]["5"]["class_type"] == "KSampler"
        assert {i[1] for i in queue["queue_pending"]} == {b["prompt_id"], c["prompt_id"], d["prompt_id"]}
        assert (await client.get("/prompt")).json() == {"exec_info": {"queue_remaining": 4}}
        await client.post("/queue", json={"delete": [b["prompt_id"], a["prompt_id"]]})
        pending = (await client.get("/queue")).json()["queue_pending"]
        assert {i[1] for i in pending} == {c["prompt_id"], d["prompt_id"]}
        await client.post("/interrupt")
        await wait_history(client, d["prompt_id"])
        await client.post("/queue", json={"clear": True})
        assert (await client.get(f"/history/{b['prompt_id']}")).json() == {}
    executions = simnode.state()["executions"]
    assert b["prompt_id"] not in executions and executions[a["prompt_id"]] == 1


async def test_client_chosen_prompt_id_is_kept(simnode: SimNode) -> None:
    prompt_id = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=simnode.url) as client:
        answer = (await client.post("/prompt", json={"prompt": sd_graph(), "prompt_id": prompt_id})).json()
        assert answer["prompt_id"] == prompt_id
        entry = await wait_history(client, prompt_id)
        assert entry["prompt"][1] == prompt_id
        history = (await client.get("/history", params={"max_items": 1})).json()
        assert list(history) == [prompt_id]

    async def counted() -> bool:
        return simnode.state()["executions"] == {prompt_id: 1}

    await wait_for(counted)
