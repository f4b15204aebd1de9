"""Issue 11 item 3: tokens carry a version checked on every request; disable, re-enable, role and password changes
and secret rotation revoke them, and close that identity's open WebSockets with 4401 within a second (also in
another API process, over Redis). Admin access tokens are short-lived, renewed with a refresh token."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from api.security import TokenKind, decode_token
from database.client.models import Client
from database.engine import session_scope
from database.enums import DatabaseName
from tests.api.conftest import INTERNAL_TOKEN, Api, ServerThread, free_port
from tests.api.security_live import admin_with_role, closed_code, live_fixture, login, subscribed, ws  # noqa: F401

# The target is one second; the margin is for this shared 2-core test machine (load average 5-7). The sweep is
# set to 30 s in these tests, so only the revocation event can close a socket this fast.
REVOKED_WITHIN_S = 1.5


@pytest.fixture(autouse=True)
def _slow_sweep(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    sweep = "0.5" if "sweep" in request.node.name else "30"
    monkeypatch.setenv("COMFYWS_API_REVOCATION_SWEEP_S", sweep)


def _status(api: Api, token: str, path: str) -> int:
    with api.http(token) as http:
        return http.get(path).status_code


def test_an_admin_token_dies_on_disable_and_stays_dead_after_re_enable(live: Api) -> None:
    user_id, _, token = admin_with_role(live, "operator")
    assert _status(live, token, "/api/v2/admin/nodes") == 200
    with live.http(live.admin_token()) as admin:
        assert admin.post(f"/api/v2/admin/users/{user_id}/disable").status_code == 200
        assert _status(live, token, "/api/v2/admin/nodes") == 401
        assert admin.post(f"/api/v2/admin/users/{user_id}/enable").status_code == 200
    assert _status(live, token, "/api/v2/admin/nodes") == 401


@pytest.mark.parametrize("change", ["role", "password"])
def test_a_role_or_password_change_revokes_the_accounts_tokens(live: Api, change: str) -> None:
    user_id, username, token = admin_with_role(live, "operator")
    with live.http(live.admin_token()) as admin:
        if change == "role":
            changed = admin.patch(f"/api/v2/admin/users/{user_id}", json={"role": "viewer"})
        else:
            changed = admin.post(f"/api/v2/admin/users/{user_id}/password", json={"password": "brand-new-password"})
        assert changed.status_code == 200, changed.text
    assert _status(live, token, "/api/v2/admin/nodes") == 401
    if change == "password":
        assert login(live, username, "brand-new-password").status_code == 200
    with live.http(live.admin_token()) as admin:
        actions = {(row["action"], row["target"]) for row in admin.get("/api/v2/admin/audit").json()}
    assert ("admin_user.role" if change == "role" else "admin_user.password", username) in actions


def test_client_rotation_disable_and_enable_revoke_its_tokens(live: Api) -> None:
    client_id, secret = live.register()
    token = live.token(client_id, secret)
    with live.http(live.admin_token()) as admin:
        admin.post(f"/api/v2/admin/clients/{client_id}/disable")
        admin.post(f"/api/v2/admin/clients/{client_id}/enable")
    assert _status(live, token, "/api/v2/tasks") == 401
    fresh = live.token(client_id, secret)
    assert _status(live, fresh, "/api/v2/tasks") == 200
    with live.http(live.admin_token()) as admin:
        admin.post(f"/api/v2/admin/clients/{client_id}/rotate")
    assert _status(live, fresh, "/api/v2/tasks") == 401


def test_admin_access_tokens_are_short_lived_and_renewed_with_the_refresh_token(live: Api) -> None:
    user_id, username, _ = admin_with_role(live, "viewer")
    with live.http() as http:
        signed_in = http.post("/admin/auth/login", json={"username": "admin", "password": "api-test-admin-password"})
    session = signed_in.json()
    assert session["expires_in"] == 900 and session["refresh_expires_in"] >= 3600
    claims = decode_token(session["access_token"])
    assert claims.kind is TokenKind.ADMIN and claims.expires_at - time.time() <= 900
    # The refresh token is no access token, and an access token does not refresh.
    assert _status(live, session["refresh_token"], "/api/v2/admin/nodes") == 401
    with live.http() as http:
        assert http.post("/admin/auth/refresh", json={"refresh_token": session["access_token"]}).status_code == 401
        renewed = http.post("/admin/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert renewed.status_code == 200 and renewed.json()["access_token"] != session["access_token"]
    assert _status(live, renewed.json()["access_token"], "/api/v2/admin/nodes") == 200
    # A disabled account's refresh token is dead too.
    viewer = login(live, username, _viewer_password(live, user_id)).json()
    with live.http(live.admin_token()) as admin:
        admin.post(f"/api/v2/admin/users/{user_id}/disable")
    with live.http() as http:
        assert http.post("/admin/auth/refresh", json={"refresh_token": viewer["refresh_token"]}).status_code == 401


def _viewer_password(api: Api, user_id: int) -> str:
    password = f"pw-{uuid.uuid4().hex}"
    with api.http(api.admin_token()) as admin:
        assert admin.post(f"/api/v2/admin/users/{user_id}/password", json={"password": password}).status_code == 200
    return password


async def _revoked_after(socket: object, revoke: object) -> tuple[int | None, float]:
    started = time.monotonic()
    await asyncio.to_thread(revoke)  # type: ignore[arg-type]
    code = await closed_code(socket, timeout=5)  # type: ignore[arg-type]
    return code, time.monotonic() - started


async def test_a_disabled_clients_socket_closes_with_4401_within_a_second(live: Api) -> None:
    client_id, token = live.new_client()
    async with ws(live, "/api/v2/ws/tasks", token) as socket:
        await subscribed(socket, {"type": "progress", "client_id": client_id, "task_id": "t"}, INTERNAL_TOKEN, live)

        def disable() -> None:
            with live.http(live.admin_token()) as admin:
                assert admin.post(f"/api/v2/admin/clients/{client_id}/disable").status_code == 200

        code, elapsed = await _revoked_after(socket, disable)
    assert code == 4401 and elapsed < REVOKED_WITHIN_S, (code, elapsed)


async def test_a_disabled_admins_feed_closes_with_4401_within_a_second(live: Api) -> None:
    user_id, _, token = admin_with_role(live, "viewer")
    async with ws(live, "/api/v2/admin/ws", token) as socket:
        await subscribed(socket, {"type": "progress", "client_id": "c", "task_id": "t"}, INTERNAL_TOKEN, live)
        admin_token = live.admin_token()

        def disable() -> None:
            with live.http(admin_token) as admin:
                assert admin.post(f"/api/v2/admin/users/{user_id}/disable").status_code == 200

        code, elapsed = await _revoked_after(socket, disable)
    assert code == 4401 and elapsed < REVOKED_WITHIN_S, (code, elapsed)


async def test_a_revocation_made_elsewhere_is_found_by_the_sweep(live: Api) -> None:
    """Another API process without Redis changed the row: this process's sweep closes the socket anyway."""
    client_id, token = live.new_client()
    async with ws(live, "/api/v2/ws/tasks", token) as socket:
        await subscribed(socket, {"type": "progress", "client_id": client_id, "task_id": "t"}, INTERNAL_TOKEN, live)

        def bump() -> None:
            with session_scope(DatabaseName.CLIENT) as session:
                session.execute(update(Client).where(Client.id == client_id).values(is_active=False))

        code, elapsed = await _revoked_after(socket, bump)
    assert code == 4401 and elapsed < 3.0, (code, elapsed)


@pytest.fixture
def two_apis_over_redis(live: Api, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Api, Api]]:
    """A second API process over the same databases, both sharing events (and revocations) through Redis."""
    from api.throttle import get_throttle
    from tests.api.conftest import reset_caches

    monkeypatch.setenv("COMFYWS_REDIS_URL", "redis://127.0.0.1:6379/0")
    reset_caches()
    get_throttle.cache_clear()
    with ServerThread(free_port()) as first, ServerThread(free_port()) as second:
        yield Api(first.url, live.root), Api(second.url, live.root)


async def test_a_revocation_on_one_api_closes_the_socket_held_by_another(two_apis_over_redis: tuple[Api, Api]) -> None:
    first, second = two_apis_over_redis
    client_id, token = first.new_client()
    async with ws(second, "/api/v2/ws/tasks", token) as socket:
        await subscribed(socket, {"type": "progress", "client_id": client_id, "task_id": "t"}, INTERNAL_TOKEN, second)
        admin_token = first.admin_token()

        def rotate() -> None:
            with first.http(admin_token) as admin:
                assert admin.post(f"/api/v2/admin/clients/{client_id}/rotate").status_code == 200

        code, elapsed = await _revoked_after(socket, rotate)
    assert code == 4401 and elapsed < REVOKED_WITHIN_S, (code, elapsed)
