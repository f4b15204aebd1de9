"""Issue 11 item 4: failed logins and token requests are throttled by identity and by address (429 + Retry-After
and an audit row), and a client's quota caps its submit rate and its unfinished jobs (429 + Retry-After)."""

from __future__ import annotations

import uuid

import pytest

from tests.api.conftest import ADMIN_PASSWORD, Api
from tests.api.security_live import live_fixture, login  # noqa: F401 - fixture

SUBMIT = {"prompt": "a lighthouse", "steps": 3, "width": 64, "height": 64, "seed": 1}


def _audit(api: Api) -> list[dict[str, object]]:
    with api.http(api.admin_token()) as http:
        rows: list[dict[str, object]] = http.get("/api/v2/admin/audit").json()
    return rows


def test_five_wrong_admin_passwords_lock_the_account_with_retry_after_and_an_audit_row(live: Api) -> None:
    statuses = [login(live, "admin", f"wrong-{n}").status_code for n in range(5)]
    assert statuses == [401] * 5
    locked = login(live, "admin", ADMIN_PASSWORD)  # even the right password waits for the window
    assert locked.status_code == 429 and locked.json()["error"] == "quota_exceeded"
    assert 1 <= int(locked.headers["Retry-After"]) <= 60
    with live.http() as http:
        other = http.post("/api/v2/auth/register", json={"client_name": f"c-{uuid.uuid4().hex[:6]}"})
    assert other.status_code == 201  # other identities and routes are untouched


def test_wrong_client_secrets_lock_the_client_id(live: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    client_id, secret = live.register()
    with live.http() as http:
        wrong = [
            http.post("/api/v2/auth/token", json={"client_id": client_id, "client_secret": f"nope-{n}"}).status_code
            for n in range(5)
        ]
        locked = http.post("/api/v2/auth/token", json={"client_id": client_id, "client_secret": secret})
    assert wrong == [401] * 5
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1
    # The lock-out is in the audit log once (the try that reached the limit), with who and from where.
    rows = [row for row in _audit(live) if row["action"] == "auth.lockout"]
    assert len(rows) == 1 and rows[0]["target"] == f"client:{client_id}"
    assert rows[0]["detail"]["address"] == "127.0.0.1"  # type: ignore[index]


def test_failures_from_one_address_over_many_identities_lock_the_address(
    live: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    with live.http() as http:
        for n in range(20):
            response = http.post("/api/v2/auth/token", json={"client_id": f"cl_guess{n}", "client_secret": "x"})
            assert response.status_code == 401, (n, response.text)
        client_id, secret = live.register()
        locked = http.post("/api/v2/auth/token", json={"client_id": client_id, "client_secret": secret})
    assert locked.status_code == 429 and "Retry-After" in locked.headers


def _submit(api: Api, token: str) -> tuple[int, dict[str, str]]:
    with api.http(token) as http:
        response = http.post("/api/v2/tasks/text-to-image", json=SUBMIT)
    return response.status_code, dict(response.headers)


def _set_quota(api: Api, client_id: str, **limits: int | None) -> dict[str, object]:
    with api.http(api.admin_token()) as http:
        response = http.patch(f"/api/v2/admin/clients/{client_id}", json=limits)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_clients_submit_rate_is_part_of_its_quota(live: Api) -> None:
    client_id, token = live.new_client()
    shown = _set_quota(live, client_id, jobs_per_minute=2, max_concurrent_jobs=None, daily_quota=None)
    assert shown["jobs_per_minute"] == 2 and shown["max_concurrent_jobs"] is None
    accepted = [_submit(live, token)[0] for _ in range(2)]
    status, headers = _submit(live, token)
    assert accepted == [202, 202] and status == 429 and 1 <= int(headers["retry-after"]) <= 60
    other_id, other_token = live.new_client()
    _set_quota(live, other_id, jobs_per_minute=None, max_concurrent_jobs=None)
    assert _submit(live, other_token)[0] == 202  # one client's rate is its own


def test_a_clients_unfinished_jobs_are_capped(live: Api) -> None:
    client_id, token = live.new_client()
    _set_quota(live, client_id, jobs_per_minute=None, max_concurrent_jobs=1)
    assert _submit(live, token)[0] == 202  # Prefect is unreachable here: the job stays pending (unfinished)
    status, headers = _submit(live, token)
    assert status == 429 and int(headers["retry-after"]) >= 1
    _set_quota(live, client_id, max_concurrent_jobs=None)
    assert _submit(live, token)[0] == 202


@pytest.fixture
def unthrottled_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYWS_API_LOGIN_FAILURES_PER_MINUTE_PER_ADDRESS", "10000")


async def test_a_flood_of_guesses_does_not_starve_other_requests(unthrottled_address: None, live: Api) -> None:
    """60 wrong secrets at once (distinct ids, so no lock-out) take their scrypt turns on a few threads; a plain
    request sent meanwhile still gets a worker thread at once instead of waiting behind every hash."""
    import asyncio
    import time

    import httpx

    async with httpx.AsyncClient(base_url=live.url, timeout=60) as http:

        async def guess(n: int) -> int:
            body = {"client_id": f"cl_flood{n}", "client_secret": "wrong"}
            return (await http.post("/api/v2/auth/token", json=body)).status_code

        started = time.monotonic()
        flood = asyncio.gather(*(guess(n) for n in range(60)))
        await asyncio.sleep(0.2)  # the guesses are in
        asked = time.monotonic()
        catalog = await http.get("/api/v2/workflows")
        waited = time.monotonic() - asked
        statuses = await flood
        flood_s = time.monotonic() - started
    assert catalog.status_code == 200 and set(statuses) == {401}
    assert waited < flood_s / 3, (waited, flood_s)


def test_a_throttle_whose_redis_is_down_lets_requests_through() -> None:
    """A Redis outage must not turn every login into a 500: the throttle fails open (and logs it)."""
    from limits.storage import RedisStorage

    from api.throttle import Key, Throttle, identity_failures
    from tests.api.conftest import free_port

    throttle = Throttle(RedisStorage(f"redis://127.0.0.1:{free_port()}/0"))
    key = Key("login-failures:client", "someone")
    assert throttle.hit(identity_failures(), key) is True
    assert throttle.retry_after(identity_failures(), key) is None
