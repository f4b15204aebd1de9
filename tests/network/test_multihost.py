"""One node group served from several machines: an api host (MariaDB, Prefect server, API, health monitor) and
two worker hosts, each with its own simulated node and `comfyws worker` for the same group, in separate network
namespaces joined by veth pairs. Jobs go in through the API and spread over both hosts; when one host's node
dies, the jobs still complete on the other. Needs root; without it the module skips (under CI as root, it runs).
"""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.prefect_server import wait_until
from tests.network.central import mariadb_tools
from tests.network.cluster import Cluster, running_cluster
from tests.network.netns import private_network, unavailable_reason

pytestmark = [pytest.mark.prefect, pytest.mark.timeout(240)]

JOBS = 6


def _require_namespaces() -> None:
    """Skip without root (nothing to be done about it); otherwise a missing piece skips, or fails under CI."""
    reason = unavailable_reason() or (
        None if mariadb_tools() else "mariadbd/mariadb-install-db not installed"
    )
    if reason is None:
        return
    if os.geteuid() != 0 or not os.environ.get("CI"):
        pytest.skip(f"multi-host test: {reason}")
    pytest.fail(f"multi-host test must run under CI as root: {reason}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    _require_namespaces()
    root = tmp_path_factory.mktemp("multihost")
    with private_network(["w1", "w2"]) as network, running_cluster(network, root) as running:
        yield running


@pytest.fixture(scope="module")
def token(cluster: Cluster) -> str:
    return cluster.stack.new_client_token()


def _submit(cluster: Cluster, token: str, count: int, label: str) -> list[str]:
    body = {"steps": 6, "width": 128, "height": 128}
    return [
        cluster.stack.submit(token, "text-to-image", {**body, "prompt": f"{label} {i}", "seed": i})["task_id"]
        for i in range(count)
    ]


def _wait_all(cluster: Cluster, token: str, task_ids: list[str]) -> list[dict[str, Any]]:
    return [cluster.stack.wait_final(token, task_id, timeout=90) for task_id in task_ids]


def _claim(cluster: Cluster, task_id: str) -> tuple[str, str] | None:
    """Worker name and host that claimed the job's flow run (from the Prefect server's states of that run)."""
    with cluster.stack.http(cluster.stack.admin_token()) as http:
        flow_run_id = http.get(f"/api/v2/admin/tasks/{task_id}").json()["flow_run_id"]
    if flow_run_id is None:
        return None
    url = f"{cluster.central.prefect_api_url}/flow_run_states/"
    states = httpx.get(url, params={"flow_run_id": flow_run_id}, timeout=10).json()
    claims = [s["message"] for s in states if (s.get("message") or "").startswith("Claimed by worker ")]
    if not claims:
        return None
    words = claims[-1].split()  # "Claimed by worker <name> on <host> pid <pid>"
    return words[3], words[5]


def _all_claimed(cluster: Cluster, task_ids: list[str]) -> list[tuple[str, str]] | None:
    claims = [_claim(cluster, task_id) for task_id in task_ids]
    return None if None in claims else [claim for claim in claims if claim is not None]


def _node_status(cluster: Cluster, node_id: str) -> str:
    with cluster.stack.http(cluster.stack.admin_token()) as http:
        nodes = http.get("/api/v2/admin/nodes").json()
    return next(str(n["status"]) for n in nodes if n["node_id"] == node_id)


def test_both_worker_hosts_run_jobs_submitted_on_the_api_host(cluster: Cluster, token: str) -> None:
    for host in cluster.hosts:  # slow steps keep the first jobs busy until every flow run has been claimed
        host.control(step_delay=1.0)
    task_ids = _submit(cluster, token, JOBS, "spread")
    claims = wait_until(
        lambda: _all_claimed(cluster, task_ids), timeout=60, interval=0.2, what="every job claimed"
    )
    for host in cluster.hosts:
        host.control(step_delay=0.01)
    done = _wait_all(cluster, token, task_ids)

    assert [job["status"] for job in done] == ["completed"] * JOBS, done
    per_node = {host.node_id: sum(job["node_id"] == host.node_id for job in done) for host in cluster.hosts}
    assert all(count > 0 for count in per_node.values()), per_node
    for host in cluster.hosts:  # each node executed exactly the jobs the ledger says it ran there
        assert host.node_state()["succeeded"] == per_node[host.node_id], (host.node_id, host.node_state())
    # A worker takes at most 3 runs at once, so both hosts' workers took some (each under its own hostname).
    assert set(claims) == {(host.worker_name, host.host.label) for host in cluster.hosts}, claims
    with cluster.stack.http(token) as http:  # a worker host stored it; the api host serves it
        data = http.get(done[0]["results"][0]["url"]).content
    assert hashlib.sha256(data).hexdigest() == done[0]["results"][0]["sha256"]


def test_jobs_still_complete_when_one_worker_hosts_node_dies(cluster: Cluster, token: str) -> None:
    lost, survivor = cluster.hosts
    survivor_before = survivor.node_state()["succeeded"]
    lost.node.stop(signal.SIGKILL)  # the GPU box vanishes

    done = _wait_all(cluster, token, _submit(cluster, token, 4, "failover"))

    assert [job["status"] for job in done] == ["completed"] * 4, done
    assert {job["node_id"] for job in done} == {survivor.node_id}
    assert survivor.node_state()["succeeded"] == survivor_before + 4
    assert lost.worker is not None and lost.worker.alive(), (
        "the worker of the host that lost its node lives on"
    )
    wait_until(
        lambda: _node_status(cluster, lost.node_id) == "unhealthy",
        timeout=30,
        interval=0.2,
        what=f"the health monitor to mark {lost.node_id} unhealthy",
    )
