"""Issue 11 item 1: no secret has a published default. Missing secrets are generated once into the data dir (0600)
and shared by every process; production refuses to start without them, naming each; published defaults are
refused; CORS answers only the front ends' origins, never `*`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey
from pydantic import ValidationError

from api.settings import ApiSettings
from comfyws import secret_store
from comfyws.settings import get_settings
from tests.api.conftest import PROJECT_ROOT, Api, free_port
from tests.api.security_live import live_fixture  # noqa: F401 - fixture

SECRET_VARS = ("COMFYWS_API_JWT_SECRET", "COMFYWS_INTERNAL_TOKEN", "COMFYWS_API_NODE_TOKEN")
PRINT_SECRETS = (
    "from api.settings import get_api_settings as s; from comfyws.secret_store import internal_token as i; "
    "print(s().signing_secret(), i(), s().node_secret())"
)


def _env_without_secrets(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SECRET_VARS}
    return env | {"COMFYWS_DATA_DIR": str(data_dir), "COMFYWS_ENVIRONMENT": "development"} | extra


def test_missing_secrets_are_generated_once_private_and_shared_by_every_process(tmp_path: Path) -> None:
    env = _env_without_secrets(tmp_path / "data")
    runs = [
        subprocess.Popen([sys.executable, "-c", PRINT_SECRETS], env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE)
        for _ in range(3)
    ]  # started together: the first start's race must end with one value per secret
    outputs = [run.communicate(timeout=60)[0].decode().split() for run in runs]
    values = outputs[0]
    assert outputs == [values] * 3
    assert len(set(values)) == 3 and all(len(v) >= 32 for v in values)
    folder = tmp_path / "data" / "secrets"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for spec, value in zip(secret_store.ALL_STARTUP, values, strict=True):
        path = folder / spec.file_name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text().strip() == value
    later = subprocess.run([sys.executable, "-c", PRINT_SECRETS], env=env, cwd=PROJECT_ROOT, capture_output=True)
    assert later.stdout.decode().split() == values  # reused on the next start


def test_production_refuses_to_start_without_its_secrets_naming_each(tmp_path: Path) -> None:
    env = _env_without_secrets(tmp_path / "data", COMFYWS_ENVIRONMENT="production")
    api = subprocess.Popen(
        [sys.executable, "-m", "comfyws", "api", "--host", "127.0.0.1", "--port", str(free_port())],
        env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        output = api.communicate(timeout=60)[0].decode()
    finally:
        api.kill()
    assert api.returncode != 0
    for name in SECRET_VARS:
        assert f"{name} must be set in production" in output, output[-2000:]
    assert not (tmp_path / "data" / "secrets").exists()  # production never generates


@pytest.mark.parametrize("value", ["dev-internal-token", "change-me-development-only", "short"])
def test_published_defaults_and_short_values_are_refused_anywhere(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("COMFYWS_INTERNAL_TOKEN", value)
    get_settings.cache_clear()
    try:
        with pytest.raises(ValidationError, match="COMFYWS_INTERNAL_TOKEN"):
            ApiSettings()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


@pytest.fixture
def generated(monkeypatch: pytest.MonkeyPatch) -> None:
    """The live API below runs on generated secrets, as a default `comfyws run` does."""
    for name in SECRET_VARS:
        monkeypatch.delenv(name, raising=False)


def _forged(secret: str, claims: dict[str, object]) -> str:
    now = int(time.time())
    return jwt.encode({"alg": "HS256"}, {"iat": now, "exp": now + 100 * 365 * 86400, **claims},
                      OctKey.import_key(secret))


def test_tokens_signed_with_the_old_published_key_and_the_old_internal_token_are_refused(
    generated: None, live: Api
) -> None:
    old_key = "change-me-development-only"
    admin = _forged(old_key, {"sub": "admin", "kind": "admin", "scope": "admin:admin", "ver": 1})
    client_id, _ = live.new_client()
    client = _forged(old_key, {"sub": client_id, "kind": "client", "scope": "tasks", "ver": 1})
    with live.http(admin) as http:
        assert http.get("/api/v2/admin/clients").status_code == 401
    with live.http(client) as http:
        assert http.get("/api/v2/tasks").status_code == 401
    event = {"type": "result", "client_id": client_id, "task_id": "x", "results": [{"url": "http://evil/x.png"}]}
    with live.http() as http:
        injected = http.post("/internal/events", json=event, headers={"X-Comfyws-Internal-Token": "dev-internal-token"})
        assert injected.status_code == 401
        accepted = http.post(
            "/internal/events", json=event, headers={"X-Comfyws-Internal-Token": secret_store.internal_token()}
        )
        assert accepted.status_code == 202  # the generated token is the one the workers read


def _preflight(api: Api, origin: str) -> dict[str, str]:
    with api.http() as http:
        response = http.options(
            "/api/v2/tasks", headers={"Origin": origin, "Access-Control-Request-Method": "GET"}
        )
    return {k.lower(): v for k, v in response.headers.items()}


def test_cors_answers_the_front_ends_only_and_never_a_wildcard(live: Api) -> None:
    for origin in ("http://localhost:8002", "http://127.0.0.1:8001", "http://192.168.1.20:8001",
                   "http://127.0.0.1:53111"):
        assert _preflight(live, origin).get("access-control-allow-origin") == origin, origin
    for origin in ("https://evil.example", "http://evil.example:8080", "null", "http://localhost.evil.example"):
        assert "access-control-allow-origin" not in _preflight(live, origin), origin
    with live.http() as http:
        plain = http.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in {k.lower() for k in plain.headers}


@pytest.fixture
def exact_origins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYWS_API_CORS_ORIGINS", '["https://admin.example.com"]')
    monkeypatch.setenv("COMFYWS_API_CORS_ORIGIN_REGEX", "")


def test_configured_origins_replace_the_default_pattern(exact_origins: None, live: Api) -> None:
    allowed = _preflight(live, "https://admin.example.com").get("access-control-allow-origin")
    assert allowed == "https://admin.example.com"
    assert "access-control-allow-origin" not in _preflight(live, "http://127.0.0.1:8002")


def test_a_token_minted_for_longer_than_the_service_issues_is_refused(live: Api, api_env_vars: dict[str, str]) -> None:
    """Even signed with the right key (a leaked one): a client token living 100 years, an admin token for a day."""
    key = api_env_vars["COMFYWS_API_JWT_SECRET"]
    client_id, token = live.new_client()
    century = _forged(key, {"sub": client_id, "kind": "client", "scope": "tasks", "ver": 1})
    day = int(time.time()) + 86400
    admin = _forged(key, {"sub": "admin", "kind": "admin", "scope": "admin:admin", "ver": 1, "exp": day})
    with live.http(century) as http:
        assert http.get("/api/v2/tasks").status_code == 401
    with live.http(admin) as http:
        assert http.get("/api/v2/admin/nodes").status_code == 401
    with live.http(token) as http:
        assert http.get("/api/v2/tasks").status_code == 200  # what the service issues still works


@pytest.fixture
def ui_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYWS_API_FRONTEND_PORTS", "[9101, 9102]")  # what `comfyws run --client-port ...` passes


def test_the_default_pattern_follows_the_front_ends_ports(ui_ports: None, live: Api) -> None:
    assert _preflight(live, "http://192.168.1.20:9102").get("access-control-allow-origin") == "http://192.168.1.20:9102"
    assert "access-control-allow-origin" not in _preflight(live, "http://192.168.1.20:8002")
    assert "access-control-allow-origin" not in _preflight(live, "http://user@192.168.1.20:9102")
