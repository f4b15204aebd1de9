"""The facade's errors: each carries its HTTP status and a stable code; one handler renders them."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Base of every error a service raises; rendered as `{"error": code, "detail": message}`."""

    status_code = 500
    code = "internal_error"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class BadRequest(ApiError):
    status_code = 400
    code = "bad_request"


class Unauthorized(ApiError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status_code = 403
    code = "forbidden"


class NotFound(ApiError):
    status_code = 404
    code = "not_found"


class Conflict(ApiError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMedia(ApiError):
    status_code = 415
    code = "unsupported_media_type"


class InvalidParameters(ApiError):
    """Request values that do not fit; `fields` names each one."""

    status_code = 422
    code = "validation_error"

    def __init__(self, fields: list[dict[str, str]]) -> None:
        detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        super().__init__(detail, extra={"fields": fields})


class QuotaExceeded(ApiError):
    status_code = 429
    code = "quota_exceeded"


class SchedulerUnavailable(ApiError):
    status_code = 503
    code = "scheduler_unavailable"


class SchedulerBusy(SchedulerUnavailable):
    """Prefect answered but could not take the run yet (locked, overloaded, slow): the job waits, it is not lost."""

    code = "scheduler_busy"


class RunRefused(SchedulerUnavailable):
    """The scheduler answered and refused this run itself (e.g. its parameters): trying again cannot help, so
    the job is marked failed with the reason instead of being retried."""

    status_code = 422
    code = "not_dispatchable"
