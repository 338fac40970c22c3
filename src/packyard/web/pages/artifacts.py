"""/artifacts: the table (server-side filter, sort, pages; the URL holds the state), CSV
export, one artifact's page, its download, and the lifecycle actions."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import StreamingResponse

from packyard.bootstrap import Runtime
from packyard.domain.artifacts import ArtifactStatus
from packyard.domain.auth import Action, Principal
from packyard.domain.errors import PackyardError
from packyard.http_download import artifact_download
from packyard.services import artifacts as artifact_service
from packyard.services import audit, dashboard, promotions
from packyard.services.icons import icon_url
from packyard.services.packages import pipeline_for
from packyard.storage.db.repositories import ArtifactQuery
from packyard.web.deps import (
    WebRoute,
    check_csrf,
    current_principal,
    flash,
    get_runtime,
    is_htmx,
    redirect,
    render,
)
from packyard.web.errors import status_for

__all__ = ["router"]

router = APIRouter(route_class=WebRoute, include_in_schema=False)

SORTS = ("uploaded_at", "name", "version", "format", "arch", "size", "stage", "status", "uploader")
STATUSES = ("active", "held", "failed", "deprecated")
PER_PAGE = (25, 50, 100, 200)
COLUMNS = (
    ("name", "Name"),
    ("version", "Version"),
    ("format", "Format"),
    ("arch", "Arch"),
    ("stage", "Stage"),
    ("status", "Status"),
    ("size", "Size"),
    ("uploader", "Uploader"),
    ("uploaded_at", "Uploaded (UTC)"),
)


@dataclass(frozen=True, kw_only=True)
class TableState:
    """The table's state as it appears in the URL."""

    package: str = ""
    stage: str = ""
    format: str = ""
    arch: str = ""
    status: str = ""
    uploader: str = ""
    q: str = ""
    sort: str = "uploaded_at"
    order: str = "desc"
    page: int = 1
    per_page: int = 50

    def params(self) -> dict[str, Any]:
        defaults = TableState()
        return {
            k: v
            for k, v in self.__dict__.items()
            if v != getattr(defaults, k) or k in ("sort", "order")
        }

    def query(self, *, paged: bool = True) -> ArtifactQuery:
        return ArtifactQuery(
            package=self.package or None,
            stage=self.stage or None,
            format=self.format or None,
            arch=self.arch or None,
            status=self.status or None,
            uploader=self.uploader or None,
            q=self.q.strip() or None,
            sort=self.sort,
            descending=self.order == "desc",
            offset=(self.page - 1) * self.per_page if paged else 0,
            limit=self.per_page,
        )


def table_state(
    package: str = "",
    stage: str = "",
    format: str = "",
    arch: str = "",
    status: str = "",
    uploader: str = "",
    q: str = "",
    sort: str = "uploaded_at",
    order: str = "desc",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: int = 50,
) -> TableState:
    # Unknown values fall back to defaults: a mangled bookmark still shows a table.
    return TableState(
        package=package.strip(),
        stage=stage.strip(),
        format=format.strip(),
        arch=arch.strip(),
        status=status if status in STATUSES else "",
        uploader=uploader.strip(),
        q=q,
        sort=sort if sort in SORTS else "uploaded_at",
        order=order if order in ("asc", "desc") else "desc",
        page=page,
        per_page=per_page if per_page in PER_PAGE else 50,
    )


@router.get("/artifacts")
def artifacts_page(
    request: Request,
    state: TableState = Depends(table_state),
    me: Principal = Depends(current_principal),
) -> Response:
    with get_runtime(request).context() as ctx:
        rows, total = artifact_service.search(ctx, query=state.query())
        pages = max(1, -(-total // state.per_page))
        context = {
            "rows": rows,
            "total": total,
            "state": state,
            "params": state.params(),
            "pages": pages,
            "columns": COLUMNS,
            "statuses": STATUSES,
            "per_page_options": PER_PAGE,
        }
        if is_htmx(request) and request.headers.get("hx-target") == "results":
            return render(request, "partials/artifact_table.html", context)
        context["facets"] = artifact_service.facets(ctx)
        context["stages"] = dashboard.stage_names(ctx)
        return render(request, "artifacts.html", context)


CSV_FIELDS = (
    "sha256",
    "package",
    "format",
    "name",
    "version",
    "arch",
    "distro",
    "size",
    "filename",
    "stage",
    "status",
    "held",
    "uploaded_by",
    "uploaded_at",
    "provenance",
    "justification",
)


@router.get("/artifacts.csv")
def artifacts_csv(
    request: Request,
    state: TableState = Depends(table_state),
    me: Principal = Depends(current_principal),
) -> Response:
    """Every artifact matching the filters (not just one page), in the table's order."""
    runtime = get_runtime(request)
    return StreamingResponse(
        _csv_rows(runtime, state.query(paged=False)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="packyard-artifacts.csv"'},
    )


def _csv_rows(runtime: Runtime, query: ArtifactQuery) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_FIELDS)
    with runtime.context() as ctx:
        for n, a in enumerate(artifact_service.iter_search(ctx, query=query), start=1):
            writer.writerow(
                (
                    a.sha256,
                    a.package.name,
                    a.format,
                    a.name,
                    a.version,
                    a.arch or "",
                    a.distro or "",
                    a.size,
                    a.filename,
                    a.current_stage or "",
                    a.status,
                    "yes" if a.held else "no",
                    a.uploaded_by,
                    a.uploaded_at.isoformat(timespec="seconds") + "Z",
                    a.provenance,
                    a.justification,
                )
            )
            if n % 500 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


def _detail(
    request: Request, me: Principal, ref: str, *, error: PackyardError | None = None
) -> Response:
    with get_runtime(request).context() as ctx:
        artifact = artifact_service.resolve(ctx, ref)
        pipeline = pipeline_for(ctx, artifact.package)
        next_stage, gates = promotions.open_gates(ctx, artifact=artifact, principal=me)
        events, events_total = audit.artifact_events(ctx, principal=me, sha256=artifact.sha256)
        reached = {e.stage: e for e in artifact.stages}
        can_promote = me.can(Action.PROMOTE)
        retired = artifact.status != ArtifactStatus.ACTIVE.value
        return render(
            request,
            "artifact.html",
            {
                "a": artifact,
                "pipeline": pipeline,
                "reached": reached,
                "next_stage": next_stage,
                "gates": gates,
                "events": events,
                "events_total": events_total,
                "icon": icon_url(artifact.package.name),
                "promote_targets": [s for s in pipeline.stage_names if s not in reached]
                if can_promote and not retired
                else [],
                "demote_targets": [s for s in pipeline.stage_names[1:] if s in reached]
                if can_promote
                else [],
                "can_promote": can_promote,
                "can_retire": me.can(Action.RETIRE) and not retired,
                "error": error,
            },
            status_code=status_for(error) if error else 200,
        )


@router.get("/artifacts/{ref}")
def artifact_page(
    request: Request, ref: str, me: Principal = Depends(current_principal)
) -> Response:
    return _detail(request, me, ref)


@router.get("/artifacts/{ref}/file")
def download(request: Request, ref: str, me: Principal = Depends(current_principal)) -> Response:
    return artifact_download(get_runtime(request), ref)


def _act(request: Request, me: Principal, ref: str, done: str, fn: Any, **kwargs: Any) -> Response:
    """Run one transition; a refusal re-renders the page with the API's reason and status."""
    try:
        with get_runtime(request).context(write=True) as ctx:
            result = fn(ctx, principal=me, ref=ref, **kwargs)
            sha, changed = result.artifact.sha256, result.changed
    except PackyardError as exc:
        return _detail(request, me, ref, error=exc)
    flash(
        request,
        done if changed else "Nothing to change: it was already so.",
        kind="success" if changed else "warning",
    )
    return redirect(f"/artifacts/{sha}", request=request)


@router.post("/artifacts/{ref}/promote", dependencies=[Depends(check_csrf)])
def promote(
    request: Request,
    ref: str,
    stage: Annotated[str, Form()],
    change_control: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    me: Principal = Depends(current_principal),
) -> Response:
    return _act(
        request,
        me,
        ref,
        f"Promoted to {stage}.",
        promotions.promote,
        stage=stage,
        change_control=change_control.strip() or None,
        note=note.strip() or None,
    )


@router.post("/artifacts/{ref}/demote", dependencies=[Depends(check_csrf)])
def demote(
    request: Request,
    ref: str,
    stage: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    me: Principal = Depends(current_principal),
) -> Response:
    return _act(
        request,
        me,
        ref,
        f"Removed from {stage or 'its highest stage'} and the stages that require it.",
        promotions.demote,
        stage=stage or None,
        note=note.strip() or None,
    )


def _reason(value: str) -> str | None:
    return value.strip() or None


@router.post("/artifacts/{ref}/hold", dependencies=[Depends(check_csrf)])
def hold(
    request: Request,
    ref: str,
    reason: Annotated[str, Form()] = "",
    me: Principal = Depends(current_principal),
) -> Response:
    return _act(
        request, me, ref, "On hold.", promotions.set_hold, held=True, reason=_reason(reason)
    )


@router.post("/artifacts/{ref}/release", dependencies=[Depends(check_csrf)])
def release(
    request: Request,
    ref: str,
    reason: Annotated[str, Form()] = "",
    me: Principal = Depends(current_principal),
) -> Response:
    return _act(
        request, me, ref, "Hold released.", promotions.set_hold, held=False, reason=_reason(reason)
    )


@router.post("/artifacts/{ref}/fail", dependencies=[Depends(check_csrf)])
def fail(
    request: Request,
    ref: str,
    reason: Annotated[str, Form()] = "",
    me: Principal = Depends(current_principal),
) -> Response:
    return _act(
        request,
        me,
        ref,
        "Marked failed: it left every channel.",
        promotions.set_status,
        status=ArtifactStatus.FAILED,
        reason=_reason(reason),
    )


@router.post("/artifacts/{ref}/deprecate", dependencies=[Depends(check_csrf)])
def deprecate(
    request: Request,
    ref: str,
    reason: Annotated[str, Form()] = "",
    me: Principal = Depends(current_principal),
) -> Response:
    return _act(
        request,
        me,
        ref,
        "Deprecated: it left every channel.",
        promotions.set_status,
        status=ArtifactStatus.DEPRECATED,
        reason=_reason(reason),
    )
