"""A job committed before today's checks existed (a lone surrogate in its prompt: Prefect cannot carry it) is
marked failed with the reason when the next API process recovers it, instead of staying pending forever and
failing again at every restart."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from database.client import repositories as client_repo
from database.engine import session_scope
from database.enums import DatabaseName, Priority
from database.shared import repositories as ledger
from tests.api.conftest import reset_caches
from tests.fixtures.stack import Stack, restart_api, stack_environment

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module", autouse=True)
def _package_environment(api_env_vars: dict[str, str]) -> Iterator[None]:
    """The stack may be started here, inside tests/api: give the package's environment back to the next modules."""
    yield
    os.environ.update(api_env_vars)
    reset_caches()


def test_a_pending_job_that_cannot_be_dispatched_ends_failed_with_the_reason(stack: Stack) -> None:
    client_id, secret = stack.register_client()
    token = stack.client_token(client_id, secret)
    job_id = f"undispatchable-{os.urandom(6).hex()}"
    with stack_environment(stack):
        with session_scope(DatabaseName.SHARED) as session:  # what an API without the checks committed
            ledger.create_job(session, job_id=job_id, client_id=client_id, task_type="text_to_image",
                              workflow_name="sd_basic", params={"prompt": "\ud800", "steps": 2},
                              priority=Priority.NORMAL, node_group="default")  # fmt: skip
        with session_scope(DatabaseName.CLIENT) as session:
            client_repo.add_client_job(session, job_id=job_id, client_id=client_id, task_type="text_to_image")
    assert stack.task(token, job_id)["status"] == "pending"
    restart_api(stack)  # recovers the pending jobs that have no flow run
    done = stack.wait_final(token, job_id, timeout=30)
    assert done["status"] == "failed", done
    assert "prompt" in done["error"] and "surrogate" in done["error"], done
    assert done["attempts"] == 0
