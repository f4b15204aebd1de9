"""The OpenAPI contract holds against the live API: schemathesis generates valid and invalid requests for every
operation (a client token on client routes, an admin token on admin routes) and every answer must be a declared
status with a body matching its declared schema, never a 5xx other than the declared 503 of a down scheduler.

The API runs in its own uvicorn over its own databases: fuzzing changes admin accounts, clients and nodes, which
must not leak into the package's other tests. Bounded to about two minutes (examples per operation below)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import FlakyStrategyDefinition, Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err, Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import ADMIN_PASSWORD, ServerThread, api_env, free_port, reset_caches

EXAMPLES_PER_OPERATION = int(os.environ.get("COMFYWS_TEST_CONTRACT_EXAMPLES", "25"))


def no_unplanned_server_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """Like schemathesis's not_a_server_error, except for a 503 the operation declares: here the scheduler is
    down on purpose (submits answer 503 scheduler_unavailable) and /health/ready says so."""
    declared = case.operation.definition.raw.get("responses", {})
    if response.status_code == 503 and "503" in declared:
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [no_unplanned_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


class Live:
    def __init__(self, url: str) -> None:
        self.url = url
        with httpx.Client(base_url=url, timeout=30) as http:
            admin = http.post("/admin/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
            assert admin.status_code == 200, admin.text
            self.admin_token = admin.json()["access_token"]
            headers = {"Authorization": f"Bearer {self.admin_token}"}
            # Fuzzing may disable or re-role accounts: the admin it does that to is not the one testing.
            target = http.post("/api/v2/admin/users", headers=headers,
                               json={"username": "fuzz-target", "password": "fuzz-target-password"})  # fmt: skip
            assert target.status_code == 201, target.text
            self.target_user_id = target.json()["id"]
            me = [u for u in http.get("/api/v2/admin/users", headers=headers).json() if u["username"] == "admin"]
            self.admin_user_id = me[0]["id"]
            client = http.post("/api/v2/auth/register", headers=headers, json={"client_name": "contract"})
            assert client.status_code == 201, client.text
            creds = client.json()
            token = http.post("/api/v2/auth/token", json={"client_id": creds["client_id"],
                                                         "client_secret": creds["client_secret"]})  # fmt: skip
            self.client_token = token.json()["access_token"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, api_env_vars: dict[str, str]) -> Iterator[Live]:
    env = api_env(tmp_path_factory.mktemp("contract"), f"http://127.0.0.1:{free_port()}/api")
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    reset_caches()
    try:
        with ServerThread(free_port()) as server:
            yield Live(server.url)
    finally:
        os.environ.update({k: v for k, v in saved.items() if v is not None})
        reset_caches()


@pytest.fixture(scope="module")
def contract_schema(live: Live) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json")


def _fuzz(operation: schemathesis.APIOperation, mode: schemathesis.GenerationMode, live: Live) -> None:
    """Hypothesis over one operation's generated cases; raises the first (shrunk) contract failure."""
    admin = operation.path.startswith(("/api/v2/admin", "/api/v2/nodes"))
    headers = {"Authorization": f"Bearer {live.admin_token if admin else live.client_token}"}

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        if (case.path_parameters or {}).get("user_id") == live.admin_user_id:
            case.path_parameters["user_id"] = live.target_user_id  # keep the tester's own account usable
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)

    run()


def test_every_operation_keeps_its_contract(contract_schema: schemathesis.BaseSchema, live: Live) -> None:
    results = list(contract_schema.get_all_operations())
    assert not [r.err() for r in results if isinstance(r, Err)]  # the spec itself is valid
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    failures: list[str] = []
    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, live)
            except Unsatisfiable:
                continue  # nothing to negate (an operation without parameters): no invalid request exists
            except FlakyStrategyDefinition:
                continue  # Hypothesis's own strategy for a negated path parameter misbehaved: no request was judged
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - one report names every failing operation
                failures.append(f"{operation.label} [{mode.value}]: {type(exc).__name__}: {exc}"[:3000])
    assert len(operations) >= 30, [op.label for op in operations]
    assert not failures, "\n\n".join(failures)


def test_the_error_body_is_declared_on_every_operation(live: Live) -> None:
    spec = httpx.get(f"{live.url}/openapi.json").json()
    error_ref = "#/components/schemas/ErrorBody"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for code, response in responses.items():
                if code.startswith(("4", "5")) and path != "/health/ready":
                    schema_ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert schema_ref == error_ref, (method, path, code)
            assert "422" in responses or (not operation.get("parameters") and "requestBody" not in operation), (
                method, path,
            )
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # FastAPI's default 422 body is gone

