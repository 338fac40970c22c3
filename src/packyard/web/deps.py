"""What every page needs: the signed-in principal, CSRF checks, rendering in the frame, and a
route class that turns refusals into HTML pages with the API's status, code and message."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from packyard.bootstrap import Runtime
from packyard.domain.auth import Action, Principal, Role
from packyard.domain.errors import InvalidRequest, NotAuthenticated, NotAuthorized, PackyardError
from packyard.services.users import authenticate_session, session_needs_touch, touch_session
from packyard.web.errors import status_for
from packyard.web.templating import templates

__all__ = [
    "NAV",
    "CsrfFailed",
    "LoginRequired",
    "WebRoute",
    "check_csrf",
    "csrf_token",
    "current_principal",
    "flash",
    "get_runtime",
    "is_htmx",
    "redirect",
    "render",
    "session_secret",
]

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    # No inline script or style anywhere: the pages load only Packyard's own static files.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


#: The main navigation: (path, label, the action a principal needs to see it). A capability
#: that adds pages (approvals, fleet, builds) adds its entry here.
NAV: list[tuple[str, str, Action | None]] = [
    ("/", "Dashboard", None),
    ("/artifacts", "Artifacts", None),
    ("/packages", "Packages", None),
    ("/channels", "Channels", None),
    ("/upload", "Upload", Action.UPLOAD),
    ("/audit", "Audit log", Action.READ_AUDIT),
    ("/admin/users", "Users", Action.MANAGE_USERS),
    ("/tokens", "Tokens", None),
]


class LoginRequired(Exception):
    """The request needs a signed-in user."""


class CsrfFailed(Exception):
    """A state-changing request came without the session's CSRF token."""


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def session_secret(request: Request) -> str | None:
    sid = request.session.get("sid")
    return sid if isinstance(sid, str) else None


def current_principal(request: Request) -> Principal:
    """The signed-in user (a dependency; FastAPI runs it in the thread pool)."""
    sid = session_secret(request)
    if sid is None:
        raise LoginRequired
    runtime = get_runtime(request)
    try:
        with runtime.context() as ctx:
            principal = authenticate_session(ctx, sid)
            stale = session_needs_touch(ctx, secret=sid)
    except NotAuthenticated as exc:
        request.session.pop("sid", None)
        flash(request, exc.message, kind="warning")
        raise LoginRequired from None
    if stale:
        with runtime.context(write=True) as ctx:
            touch_session(ctx, secret=sid)
    request.state.principal = principal
    return principal


async def check_csrf(request: Request) -> None:
    """Refuse a POST that does not carry the session's CSRF token (form field or header)."""
    expected = request.session.get("csrf")
    sent = request.headers.get("x-csrf-token")
    content_type = request.headers.get("content-type", "")
    if not sent and content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if not (
        isinstance(expected, str) and sent and hmac.compare_digest(expected.encode(), sent.encode())
    ):
        raise CsrfFailed


def flash(request: Request, message: str, *, kind: str = "success") -> None:
    """A message shown once on the next page (kinds: success, warning, error)."""
    request.session.setdefault("flash", []).append({"kind": kind, "message": message})


def _frame(request: Request) -> dict[str, Any]:
    principal: Principal | None = getattr(request.state, "principal", None)
    path = request.url.path
    links = [
        {
            "href": href,
            "label": label,
            "current": path == "/" if href == "/" else path.startswith(href),
        }
        for href, label, action in NAV
        if principal is not None and (action is None or principal.can(action))
    ]
    return {
        "links": links,
        "request": request,
        "me": principal,
        "csrf": csrf_token(request),
        "flashes": request.session.pop("flash", []),
        "nav": {
            "upload": bool(principal and principal.can(Action.UPLOAD)),
            "audit": bool(principal and principal.can(Action.READ_AUDIT)),
            "users": bool(principal and principal.can(Action.MANAGE_USERS)),
            "admin": bool(principal and principal.role is Role.ADMIN),
        },
        "path": request.url.path,
    }


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    response = templates.TemplateResponse(
        request,
        template,
        {**_frame(request), **(context or {})},
        status_code=status_code,
        headers={**SECURITY_HEADERS, **(headers or {})},
    )
    return response


def redirect(url: str, *, request: Request | None = None) -> Response:
    """303 after a POST (htmx gets HX-Redirect so it loads the whole page)."""
    if request is not None and is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _error_page(request: Request, exc: PackyardError) -> Response:
    template = "partials/error.html" if is_htmx(request) else "error.html"
    return render(request, template, {"error": exc}, status_code=status_for(exc))


class WebRoute(APIRoute):
    """Routes of the web UI: refusals become pages, never the API's JSON bodies."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def web_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                url = f"/login?next={quote(target, safe='')}"
                if is_htmx(request):
                    return Response(status_code=204, headers={"HX-Redirect": url})
                return RedirectResponse(url, status_code=303)
            except CsrfFailed:
                return _error_page(
                    request,
                    NotAuthorized(
                        "the form was not sent from a Packyard page of your session "
                        "(missing or wrong CSRF token)",
                        hint="reload the page and try again",
                    ),
                )
            except RequestValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in err.get('loc', ()) if p not in ('body', 'query', 'path'))}: "
                    f"{err.get('msg')}"
                    for err in exc.errors()
                )
                return _error_page(
                    request, InvalidRequest(problems or "invalid request", hint="check the form")
                )
            except PackyardError as exc:
                return _error_page(request, exc)

        return web_handler
