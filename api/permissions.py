"""The one permission table: each admin route (method, path) -> the least role that may call it.

viewer reads; operator also manages nodes and jobs; admin also manages clients, admin users, strategies and
secrets. A route that takes an admin token but is missing here is refused to everyone (fail closed), and a test
checks that every such route is listed and that docs/API.md shows this very table.
"""

from __future__ import annotations

from database.enums import AdminRole

RANK = {AdminRole.VIEWER: 0, AdminRole.OPERATOR: 1, AdminRole.ADMIN: 2}

_A = "/api/v2/admin"
VIEWER, OPERATOR, ADMIN = AdminRole.VIEWER, AdminRole.OPERATOR, AdminRole.ADMIN

PERMISSIONS: dict[tuple[str, str], AdminRole] = {
    ("GET", f"{_A}/tasks"): VIEWER,
    ("GET", f"{_A}/tasks/{{task_id}}"): VIEWER,
    ("POST", f"{_A}/tasks/{{task_id}}/cancel"): OPERATOR,
    ("POST", f"{_A}/tasks/{{task_id}}/retry"): OPERATOR,
    ("GET", f"{_A}/batches"): VIEWER,
    ("POST", f"{_A}/batches/{{batch_id}}/cancel"): OPERATOR,
    ("GET", f"{_A}/nodes"): VIEWER,
    ("GET", f"{_A}/nodes/{{node_id}}/health"): VIEWER,
    ("POST", f"{_A}/nodes"): OPERATOR,
    ("DELETE", f"{_A}/nodes/{{node_id}}"): OPERATOR,
    ("POST", f"{_A}/nodes/{{node_id}}/{{action}}"): OPERATOR,
    ("POST", "/api/v2/nodes/register"): OPERATOR,  # or the node token (new ids) / the node's own token
    ("POST", "/api/v2/nodes/{node_id}/heartbeat"): OPERATOR,  # or the node's own token / the node token
    ("GET", f"{_A}/strategy/{{group}}"): VIEWER,
    ("PUT", f"{_A}/strategy/{{group}}"): ADMIN,
    ("GET", f"{_A}/clients"): VIEWER,
    ("POST", f"{_A}/clients"): ADMIN,
    ("PATCH", f"{_A}/clients/{{client_id}}"): ADMIN,
    ("POST", f"{_A}/clients/{{client_id}}/disable"): ADMIN,
    ("POST", f"{_A}/clients/{{client_id}}/enable"): ADMIN,
    ("POST", f"{_A}/clients/{{client_id}}/rotate"): ADMIN,
    ("POST", "/api/v2/auth/register"): ADMIN,  # with an admin token; without one the registration policy rules
    ("GET", f"{_A}/users"): VIEWER,
    ("POST", f"{_A}/users"): ADMIN,
    ("PATCH", f"{_A}/users/{{user_id}}"): ADMIN,
    ("POST", f"{_A}/users/{{user_id}}/disable"): ADMIN,
    ("POST", f"{_A}/users/{{user_id}}/enable"): ADMIN,
    ("POST", f"{_A}/users/{{user_id}}/password"): ADMIN,
    ("GET", f"{_A}/performance/nodes"): VIEWER,
    ("GET", f"{_A}/performance/tasks"): VIEWER,
    ("GET", f"{_A}/overview"): VIEWER,
    ("GET", f"{_A}/database/status"): VIEWER,
    ("GET", f"{_A}/audit"): VIEWER,
    ("WS", f"{_A}/ws"): VIEWER,
}


def required_role(method: str, path: str) -> AdminRole | None:
    """The least role for a route, None when the route is not in the table (then nobody may call it)."""
    return PERMISSIONS.get((method.upper(), path))


def allows(role: AdminRole | str, needed: AdminRole) -> bool:
    return RANK[AdminRole(role)] >= RANK[needed]


def markdown_table() -> str:
    """The table as docs/API.md shows it (a test compares the two)."""
    lines = ["| method | path | least role |", "|---|---|---|"]
    lines += [f"| {method} | `{path}` | {role} |" for (method, path), role in PERMISSIONS.items()]
    return "\n".join(lines)
