"""Client registration and tokens, admin login, and every way a token stops working."""

from __future__ import annotations

import base64
import os
import time

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey
from pydantic import ValidationError

from api.settings import ApiSettings, get_api_settings
from comfyws.settings import get_settings
from database.client.models import AccessLog
from database.client.repositories import recent_access_logs
from database.engine import session_scope
from database.enums import DatabaseName
from tests.api.conftest import Api, poll


def _me(api: Api, token: str) -> int:
    with api.http(token) as http:
        return http.get("/api/v2/tasks").status_code


def test_register_then_token_by_json_form_and_basic(api: Api) -> None:
    client_id, secret = api.register()
    with api.http() as http:
        by_json = http.post("/api/v2/auth/token", json={"client_id": client_id, "client_secret": secret})
        by_form = http.post(
            "/api/v2/auth/token",
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        )
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        by_basic = http.post(
            "/api/v2/auth/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        )
    for response in (by_json, by_form, by_basic):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"] == "bearer" and body["expires_in"] > 0
        assert _me(api, body["access_token"]) == 200


def test_duplicate_name_and_wrong_secret_are_refused(api: Api) -> None:
    client_id, _ = api.register("dup-name")
    with api.http() as http:
        again = http.post("/api/v2/auth/register", json={"client_name": "dup-name"})
        wrong = http.post("/api/v2/auth/token", json={"client_id": client_id, "client_secret": "nope"})
        grant = http.post("/api/v2/auth/token", data={"grant_type": "password", "client_id": client_id})
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    assert wrong.status_code == 401 and set(wrong.json()) == {"error", "detail"}
    assert grant.status_code == 400 and "grant_type" in grant.json()["detail"]


def test_missing_malformed_tampered_and_expired_tokens_are_401(api: Api) -> None:
    client_id, token = api.new_client()
    header, payload, signature = token.split(".")
    forged_payload = (
        base64.urlsafe_b64encode(
            base64.urlsafe_b64decode(payload + "==").replace(client_id.encode(), b"cl_someoneelse000000")
        )
        .rstrip(b"=")
        .decode()
    )
    key = OctKey.import_key("api-test-jwt-secret-0123456789abcdef")
    now = int(time.time())
    expired = jwt.encode(
        {"alg": "HS256"},
        {
            "sub": client_id,
            "kind": "client",
            "scope": "tasks",
            "ver": 1,
            "iat": now - 7200,
            "exp": now - 3600,
        },
        key,
    )
    other_key = jwt.encode(
        {"alg": "HS256"},
        {"sub": client_id, "kind": "client", "ver": 1, "exp": now + 60},
        OctKey.import_key("not-the-server-secret-0123456789"),
    )
    with api.http() as http:
        assert http.get("/api/v2/tasks").status_code == 401
    for bad in ("garbage", f"{header}.{forged_payload}.{signature}", expired, other_key):
        with api.http(bad) as http:
            response = http.get("/api/v2/tasks")
        assert response.status_code == 401, bad
        assert response.json()["error"] == "unauthorized"


def test_admin_token_is_not_a_client_token_and_vice_versa(api: Api) -> None:
    _, client_token = api.new_client()
    admin = api.admin_token()
    assert _me(api, admin) == 401
    with api.http(client_token) as http:
        assert http.get("/api/v2/admin/clients").status_code == 401


def test_rotation_and_disabling_revoke_tokens(api: Api) -> None:
    client_id, secret = api.register()
    token = api.token(client_id, secret)
    admin = api.admin_token()
    with api.http(admin) as http:
        rotated = http.post(f"/api/v2/admin/clients/{client_id}/rotate")
    assert rotated.status_code == 200
    new_secret = rotated.json()["client_secret"]
    assert _me(api, token) == 401
    with api.http() as http:
        old = http.post("/api/v2/auth/token", json={"client_id": client_id, "client_secret": secret})
    assert old.status_code == 401
    fresh = api.token(client_id, new_secret)
    assert _me(api, fresh) == 200
    with api.http(admin) as http:
        assert http.post(f"/api/v2/admin/clients/{client_id}/disable").status_code == 200
    assert _me(api, fresh) == 401
    with api.http() as http:
        refused = http.post("/api/v2/auth/token", json={"client_id": client_id, "client_secret": new_secret})
    assert refused.status_code == 401
    with api.http(admin) as http:
        assert http.post(f"/api/v2/admin/clients/{client_id}/enable").status_code == 200
    assert _me(api, fresh) == 401  # tokens from before the disable stay dead
    assert _me(api, api.token(client_id, new_secret)) == 200


def test_admin_login_rejects_wrong_password(api: Api) -> None:
    with api.http() as http:
        response = http.post("/admin/auth/login", json={"username": "admin", "password": "wrong-password"})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_admin_only_registration(api: Api) -> None:
    os.environ["COMFYWS_API_REGISTRATION"] = "admin"
    get_api_settings.cache_clear()
    try:
        with api.http() as http:
            refused = http.post("/api/v2/auth/register", json={"client_name": "walk-in"})
        with api.http(api.admin_token()) as http:
            allowed = http.post("/api/v2/auth/register", json={"client_name": "invited"})
    finally:
        del os.environ["COMFYWS_API_REGISTRATION"]
        get_api_settings.cache_clear()
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert allowed.status_code == 201


def test_placeholder_secret_is_refused_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYWS_ENVIRONMENT", "production")
    monkeypatch.delenv("COMFYWS_API_JWT_SECRET")
    get_settings.cache_clear()
    try:
        with pytest.raises(ValidationError, match="COMFYWS_API_JWT_SECRET"):
            ApiSettings()
        monkeypatch.setenv("COMFYWS_API_JWT_SECRET", "a-real-secret-from-the-operator-123")
        assert ApiSettings().jwt_secret.get_secret_value().startswith("a-real")
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_client_requests_reach_the_access_log(api: Api) -> None:
    client_id, token = api.new_client()
    with api.http(token) as http:
        http.get("/api/v2/tasks")

    def logged() -> list[AccessLog]:
        with session_scope(DatabaseName.CLIENT) as session:
            return recent_access_logs(session, client_id=client_id)

    rows = poll(logged, timeout=5, what="access log rows")
    assert (rows[0].method, rows[0].path, rows[0].status) == ("GET", "/api/v2/tasks", 200)
