"""Issue 11 item 6: node registration needs the node token or an operator; base_url is parsed and must fall inside
nodes.allowed_networks; an existing id needs its own node token or an operator; every change is audited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.api.conftest import NODE_TOKEN, PROJECT_ROOT, Api
from tests.api.security_live import admin_with_role, live_fixture  # noqa: F401 - fixture


def _register(api: Api, token: str | None, node_id: str, base_url: str) -> Any:
    with api.http(token) as http:
        return http.post("/api/v2/nodes/register", json={"node_id": node_id, "base_url": base_url})


def _audit(api: Api, node_id: str) -> list[tuple[str, str]]:
    with api.http(api.admin_token()) as http:
        rows = http.get("/api/v2/admin/audit").json()
    return [(row["action"], row["actor"]) for row in reversed(rows) if row["target"] == node_id]


def test_only_the_node_token_or_an_operator_registers_and_an_id_cannot_be_taken_over(live: Api) -> None:
    assert _register(live, None, "gpu-1", "http://10.0.0.5:8188").status_code == 401
    assert _register(live, admin_with_role(live, "viewer")[2], "gpu-1", "http://10.0.0.5:8188").status_code == 403
    first = _register(live, NODE_TOKEN, "gpu-1", "http://10.0.0.5:8188")
    assert first.status_code == 200 and first.json()["node_token"]
    own = first.json()["node_token"]
    # The shared token cannot re-point an existing node; its own token and an operator can.
    assert _register(live, "a-made-up-token-0123", "gpu-1", "http://10.0.0.66:8188").status_code == 401
    hijack = _register(live, NODE_TOKEN, "gpu-1", "http://10.0.0.66:8188")
    assert hijack.status_code == 403 and "own node token" in hijack.json()["detail"]
    again = _register(live, own, "gpu-1", "http://10.0.0.6:8188")
    assert again.status_code == 200 and again.json()["base_url"] == "http://10.0.0.6:8188"
    assert again.json()["node_token"] is None  # shown once only
    operator = admin_with_role(live, "operator")[2]
    assert _register(live, operator, "gpu-1", "http://10.0.0.7:8188").status_code == 200
    # Heartbeats: its own token (or the node token, or an operator); another node's token is refused.
    other = _register(live, NODE_TOKEN, "gpu-2", "http://10.0.0.8:8188").json()["node_token"]
    with live.http(own) as http:
        assert http.post("/api/v2/nodes/gpu-1/heartbeat", json={"queue_depth": 1}).status_code == 200
    with live.http(other) as http:
        assert http.post("/api/v2/nodes/gpu-1/heartbeat", json={"queue_depth": 999}).status_code == 401
    assert _audit(live, "gpu-1") == [
        ("node.register", "node-token"),
        ("node.register", "node"),
        ("node.register", _username_of(live, operator)),
    ]


def _username_of(api: Api, token: str) -> str:
    from api.security import decode_token

    return decode_token(token).subject


@pytest.mark.parametrize(
    ("base_url", "why"),
    [
        ("http://user:pw@10.0.0.5:8188", "user info"),
        ("http://10.0.0.5:8188/api", "path"),
        ("http://10.0.0.5:8188?x=1", "path"),
        ("http://10.0.0.5:8188\nHost: evil", "base_url"),  # the body schema or the parser
        ("ftp://10.0.0.5", "http"),
        ("http://:8188", "http"),
        ("http://10.0.0.5:99999", "URL"),
        ("http://8.8.8.8:8188", "allowed_networks"),
        ("http://169.254.169.254", "allowed_networks"),
        ("http://no-such-host.invalid:8188", "resolve"),
    ],
)
def test_a_base_url_is_parsed_and_must_be_in_the_allowed_networks(live: Api, base_url: str, why: str) -> None:
    operator = admin_with_role(live, "operator")[2]
    for path in ("/api/v2/nodes/register", "/api/v2/admin/nodes"):
        with live.http(operator) as http:
            response = http.post(path, json={"node_id": "n", "base_url": base_url})
        assert response.status_code == 422, response.text
        assert response.json()["fields"][0]["field"] == "base_url" and why in response.json()["detail"]
    with live.http(operator) as http:
        assert http.get("/api/v2/admin/nodes").json() == []


@pytest.fixture
def public_lab(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = yaml.safe_load((PROJECT_ROOT / "config.yaml").read_text())
    config.setdefault("nodes", {})["allowed_networks"] = ["203.0.113.0/24"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("COMFYWS_CONFIG_PATH", str(path))


def test_allowed_networks_are_configurable(public_lab: None, live: Api) -> None:
    accepted = _register(live, NODE_TOKEN, "lab-1", "https://203.0.113.9")
    assert accepted.status_code == 200 and accepted.json()["base_url"] == "https://203.0.113.9:443"
    assert _register(live, NODE_TOKEN, "lab-2", "http://10.0.0.5:8188").status_code == 422
