"""/admin/users (admins: people, roles, stages, passwords) and /tokens (API tokens: one's own;
admins see everyone's)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response

from packyard.domain.auth import Action, Principal, Role
from packyard.domain.errors import InvalidRequest, NotAuthorized, PackyardError
from packyard.services import dashboard
from packyard.services import users as user_service
from packyard.web.deps import (
    WebRoute,
    check_csrf,
    current_principal,
    flash,
    get_runtime,
    redirect,
    render,
)
from packyard.web.errors import status_for

__all__ = ["router"]

router = APIRouter(route_class=WebRoute, include_in_schema=False)

PERSON_ROLES = (Role.VIEWER, Role.UPLOADER, Role.MAINTAINER, Role.ADMIN)


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidRequest(
            f"unknown role {value!r}",
            hint=f"use one of: {', '.join(r.value for r in PERSON_ROLES)}",
        ) from None


def _users_page(
    request: Request,
    me: Principal,
    *,
    error: PackyardError | None = None,
    created_token: str | None = None,
    created_for: str | None = None,
) -> Response:
    with get_runtime(request).context() as ctx:
        users = user_service.list_users(ctx, principal=me)
        return render(
            request,
            "users.html",
            {
                "users": users,
                "roles": [r.value for r in PERSON_ROLES],
                "stages": dashboard.stage_names(ctx),
                "error": error,
                "created_token": created_token,
                "created_for": created_for,
            },
            status_code=status_for(error) if error else 200,
        )


@router.get("/admin/users")
def users_page(request: Request, me: Principal = Depends(current_principal)) -> Response:
    return _users_page(request, me)


@router.post("/admin/users", dependencies=[Depends(check_csrf)])
async def create_user(request: Request, me: Principal = Depends(current_principal)) -> Response:
    form = await request.form()
    name = str(form.get("name", "")).strip()
    role = str(form.get("role", "viewer"))
    stages = [str(s) for s in form.getlist("stages")]
    password = str(form.get("password", ""))
    runtime = get_runtime(request)
    try:
        with runtime.context(write=True) as ctx:
            user_service.create_user(
                ctx, principal=me, name=name, role=_role(role), stages=stages or None
            )
            token = None
            if password:
                user_service.set_password(ctx, principal=me, name=name, password=password)
            else:
                token = user_service.create_token(
                    ctx, principal=me, name="first token (web)", user=name
                ).secret
    except NotAuthorized:
        raise  # the error page: the users page itself is not theirs to see
    except PackyardError as exc:
        return _users_page(request, me, error=exc)
    if token:
        return _users_page(request, me, created_token=token, created_for=name)
    flash(request, f"User {name} created with the password you gave.")
    return redirect("/admin/users", request=request)


@router.post("/admin/users/{name}", dependencies=[Depends(check_csrf)])
async def update_user(
    request: Request, name: str, me: Principal = Depends(current_principal)
) -> Response:
    form = await request.form()
    role = str(form.get("role", ""))
    stages = [str(s) for s in form.getlist("stages")]
    all_stages = form.get("all_stages") == "on"
    disabled = form.get("disabled") == "on"
    password = str(form.get("password", ""))
    try:
        with get_runtime(request).context(write=True) as ctx:
            user_service.update_user(
                ctx,
                principal=me,
                name=name,
                role=_role(role) if role else None,
                stages=None if all_stages else stages,
                all_stages=all_stages,
                disabled=disabled,
            )
            if password:
                user_service.set_password(ctx, principal=me, name=name, password=password)
    except NotAuthorized:
        raise  # the error page: the users page itself is not theirs to see
    except PackyardError as exc:
        return _users_page(request, me, error=exc)
    flash(request, f"User {name} updated.")
    return redirect("/admin/users", request=request)


def _tokens_page(
    request: Request,
    me: Principal,
    *,
    show_all: bool = False,
    error: PackyardError | None = None,
    created: str | None = None,
) -> Response:
    with get_runtime(request).context() as ctx:
        everyone = show_all and me.can(Action.MANAGE_USERS)
        tokens = user_service.list_tokens(ctx, principal=me, all_users=everyone)
        return render(
            request,
            "tokens.html",
            {
                "tokens": tokens,
                "show_all": everyone,
                "can_all": me.can(Action.MANAGE_USERS),
                "now": ctx.now(),
                "error": error,
                "created": created,
            },
            status_code=status_for(error) if error else 200,
        )


@router.get("/tokens")
def tokens_page(
    request: Request, all: bool = False, me: Principal = Depends(current_principal)
) -> Response:
    return _tokens_page(request, me, show_all=all)


@router.post("/tokens", dependencies=[Depends(check_csrf)])
def create_token(
    request: Request,
    name: Annotated[str, Form()] = "",
    expires_days: Annotated[str, Form()] = "",
    me: Principal = Depends(current_principal),
) -> Response:
    try:
        days = int(expires_days) if expires_days.strip() else None
        if days is not None and not 1 <= days <= 3650:
            raise ValueError
    except ValueError:
        return _tokens_page(
            request,
            me,
            error=InvalidRequest("expiry must be 1 to 3650 days", hint="or leave it empty"),
        )
    try:
        with get_runtime(request).context(write=True) as ctx:
            created = user_service.create_token(
                ctx, principal=me, name=name, expires_in=timedelta(days=days) if days else None
            )
            secret = created.secret
    except PackyardError as exc:
        return _tokens_page(request, me, error=exc)
    return _tokens_page(request, me, created=secret)


@router.post("/tokens/{token_id}/revoke", dependencies=[Depends(check_csrf)])
def revoke_token(
    request: Request, token_id: int, me: Principal = Depends(current_principal)
) -> Response:
    try:
        with get_runtime(request).context(write=True) as ctx:
            row = user_service.revoke_token(ctx, principal=me, token_id=token_id)
            label = f"{row.name} ({row.prefix}…)"
    except PackyardError as exc:
        return _tokens_page(request, me, error=exc)
    flash(request, f"Token {label} revoked.")
    return redirect("/tokens", request=request)
