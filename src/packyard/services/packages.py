"""Packages: the names that group artifacts, and which pipeline each one follows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from packyard.domain.auth import Action, Principal
from packyard.domain.errors import ConfigError, InvalidRequest, NotAuthorized, NotFound
from packyard.domain.pipelines import Pipeline
from packyard.services.audit import record
from packyard.services.context import Context
from packyard.storage.db.models import Artifact, Package

__all__ = [
    "PackageSummary",
    "get_package",
    "list_packages",
    "package_named",
    "pipeline_for",
    "pipeline_name_for",
    "set_pipeline",
]


def pipeline_name_for(ctx: Context, package: Package | str) -> str:
    """Package's own pipeline, else the configured mapping, else the default."""
    if isinstance(package, Package):
        if package.pipeline:
            return package.pipeline
        name = package.name
    else:
        name = package
    return ctx.settings.package_pipelines.get(name, ctx.settings.default_pipeline)


def pipeline_for(ctx: Context, package: Package | str) -> Pipeline:
    name = pipeline_name_for(ctx, package)
    pipeline = ctx.pipelines.get(name)
    if pipeline is None:
        raise ConfigError(
            f"package uses pipeline {name!r}, which is not configured",
            hint="add it under [pipelines] or assign another pipeline",
        )
    return pipeline


@dataclass(frozen=True, kw_only=True)
class PackageSummary:
    package: Package
    pipeline: str
    artifact_count: int
    last_upload: datetime | None


def list_packages(
    ctx: Context, *, principal: Principal, q: str | None = None
) -> list[PackageSummary]:
    return [
        PackageSummary(
            package=p, pipeline=pipeline_name_for(ctx, p), artifact_count=n, last_upload=last
        )
        for p, n, last in ctx.repos.packages.list_with_counts(q=q)
    ]


def get_package(
    ctx: Context, *, principal: Principal, name: str
) -> tuple[Package, Sequence[Artifact]]:
    package = ctx.repos.packages.by_name(name)
    if package is None:
        raise NotFound(
            f"package {name!r} does not exist", hint="list packages with `packyard packages list`"
        )
    return package, ctx.repos.artifacts.for_package(package.id)


def package_named(ctx: Context, *, principal: Principal, name: str) -> Package:
    """The package row alone (``get_package`` also loads every artifact of it)."""
    package = ctx.repos.packages.by_name(name)
    if package is None:
        raise NotFound(
            f"package {name!r} does not exist", hint="list packages with `packyard packages list`"
        )
    return package


def set_pipeline(ctx: Context, *, principal: Principal, name: str, pipeline: str | None) -> Package:
    """Assign ``pipeline`` to package ``name`` (None: back to the configured default).

    Stages an artifact already reached that the new pipeline lacks are kept as history but
    no longer count for gates.
    """
    if not principal.can(Action.MANAGE_PACKAGES):
        raise NotAuthorized(
            f"role {principal.role.value!r} may not change pipelines", hint="ask a maintainer"
        )
    if pipeline is not None and pipeline not in ctx.pipelines:
        raise InvalidRequest(
            f"pipeline {pipeline!r} is not configured",
            hint=f"configured pipelines: {', '.join(sorted(ctx.pipelines))}",
        )
    package = ctx.repos.packages.get_or_create(name, now=ctx.now())
    before = pipeline_name_for(ctx, package)
    package.pipeline = pipeline
    after = pipeline_name_for(ctx, package)
    if before != after:
        record(
            ctx,
            actor=principal,
            action="package.set_pipeline",
            object_type="package",
            object_id=name,
            before={"pipeline": before},
            after={"pipeline": after},
        )
    return package
