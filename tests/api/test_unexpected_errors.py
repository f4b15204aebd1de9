"""An exception no handler knows becomes a JSON 500 with a request id, logged with its traceback under that id,
and the connection stays open for the next request (a real uvicorn, the project's handlers installed)."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import threading

import pytest
import uvicorn
from fastapi import FastAPI

from api import handlers
from tests.api.conftest import free_port, poll


def _app() -> FastAPI:
    app = FastAPI()
    handlers.install(app)

    @app.get("/boom")
    def boom() -> dict[str, str]:
        raise RuntimeError("something nobody planned for")

    @app.get("/fine")
    def fine() -> dict[str, str]:
        return {"status": "ok"}

    return app


def test_an_unexpected_error_is_a_json_500_with_a_request_id_and_keeps_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:
        poll(lambda: server.started, timeout=30, what="uvicorn start")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        with caplog.at_level(logging.ERROR, logger="api.handlers"):
            connection.request("GET", "/boom")
            response = connection.getresponse()
            body = json.loads(response.read())
        assert response.status == 500
        assert response.getheader("content-type") == "application/json"
        assert body["error"] == "internal_error"
        request_id = body["request_id"]
        assert request_id in body["detail"] and response.getheader("x-request-id") == request_id
        logged = [r for r in caplog.records if request_id in r.getMessage()]
        assert logged and logged[0].exc_info is not None  # the traceback is in the log under that id
        sock = connection.sock
        connection.request("GET", "/fine")  # the same socket: the server did not drop it
        again = connection.getresponse()
        assert again.status == 200 and json.loads(again.read()) == {"status": "ok"}
        assert connection.sock is sock
        connection.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
