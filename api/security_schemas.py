"""Bodies of the security routes: admin sessions (access + refresh tokens), password changes,
registered nodes with their own token."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.admin_schemas import NodeOut
from database.enums import AdminRole


class AdminSessionTokens(BaseModel):
    access_token: str = Field(description="Bearer token for the admin API; short-lived (expires_in seconds)")
    token_type: str = "bearer"
    expires_in: int
    role: AdminRole
    refresh_token: str = Field(description="Exchanged at POST /admin/auth/refresh for a new access token")
    refresh_expires_in: int


class RefreshRequest(BaseModel):
    refresh_token: str = Field(max_length=4096)


class PasswordChange(BaseModel):
    password: str = Field(min_length=8, max_length=1024, description="The new password")


class RegisteredNode(NodeOut):
    node_token: str | None = Field(
        None, description="Shown once, on the first registration: the node's own token for re-registering it and "
        "for its heartbeats"
    )
