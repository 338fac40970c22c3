"""/login, /logout, /setup (first password from an API token) and /account (own password)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response

from packyard.domain.auth import Principal
from packyard.domain.errors import InvalidRequest, NotAuthenticated
from packyard.services import users as user_service
from packyard.web.deps import (
    WebRoute,
    check_csrf,
    csrf_token,
    current_principal,
    flash,
    get_runtime,
    redirect,
    render,
    session_secret,
)
from packyard.web.errors import status_for

__all__ = ["router"]

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never an open redirect to another host."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _start_session(request: Request, secret: str) -> None:
    # A fresh cookie at sign-in: nothing from before (a planted CSRF token) carries over.
    request.session.clear()
    request.session["sid"] = secret
    csrf_token(request)


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    with get_runtime(request).context() as ctx:
        first_time = user_service.needs_first_password(ctx)
    return render(request, "login.html", {"next": _safe_next(next), "first_time": first_time})


@router.post("/login", dependencies=[Depends(check_csrf)])
def login(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    runtime = get_runtime(request)
    try:
        with runtime.context(write=True) as ctx:
            signed_in = user_service.sign_in(ctx, name=username, password=password)
    except NotAuthenticated as exc:
        with runtime.context() as ctx:
            first_time = user_service.needs_first_password(ctx)
        return render(
            request,
            "login.html",
            {
                "error": exc,
                "next": _safe_next(next),
                "username": username,
                "first_time": first_time,
            },
            status_code=status_for(exc),
        )
    _start_session(request, signed_in.secret)
    flash(request, f"Signed in as {signed_in.principal.name}.")
    return redirect(_safe_next(next))


@router.post("/logout", dependencies=[Depends(check_csrf)])
def logout(request: Request) -> Response:
    secret = session_secret(request)
    if secret:
        with get_runtime(request).context(write=True) as ctx:
            user_service.sign_out(ctx, secret=secret)
    request.session.clear()
    flash(request, "Signed out.")
    return redirect("/login")


@router.get("/setup")
def setup_page(request: Request) -> Response:
    return render(request, "setup.html")


@router.post("/setup", dependencies=[Depends(check_csrf)])
def setup(
    request: Request,
    token: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    runtime = get_runtime(request)
    try:
        if password != confirm:
            raise InvalidRequest("the two passwords differ", hint="type the same password twice")
        with runtime.context(write=True) as ctx:
            user = user_service.set_first_password(ctx, token=token, password=password)
            signed_in = user_service.sign_in(ctx, name=user.name, password=password)
    except (InvalidRequest, NotAuthenticated) as exc:
        return render(request, "setup.html", {"error": exc}, status_code=status_for(exc))
    _start_session(request, signed_in.secret)
    flash(request, f"Password set. Signed in as {signed_in.principal.name}.")
    return redirect("/")


@router.get("/account")
def account_page(request: Request, me: Principal = Depends(current_principal)) -> Response:
    return render(request, "account.html")


@router.post("/account/password", dependencies=[Depends(check_csrf)])
def change_password(
    request: Request,
    current: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
    me: Principal = Depends(current_principal),
) -> Response:
    try:
        if password != confirm:
            raise InvalidRequest("the two passwords differ", hint="type the same password twice")
        with get_runtime(request).context(write=True) as ctx:
            user_service.set_password(
                ctx,
                principal=me,
                name=me.name,
                password=password,
                current_password=current,
                keep_session=session_secret(request),
            )
    except InvalidRequest as exc:
        return render(request, "account.html", {"error": exc}, status_code=status_for(exc))
    flash(request, "Password changed. Your other browsers were signed out.")
    return redirect("/account")
