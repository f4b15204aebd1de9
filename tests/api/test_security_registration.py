"""Issue 11 item 5: the registration policy (config.yaml auth.registration: open | token | closed; closed by default
in production), default quotas for self-registered clients, and an hourly allowance per address."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from api.settings import ApiSettings
from comfyws.config import get_config
from comfyws.settings import get_settings
from tests.api.conftest import PROJECT_ROOT, Api
from tests.api.security_live import admin_with_role, live_fixture  # noqa: F401 - fixture


def _register(api: Api, *, token: str | None = None, registration_token: str | None = None) -> tuple[int, dict]:
    headers = {"X-Registration-Token": registration_token} if registration_token else {}
    with api.http(token) as http:
        response = http.post(
            "/api/v2/auth/register", json={"client_name": f"c-{uuid.uuid4().hex[:8]}"}, headers=headers
        )
    return response.status_code, response.json()


def _config_with(tmp_path: Path, auth: dict[str, object]) -> Path:
    config = yaml.safe_load((PROJECT_ROOT / "config.yaml").read_text())
    config["auth"] = auth
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_open_registration_gives_the_configured_default_quota(live: Api) -> None:
    status, created = _register(live)
    assert status == 201
    with live.http(live.admin_token()) as http:
        rows = {c["client_id"]: c for c in http.get("/api/v2/admin/clients").json()["items"]}
    quota = get_config().auth.self_registered_quota
    mine = rows[created["client_id"]]
    assert (mine["daily_quota"], mine["jobs_per_minute"], mine["max_concurrent_jobs"]) == (
        quota.daily_quota, quota.jobs_per_minute, quota.max_concurrent_jobs
    )


@pytest.fixture
def closed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COMFYWS_CONFIG_PATH", str(_config_with(tmp_path, {"registration": "closed"})))


def test_closed_registration_leaves_client_creation_to_admins(closed: None, live: Api) -> None:
    status, refused = _register(live)
    assert status == 403 and refused["error"] == "forbidden" and "closed" in refused["detail"]
    assert _register(live, token=admin_with_role(live, "operator")[2])[0] == 403
    status, created = _register(live, token=live.admin_token())
    assert status == 201 and created["client_secret"]


@pytest.fixture
def token_policy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("COMFYWS_CONFIG_PATH", str(_config_with(tmp_path, {"registration": "token"})))
    token = f"partner-{uuid.uuid4().hex}"
    monkeypatch.setenv("COMFYWS_API_REGISTRATION_TOKEN", token)
    return token


def test_token_registration_needs_the_registration_token(token_policy: str, live: Api) -> None:
    assert _register(live)[0] == 403
    assert _register(live, registration_token="a-guess-0123456789")[0] == 403
    assert _register(live, registration_token=token_policy)[0] == 201


def test_production_is_closed_by_default_and_the_config_can_open_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COMFYWS_ENVIRONMENT", "production")
    monkeypatch.setenv("COMFYWS_CONFIG_PATH", str(_config_with(tmp_path, {})))
    get_settings.cache_clear()
    get_config.cache_clear()
    try:
        assert ApiSettings().registration_mode() == "closed"
        monkeypatch.setenv("COMFYWS_CONFIG_PATH", str(_config_with(tmp_path, {"registration": "open"})))
        get_config.cache_clear()
        assert ApiSettings().registration_mode() == "open"
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        get_config.cache_clear()


@pytest.fixture
def three_an_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYWS_API_REGISTRATIONS_PER_HOUR", "3")


def test_an_address_may_register_only_so_many_clients_an_hour(three_an_hour: None, live: Api) -> None:
    assert [_register(live)[0] for _ in range(3)] == [201] * 3
    with live.http() as http:
        refused = http.post("/api/v2/auth/register", json={"client_name": "one-too-many"})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 60
    assert _register(live, token=live.admin_token())[0] == 201  # an admin is not counted
