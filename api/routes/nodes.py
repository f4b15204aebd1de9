"""Node registry: admin CRUD and flags, node self-registration and heartbeats, per-group strategies."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, status

from api.admin_schemas import HeartbeatIn, NodeHealthOut, NodeIn, NodeOut, StrategyIn, StrategyOut
from api.deps import AdminSession, AdminUser, NodeCaller
from api.schemas import error_responses
from api.security_schemas import RegisteredNode
from api.services import nodes

router = APIRouter(
    prefix="/api/v2", tags=["nodes"], responses=error_responses(400, 401, 403, 404, 409, 422, 500)
)

NodeAction = Literal["drain", "undrain", "disable", "enable"]


@router.get("/admin/nodes", response_model=list[NodeOut])
def list_nodes(admin: AdminUser, session: AdminSession) -> list[NodeOut]:
    """Every known node with its state and flags."""
    return nodes.list_nodes(session)


@router.post("/admin/nodes", status_code=status.HTTP_201_CREATED, response_model=NodeOut)
def add_node(body: NodeIn, admin: AdminUser, session: AdminSession) -> NodeOut:
    """Add a node."""
    return nodes.add_node(session, body, actor=admin.username)


@router.delete("/admin/nodes/{node_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_node(node_id: str, admin: AdminUser, session: AdminSession) -> None:
    """Remove a node."""
    nodes.remove_node(session, node_id, actor=admin.username)


@router.post("/admin/nodes/{node_id}/{action}", response_model=NodeOut)
def node_action(node_id: str, action: NodeAction, admin: AdminUser, session: AdminSession) -> NodeOut:
    """Drain (no new jobs), undrain, disable or enable a node."""
    return nodes.set_flag(session, node_id, action, actor=admin.username)


@router.get("/admin/nodes/{node_id}/health", response_model=NodeHealthOut)
def node_health(node_id: str, admin: AdminUser, session: AdminSession) -> NodeHealthOut:
    """A node's state and its recent health checks."""
    return nodes.node_health(session, node_id)


@router.post("/nodes/register", response_model=RegisteredNode)
def register_node(body: NodeIn, caller: NodeCaller, session: AdminSession) -> RegisteredNode:
    """A node announces itself: the node token (new ids; the node's own token is returned once), that own token
    (re-registering) or an operator."""
    return nodes.register(session, body, caller)


@router.post("/nodes/{node_id}/heartbeat", response_model=NodeOut)
def heartbeat(node_id: str, body: HeartbeatIn, caller: NodeCaller, session: AdminSession) -> NodeOut:
    """A registered node says it is alive (its own token, the node token or an operator)."""
    return nodes.heartbeat(session, node_id, body, caller)


@router.get("/admin/strategy/{group}", response_model=StrategyOut)
def get_strategy(group: str, admin: AdminUser, session: AdminSession) -> StrategyOut:
    """The load-balancing strategy of a node group."""
    return nodes.get_strategy(session, group)


@router.put("/admin/strategy/{group}", response_model=StrategyOut)
def put_strategy(group: str, body: StrategyIn, admin: AdminUser, session: AdminSession) -> StrategyOut:
    """Set the load-balancing strategy of a node group."""
    return nodes.put_strategy(session, group, body.strategy, actor=admin.username)
