"""The one place errors become responses: `{"error": code, "detail": message}` (plus `fields` for 422)."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError
from api.settings import get_api_settings
from database.errors import JobNotFoundError

log = logging.getLogger(__name__)


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail, **extra}


class ErrorResponse(JSONResponse):
    """An error body in plain ASCII JSON: a message echoing what the client sent (a lone surrogate, say) can
    always be encoded, so an answer about bad input never becomes a 500 itself."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":"), default=str).encode("ascii")


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
    if "retry_after" in exc.extra:  # 429s say when to come back (RFC 9110 Retry-After, whole seconds)
        headers["Retry-After"] = str(exc.extra["retry_after"])
    return ErrorResponse(
        error_body(exc.code, exc.detail, **exc.extra), status_code=exc.status_code, headers=headers
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [
        # ("body", "width") -> "width": clients name fields, not where FastAPI found them.
        {"field": ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]), "message": e["msg"]}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return ErrorResponse(error_body("validation_error", detail, fields=fields), status_code=422)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
        exc.status_code, "http_error"
    )
    return ErrorResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)


async def _job_not_found(_request: Request, exc: Exception) -> JSONResponse:
    return ErrorResponse(error_body("not_found", str(exc)), status_code=404)


class BodyTooLarge(StarletteHTTPException):
    """Raised while the body is read (FastAPI lets HTTP exceptions from there through as they are)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body: larger than the {limit} byte limit")


UPLOAD_PATHS = ("/api/v2/upload/",)
INTERNAL_PATHS = ("/internal/",)
_INTERNAL_LIMIT = 64 * 1024 * 1024  # workers' event batches (previews are images); the internal token guards it
_MULTIPART_SLACK = 1024 * 1024


def body_limit(path: str) -> int:
    """The most bytes a request to `path` may send: uploads their file limit, workers' events more, others less."""
    settings = get_api_settings()
    if path.startswith(UPLOAD_PATHS):
        return settings.max_upload_bytes + _MULTIPART_SLACK
    if path.startswith(INTERNAL_PATHS):
        return _INTERNAL_LIMIT
    return settings.max_body_bytes


class BodySizeLimit:
    """Refuse a body over its path's limit with 413 before it is read whole: a Content-Length over it is answered
    at once; a body sent without one is counted as it arrives and cut off at the limit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            body = error_body("payload_too_large", f"body: larger than the {limit} byte limit")
            await ErrorResponse(body, status_code=413, headers={"Connection": "close"})(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


class UnexpectedErrors:
    """Any other exception becomes a JSON 500 naming a request id, logged with its traceback under that id.

    It sits inside the app's own middleware and does not re-raise, so the connection stays open (Starlette's
    outermost error handler re-raises after answering, and uvicorn then drops the connection)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # the last line of defence: every other error has its own handler
            request_id = uuid.uuid4().hex
            log.error(
                "unhandled error (request id %s) on %s %s",
                request_id, scope.get("method"), scope.get("path"), exc_info=exc,
            )
            if started:  # the answer is half sent: nothing sensible can follow it on this connection
                raise
            body = error_body(
                "internal_error", f"internal server error (request id {request_id})", request_id=request_id
            )
            response = ErrorResponse(body, status_code=500, headers={"X-Request-ID": request_id})
            await response(scope, receive, send)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(JobNotFoundError, _job_not_found)
    app.add_middleware(UnexpectedErrors)  # added first: the innermost, inside the access log and CORS
    app.add_middleware(BodySizeLimit)
