"""/packages: the list, one package's versions across stages side by side with its notes,
holds and icon; and the public icon URL notifications reuse."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile

from packyard.domain.auth import Action, Principal
from packyard.domain.errors import InvalidRequest, PackyardError
from packyard.services import icons, notes
from packyard.services import packages as package_service
from packyard.services.artifacts import search
from packyard.storage.db.repositories import ArtifactQuery
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

VERSIONS_PER_PAGE = 50
PACKAGES_PER_PAGE = 100


@router.get("/packages")
def packages_page(
    request: Request,
    q: str = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    me: Principal = Depends(current_principal),
) -> Response:
    with get_runtime(request).context() as ctx:
        everything = package_service.list_packages(ctx, principal=me, q=q.strip() or None)
        pages = max(1, -(-len(everything) // PACKAGES_PER_PAGE))
        rows = everything[(page - 1) * PACKAGES_PER_PAGE : page * PACKAGES_PER_PAGE]
        pipelines = [
            (
                name,
                name == ctx.settings.default_pipeline,
                [
                    (
                        s.name,
                        p.required_stages(s.name),
                        s.change_control,
                        sorted(r.value for r in s.promote_roles),
                    )
                    for s in p.stages
                ],
            )
            for name, p in sorted(ctx.pipelines.items())
        ]
        return render(
            request,
            "packages.html",
            {
                "rows": rows,
                "q": q,
                "pipelines": pipelines,
                "page": page,
                "pages": pages,
                "total": len(everything),
            },
        )


def _package_page(
    request: Request,
    me: Principal,
    name: str,
    *,
    page: int = 1,
    error: PackyardError | None = None,
) -> Response:
    with get_runtime(request).context() as ctx:
        package = package_service.package_named(ctx, principal=me, name=name)
        pipeline = package_service.pipeline_for(ctx, package)
        rows, total = search(
            ctx,
            query=ArtifactQuery(
                package=name, offset=(page - 1) * VERSIONS_PER_PAGE, limit=VERSIONS_PER_PAGE
            ),
        )
        reached = {a.sha256: {e.stage: e for e in a.stages} for a in rows}
        return render(
            request,
            "package.html",
            {
                "package": package,
                "pipeline": pipeline,
                "pipelines": sorted(ctx.pipelines),
                "rows": rows,
                "reached": reached,
                "total": total,
                "page": page,
                "pages": max(1, -(-total // VERSIONS_PER_PAGE)),
                "held": [a for a in rows if a.held],
                "notes": notes.list_notes(ctx, principal=me, package=name),
                "icon": icons.icon_url(name),
                "icon_source": icons.icon_for(ctx, package=name).source,
                "can_manage": me.can(Action.MANAGE_PACKAGES),
                "is_admin": me.can(Action.MANAGE_USERS),
                "error": error,
                "max_icon_kib": icons.ICON_MAX_BYTES // 1024,
            },
            status_code=status_for(error) if error else 200,
        )


@router.get("/packages/{name}")
def package_page(
    request: Request,
    name: str,
    page: Annotated[int, Query(ge=1)] = 1,
    me: Principal = Depends(current_principal),
) -> Response:
    return _package_page(request, me, name, page=page)


def _change(request: Request, me: Principal, back: str, done: str, fn, **kwargs) -> Response:  # type: ignore[no-untyped-def]
    try:
        with get_runtime(request).context(write=True) as ctx:
            fn(ctx, principal=me, **kwargs)
    except PackyardError as exc:
        return _package_page(request, me, back, error=exc)
    flash(request, done)
    return redirect(f"/packages/{quote(back, safe='')}", request=request)


@router.post("/packages/{name}/notes", dependencies=[Depends(check_csrf)])
def add_note(
    request: Request,
    name: str,
    text: Annotated[str, Form()] = "",
    me: Principal = Depends(current_principal),
) -> Response:
    return _change(request, me, name, "Note added.", notes.add_note, package=name, text=text)


@router.post("/packages/{name}/notes/{note_id}/delete", dependencies=[Depends(check_csrf)])
def delete_note(
    request: Request, name: str, note_id: int, me: Principal = Depends(current_principal)
) -> Response:
    return _change(
        request, me, name, "Note deleted.", notes.delete_note, package=name, note_id=note_id
    )


@router.post("/packages/{name}/pipeline", dependencies=[Depends(check_csrf)])
def set_pipeline(
    request: Request,
    name: str,
    pipeline: Annotated[str, Form()] = "",
    me: Principal = Depends(current_principal),
) -> Response:
    return _change(
        request,
        me,
        name,
        f"Pipeline set to {pipeline or 'the default'}.",
        package_service.set_pipeline,
        name=name,
        pipeline=pipeline or None,
    )


@router.post("/packages/{name}/icon", dependencies=[Depends(check_csrf)])
async def upload_icon(
    request: Request,
    name: str,
    icon: Annotated[UploadFile | None, File()] = None,
    me: Principal = Depends(current_principal),
) -> Response:
    data = await icon.read(icons.ICON_MAX_BYTES + 1) if icon is not None else b""
    if not data:
        return _package_page(
            request,
            me,
            name,
            error=InvalidRequest("no image was chosen", hint="pick a PNG or JPEG"),
        )
    return _change(request, me, name, "Icon saved.", icons.set_icon, package=name, data=data)


@router.post("/packages/{name}/icon/delete", dependencies=[Depends(check_csrf)])
def remove_icon(
    request: Request, name: str, me: Principal = Depends(current_principal)
) -> Response:
    return _change(request, me, name, "Icon removed.", icons.remove_icon, package=name)


@router.get("/packages/{name}/icon")
def package_icon(request: Request, name: str) -> Response:
    """Public on purpose (chat and mail clients fetch it without a session); unknown names get
    a letter avatar too, so it does not reveal which packages exist."""
    with get_runtime(request).context() as ctx:
        icon = icons.icon_for(ctx, package=name)
    etag = f'"{icon.etag}"'
    headers = {
        "ETag": etag,
        "Cache-Control": "public, max-age=300",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(icon.content, media_type=icon.media_type, headers=headers)
