"""Republishing that no stage change asks for: a channel whose signatures must be renewed.

Two things make a published channel go stale while nothing is promoted:

- **the keys that sign changed**: a key's transition period ended (``keys rotate``/``keys
  import`` leave the old key signing until ``retire_after``), or a key was added or retired
  elsewhere. Until the channel is published again, its signatures are the old set's, while
  ``packyard keys show`` and ``/repos/keys`` offer only the new one.
- **apt's Valid-Until** (``publish.apt.valid_days``): a Release that is not published again
  before it expires is refused by every apt client ("Release file ... is expired"); a channel
  nobody promotes into (prod, typically) must be re-signed on time. Republished once half of
  the validity has passed.

``packyard serve`` (with job workers) and ``packyard worker`` call ``schedule_due`` every
``publish.housekeeping_seconds``; it queues ordinary publish jobs (coalesced with queued ones,
so several servers checking at once queue one), which rebuild from the cache.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from packyard.services.context import Context
from packyard.services.keys import signing_keys
from packyard.services.publish import (
    LAYOUT_MARKER,
    Channel,
    channels,
    layout_signature,
    schedule_publish,
)
from packyard.storage.db.models import Job

__all__ = ["TRIGGER_KEYS", "TRIGGER_UPGRADE", "TRIGGER_VALID_UNTIL", "Due", "due", "schedule_due"]

TRIGGER_KEYS = "signing keys changed"
TRIGGER_VALID_UNTIL = "valid-until renewal"
TRIGGER_UPGRADE = "new index layout"
ACTOR = "system:housekeeping"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Due:
    channel: Channel
    trigger: str
    why: str


def due(ctx: Context) -> list[Due]:
    """The channels to publish again now, and why."""
    keys = signing_keys(ctx)
    valid_days = ctx.settings.publish.apt.valid_days
    now = ctx.now()
    upgraded = _layout_changed(ctx)
    out: list[Due] = []
    for channel in channels(ctx):
        rows = ctx.repos.publishing.publications(channel=channel.name, status="current", limit=1)
        if not rows:
            continue
        current = rows[0]
        signed_by = list(current.signed_by or [])
        if upgraded:
            out.append(
                Due(channel, TRIGGER_UPGRADE, "published by a version that wrote other indexes")
            )
        elif keys and signed_by != keys:
            out.append(
                Due(
                    channel,
                    TRIGGER_KEYS,
                    f"signed by {_short(signed_by)}; the keys that sign now are {_short(keys)}",
                )
            )
        elif channel.format == "apt" and valid_days:
            renew_at = current.created_at + timedelta(days=valid_days) / 2
            if renew_at <= now:
                out.append(
                    Due(
                        channel,
                        TRIGGER_VALID_UNTIL,
                        f"published {current.created_at:%Y-%m-%d %H:%M} UTC; its Release "
                        f"expires after {valid_days} days",
                    )
                )
    return out


def schedule_due(ctx: Context) -> list[Job]:
    """Queue a publish of every channel that is due (see ``due``); returns the jobs."""
    jobs: list[Job] = []
    if not ctx.settings.publish.auto or ctx.jobs is None:
        return jobs  # publishing is the operator's: `packyard publish` (docs/operations.md)
    items = due(ctx)
    store = ctx.publications
    if store is not None and any(item.trigger == TRIGGER_UPGRADE for item in items):
        layout = layout_signature(ctx)
        ctx.after_commit(lambda: store.set_marker(LAYOUT_MARKER, layout))
    for item in items:
        log.info("republishing %s (%s): %s", item.channel.name, item.trigger, item.why)
        job = schedule_publish(
            ctx,
            stages=[item.channel.stage],
            formats=[item.channel.format],
            actor=ACTOR,
            trigger=item.trigger,
        )
        if job is not None and job not in jobs:
            jobs.append(job)
    return jobs


def _layout_changed(ctx: Context) -> bool:
    """The channels were published by a version that wrote other indexes (an upgrade)."""
    store = ctx.publications
    return store is not None and store.marker(LAYOUT_MARKER) != layout_signature(ctx)


def _short(fingerprints: list[str]) -> str:
    return ", ".join(f[-16:] for f in fingerprints) or "no key"
