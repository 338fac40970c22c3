"""/api/v1/packages and /api/v1/pipelines."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from packyard.api.deps import get_principal, get_runtime
from packyard.api.routers.artifacts import ERRORS, artifact_out
from packyard.api.schemas import PackageDetail, PackageOut, PipelineIn, PipelineOut, StageOut
from packyard.bootstrap import Runtime
from packyard.domain.auth import Principal
from packyard.services import packages as package_service

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["packages"])


@router.get("/packages", response_model=list[PackageOut], responses=ERRORS)
def list_packages(
    q: str | None = None,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> list[PackageOut]:
    with runtime.context() as ctx:
        return [
            PackageOut(
                name=s.package.name,
                pipeline=s.pipeline,
                artifact_count=s.artifact_count,
                last_upload=s.last_upload,
            )
            for s in package_service.list_packages(ctx, principal=principal, q=q)
        ]


@router.get("/packages/{name}", response_model=PackageDetail, responses=ERRORS)
def show_package(
    name: str,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> PackageDetail:
    with runtime.context() as ctx:
        package, artifacts = package_service.get_package(ctx, principal=principal, name=name)
        pipeline = package_service.pipeline_for(ctx, package)
        return PackageDetail(
            name=package.name,
            pipeline=pipeline.name,
            stages=list(pipeline.stage_names),
            artifacts=[artifact_out(ctx, a) for a in artifacts],
        )


@router.put(
    "/packages/{name}/pipeline",
    response_model=PackageOut,
    responses=ERRORS,
    summary="Assign a pipeline to a package (creates the package if needed)",
)
def set_pipeline(
    name: str,
    body: PipelineIn,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> PackageOut:
    with runtime.context(write=True) as ctx:
        package = package_service.set_pipeline(
            ctx, principal=principal, name=name, pipeline=body.pipeline
        )
        return PackageOut(
            name=package.name,
            pipeline=package_service.pipeline_name_for(ctx, package),
            artifact_count=len(package.artifacts),
            last_upload=max((a.uploaded_at for a in package.artifacts), default=None),
        )


@router.get("/pipelines", response_model=list[PipelineOut], responses=ERRORS)
def list_pipelines(
    principal: Principal = Depends(get_principal), runtime: Runtime = Depends(get_runtime)
) -> list[PipelineOut]:
    settings = runtime.settings
    out = []
    for name, pipeline in settings.build_pipelines().items():
        out.append(
            PipelineOut(
                name=name,
                default=name == settings.default_pipeline,
                stages=[
                    StageOut(
                        name=s.name,
                        requires=list(pipeline.required_stages(s.name)),
                        change_control=s.change_control,
                        promote_roles=sorted(r.value for r in s.promote_roles),
                    )
                    for s in pipeline.stages
                ],
            )
        )
    return out
