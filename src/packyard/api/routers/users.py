"""/api/v1/users, /api/v1/tokens and /api/v1/whoami."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends

from packyard.api.deps import get_principal, get_runtime
from packyard.api.routers.artifacts import ERRORS
from packyard.api.schemas import (
    TokenCreated,
    TokenIn,
    TokenOut,
    UserIn,
    UserOut,
    UserUpdate,
    WhoAmI,
)
from packyard.bootstrap import Runtime
from packyard.domain.auth import Principal, Role
from packyard.domain.errors import InvalidRequest
from packyard.services import users as user_service
from packyard.storage.db.models import ApiToken, User

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["users"])


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidRequest(
            f"unknown role {value!r}", hint=f"use one of: {', '.join(r.value for r in Role)}"
        ) from None


def _user_out(user: User) -> UserOut:
    return UserOut(
        name=user.name,
        role=user.role,
        stages=user.stages,
        disabled=user.disabled,
        created_at=user.created_at,
    )


def _token_out(token: ApiToken) -> TokenOut:
    return TokenOut(
        id=token.id,
        user=token.user.name,
        name=token.name,
        prefix=token.prefix,
        created_at=token.created_at,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
        last_used_at=token.last_used_at,
    )


@router.get("/whoami", response_model=WhoAmI, responses=ERRORS)
def whoami(principal: Principal = Depends(get_principal)) -> WhoAmI:
    return WhoAmI(
        name=principal.name,
        role=principal.role.value,
        stages=sorted(principal.stages) if principal.stages is not None else None,
    )


@router.get("/users", response_model=list[UserOut], responses=ERRORS)
def list_users(
    principal: Principal = Depends(get_principal), runtime: Runtime = Depends(get_runtime)
) -> list[UserOut]:
    with runtime.context() as ctx:
        return [_user_out(u) for u in user_service.list_users(ctx, principal=principal)]


@router.post("/users", response_model=UserOut, status_code=201, responses=ERRORS)
def create_user(
    body: UserIn,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> UserOut:
    with runtime.context(write=True) as ctx:
        return _user_out(
            user_service.create_user(
                ctx, principal=principal, name=body.name, role=_role(body.role), stages=body.stages
            )
        )


@router.patch("/users/{name}", response_model=UserOut, responses=ERRORS)
def update_user(
    name: str,
    body: UserUpdate,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> UserOut:
    with runtime.context(write=True) as ctx:
        return _user_out(
            user_service.update_user(
                ctx,
                principal=principal,
                name=name,
                role=_role(body.role) if body.role else None,
                stages=body.stages,
                all_stages=body.all_stages,
                disabled=body.disabled,
            )
        )


@router.get("/tokens", response_model=list[TokenOut], responses=ERRORS)
def list_tokens(
    all: bool = False,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> list[TokenOut]:
    with runtime.context() as ctx:
        return [
            _token_out(t) for t in user_service.list_tokens(ctx, principal=principal, all_users=all)
        ]


@router.post(
    "/tokens",
    response_model=TokenCreated,
    status_code=201,
    responses=ERRORS,
    summary="Create a token; the secret is in the answer and never again",
)
def create_token(
    body: TokenIn,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> TokenCreated:
    with runtime.context(write=True) as ctx:
        created = user_service.create_token(
            ctx,
            principal=principal,
            name=body.name,
            user=body.user,
            expires_in=timedelta(days=body.expires_in_days) if body.expires_in_days else None,
        )
        return TokenCreated(**_token_out(created.token).model_dump(), token=created.secret)


@router.delete("/tokens/{token_id}", response_model=TokenOut, responses=ERRORS)
def revoke_token(
    token_id: int,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> TokenOut:
    with runtime.context(write=True) as ctx:
        return _token_out(user_service.revoke_token(ctx, principal=principal, token_id=token_id))
