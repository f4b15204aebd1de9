"""Node registry CRUD and flags (the health monitor and balancer read these rows), and per-group strategies."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.admin_schemas import HeartbeatIn, NodeHealthOut, NodeIn, NodeOut, StrategyOut
from api.errors import Conflict, NotFound
from comfyws.config import get_config
from database.admin import repositories as admin_repo
from database.admin.models import Node
from database.enums import NodeSource, NodeStatus

FLAGS: dict[str, dict[str, bool]] = {
    "drain": {"draining": True},
    "undrain": {"draining": False},
    "disable": {"enabled": False},
    "enable": {"enabled": True},
}


def strategy_key(group: str) -> str:
    return f"strategy.{group}"


def _node(session: Session, node_id: str) -> Node:
    node = admin_repo.get_node(session, node_id)
    if node is None:
        raise NotFound(f"no node {node_id!r}")
    return node


def list_nodes(session: Session) -> list[NodeOut]:
    return [NodeOut.model_validate(n) for n in admin_repo.list_nodes(session)]


def add_node(session: Session, data: NodeIn, *, actor: str) -> NodeOut:
    if admin_repo.get_node(session, data.node_id) is not None:
        raise Conflict(f"node_id: {data.node_id!r} exists")
    node = admin_repo.upsert_node(
        session, data.node_id, source=NodeSource.DYNAMIC, **data.model_dump(exclude={"node_id"})
    )
    admin_repo.add_audit(
        session, actor=actor, action="node.add", target=data.node_id, detail=data.model_dump()
    )
    return NodeOut.model_validate(node)


def remove_node(session: Session, node_id: str, *, actor: str) -> None:
    admin_repo.delete_node(session, _node(session, node_id))
    admin_repo.add_audit(session, actor=actor, action="node.remove", target=node_id)


def set_flag(session: Session, node_id: str, action: str, *, actor: str) -> NodeOut:
    node = _node(session, node_id)
    for name, value in FLAGS[action].items():
        setattr(node, name, value)
    session.flush()
    admin_repo.add_audit(session, actor=actor, action=f"node.{action}", target=node_id)
    return NodeOut.model_validate(node)


def node_health(session: Session, node_id: str) -> NodeHealthOut:
    node = _node(session, node_id)
    checks = admin_repo.recent_health_checks(session, node_id)
    return NodeHealthOut.model_validate(
        {"node": NodeOut.model_validate(node), "checks": checks}, from_attributes=True
    )


def register(session: Session, data: NodeIn, *, actor: str) -> NodeOut:
    """A node announcing itself: created, or its address and capacity updated; it is seen now."""
    existing = admin_repo.get_node(session, data.node_id)
    fields = data.model_dump(exclude={"node_id"})
    if existing is None:
        fields |= {"source": NodeSource.DYNAMIC, "status": NodeStatus.UNKNOWN}
    node = admin_repo.upsert_node(session, data.node_id, **fields)
    admin_repo.touch_node(session, node)
    admin_repo.add_audit(session, actor=actor, action="node.register", target=data.node_id)
    return NodeOut.model_validate(node)


def heartbeat(session: Session, node_id: str, data: HeartbeatIn) -> NodeOut:
    node = admin_repo.touch_node(session, _node(session, node_id), **data.model_dump(exclude_none=True))
    return NodeOut.model_validate(node)


def get_strategy(session: Session, group: str) -> StrategyOut:
    stored = admin_repo.get_setting(session, strategy_key(group))
    if stored is not None:
        return StrategyOut(group=group, strategy=stored, source="admin")
    return StrategyOut(group=group, strategy=get_config().nodes.group(group).strategy, source="config")


def put_strategy(session: Session, group: str, strategy: str, *, actor: str) -> StrategyOut:
    admin_repo.put_setting(session, strategy_key(group), strategy, updated_by=actor)
    admin_repo.add_audit(
        session, actor=actor, action="strategy.set", target=group, detail={"strategy": strategy}
    )
    return StrategyOut(group=group, strategy=strategy, source="admin")  # type: ignore[arg-type]
