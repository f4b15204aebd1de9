"""Node registry CRUD and flags (the health monitor and balancer read these rows), and per-group strategies."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from api.admin_schemas import HeartbeatIn, NodeHealthOut, NodeIn, NodeOut, StrategyOut
from api.errors import Conflict, Forbidden, InvalidParameters, NotFound, Unauthorized
from api.security import NodeCredentials, new_secret
from api.security_schemas import RegisteredNode
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
    fields = data.model_dump(exclude={"node_id"}) | {"base_url": checked_base_url(data.base_url)}
    node = admin_repo.upsert_node(session, data.node_id, source=NodeSource.DYNAMIC, **fields)
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


def register(session: Session, data: NodeIn, caller: NodeCredentials) -> RegisteredNode:
    """A node announcing itself: created (its own token shown once), or, with that token or by an operator, its
    address and capacity updated; it is seen now. The shared node token alone cannot take over an existing id."""
    base_url = checked_base_url(data.base_url)
    existing = admin_repo.get_node(session, data.node_id)
    if caller.admin is None:
        own = existing is not None and _own_token(existing, caller.token)
        if not own and not caller.shared_token:
            raise Unauthorized("registering a node needs the node token, its own token or an operator's token")
        if existing is not None and not own:
            raise Forbidden(f"node {data.node_id!r} exists: re-registering it needs its own node token or an operator")
    fields = data.model_dump(exclude={"node_id"}) | {"base_url": base_url}
    node_token = None
    if existing is None:
        node_token = new_secret()
        fields |= {"source": NodeSource.DYNAMIC, "status": NodeStatus.UNKNOWN, "token_hash": _digest(node_token)}
    node = admin_repo.upsert_node(session, data.node_id, **fields)
    admin_repo.touch_node(session, node)
    detail = {k: v for k, v in fields.items() if k != "token_hash"} | {"new": existing is None}
    admin_repo.add_audit(session, actor=caller.actor, action="node.register", target=data.node_id, detail=detail)
    return RegisteredNode.model_validate(node).model_copy(update={"node_token": node_token})


def heartbeat(session: Session, node_id: str, data: HeartbeatIn, caller: NodeCredentials) -> NodeOut:
    """From the node itself (its own token, or the shared node token) or an operator."""
    node = _node(session, node_id)
    if caller.admin is None and not caller.shared_token and not _own_token(node, caller.token):
        raise Unauthorized(f"not the token of node {node_id!r}")
    node = admin_repo.touch_node(session, node, **data.model_dump(exclude_none=True))
    return NodeOut.model_validate(node)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _own_token(node: Node, token: str) -> bool:
    return node.token_hash is not None and hmac.compare_digest(node.token_hash, _digest(token))


def checked_base_url(raw: str) -> str:
    """`scheme://host:port` of a node's URL, refused (422) unless http(s) with a host, no user info, path, query
    or control characters, and every address the host resolves to inside config.yaml nodes.allowed_networks."""
    def bad(message: str) -> InvalidParameters:
        return InvalidParameters([{"field": "base_url", "message": message}])

    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in raw):
        raise bad("must not contain spaces or control characters")
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise bad(f"not a URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad("must be http:// or https:// with a host, e.g. http://10.0.0.5:8188")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise bad("must not carry user info")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise bad("must be scheme://host:port with no path, query or fragment")
    port = port or (443 if parts.scheme == "https" else 80)
    _check_network(parts.hostname, port, bad)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}"


def _check_network(host: str, port: int, bad: Callable[[str], InvalidParameters]) -> None:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise bad(f"host {host!r} does not resolve: {exc}") from exc
    allowed = get_config().nodes.allowed_networks
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not any(address.version == net.version and address in net for net in allowed):
            raise bad(f"{host} ({address}) is outside nodes.allowed_networks {[str(n) for n in allowed]}")


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
