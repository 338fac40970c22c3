"""Pydantic request/response models of the REST API (the OpenAPI document is built from them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. stage_required")
    message: str
    hint: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    error: ErrorDetail


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    per_page: int


class StageEntryOut(BaseModel):
    stage: str
    entered_at: datetime
    entered_by: str
    change_control: str | None = None
    note: str | None = None


class GateOut(BaseModel):
    code: str
    message: str
    hint: str | None = None


class ArtifactOut(BaseModel):
    id: str = Field(description="The artifact's sha256")
    sha256: str
    package: str
    pipeline: str
    format: str
    kind: str | None
    name: str
    version: str
    arch: str | None
    distro: str | None
    size: int
    filename: str
    provenance: str
    justification: str
    uploaded_by: str
    uploaded_at: datetime
    status: str
    status_reason: str | None
    held: bool
    hold_reason: str | None
    current_stage: str | None
    stages: list[StageEntryOut]
    relations: dict[str, list[str]]
    download_url: str


class ArtifactDetail(ArtifactOut):
    fields: dict[str, Any]
    next_stage: str | None
    open_gates: list[GateOut]


class UploadOut(ArtifactOut):
    created: bool = Field(description="False when identical bytes were already stored")


class PromoteIn(BaseModel):
    stage: str
    change_control: str | None = None
    note: str | None = None


class DemoteIn(BaseModel):
    stage: str | None = Field(default=None, description="Default: the highest stage reached")
    note: str | None = None


class ReasonIn(BaseModel):
    reason: str | None = None


class TransitionOut(BaseModel):
    changed: bool
    artifact: ArtifactOut


class PackageOut(BaseModel):
    name: str
    pipeline: str
    artifact_count: int
    last_upload: datetime | None


class PackageDetail(BaseModel):
    name: str
    pipeline: str
    stages: list[str]
    artifacts: list[ArtifactOut]


class PipelineIn(BaseModel):
    pipeline: str | None = Field(description="Pipeline name; null for the configured default")


class StageOut(BaseModel):
    name: str
    requires: list[str]
    change_control: bool
    promote_roles: list[str]


class PipelineOut(BaseModel):
    name: str
    default: bool
    stages: list[StageOut]


class EventOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None
    hash: str


class VerifyOut(BaseModel):
    ok: bool
    checked: int
    head_seq: int
    broken_at: int | None = None
    problem: str | None = None


class UserIn(BaseModel):
    name: str
    role: str
    stages: list[str] | None = Field(
        default=None, description="Stages the user may promote into; null = all"
    )


class UserUpdate(BaseModel):
    role: str | None = None
    stages: list[str] | None = None
    all_stages: bool = False
    disabled: bool | None = None


class UserOut(BaseModel):
    name: str
    role: str
    stages: list[str] | None
    disabled: bool
    created_at: datetime


class TokenIn(BaseModel):
    name: str
    user: str | None = Field(default=None, description="Owner (admins only); default: yourself")
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenOut(BaseModel):
    id: int
    user: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = None


class TokenCreated(TokenOut):
    token: str = Field(description="The secret, shown only this once")


class WhoAmI(BaseModel):
    name: str
    role: str
    stages: list[str] | None
