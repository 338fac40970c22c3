"""Load the demo data set (``packyard serve --demo``) through the ordinary services, so the
demo shows exactly what real uploads and promotions produce, audit trail included.

Only an empty installation gets the demo: loading twice, or into real data, does nothing.
Change control is not consulted (the demo's prod promotion carries a demo ticket id).
"""

from __future__ import annotations

from dataclasses import replace

from packyard.demo import demo_catalog
from packyard.domain.artifacts import ArtifactFormat, ArtifactStatus
from packyard.domain.auth import Principal, PrincipalKind, Role
from packyard.services.artifacts import UploadRequest, ingest
from packyard.services.context import Context
from packyard.services.promotions import promote, set_status

__all__ = ["DEMO_PRINCIPAL", "load_demo"]

DEMO_PRINCIPAL = Principal(name="demo", role=Role.ADMIN, kind=PrincipalKind.SYSTEM)


def load_demo(ctx: Context) -> int:
    """Upload, promote and retire the demo artifacts; returns how many were loaded."""
    if ctx.repos.artifacts.count() > 0:
        return 0
    ctx = replace(ctx, change_control=None)
    loaded = 0
    for item in demo_catalog():
        writer = ctx.blobs.writer()
        writer.write(item.content)
        generic = item.format is ArtifactFormat.GENERIC
        result = ingest(
            ctx,
            principal=DEMO_PRINCIPAL,
            writer=writer,
            request=UploadRequest(
                filename=item.filename,
                justification=item.justification,
                provenance=item.provenance,
                package=item.name,
                version=item.version if generic else None,
            ),
        )
        sha = result.artifact.sha256
        for stage in item.stages:
            promote(
                ctx,
                principal=DEMO_PRINCIPAL,
                ref=sha,
                stage=stage,
                change_control="CHG-DEMO-0001" if stage == "prod" else None,
                note=f"demo: verified in the stage before {stage}",
            )
        if item.status is not ArtifactStatus.ACTIVE:
            set_status(
                ctx,
                principal=DEMO_PRINCIPAL,
                ref=sha,
                status=item.status,
                reason=item.status_reason,
            )
        loaded += 1
    return loaded
