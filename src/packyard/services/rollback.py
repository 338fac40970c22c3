"""Rolling a channel back to an earlier kept snapshot.

A rollback publishes the chosen snapshot's content again as a new snapshot: every index and
file is hard-linked from it unchanged, and what carries a date or a signature is made anew:

- apt: each ``Release`` gets today's ``Date`` (and ``Valid-Until``) and new ``InRelease`` and
  ``Release.gpg`` signatures. apt refuses a Release older than the one it already has, so
  switching back to the old files alone would never reach a client that updated since.
- every detached signature of an index (``*.asc``: repomd.xml, index.json; ``*.sig``: the
  pacman databases) is made again with the keys that sign now, and dnf's ``repomd.xml.key``
  exported again: a snapshot signed before a key rotation verifies for clients configured
  with today's keys.

Packages that carry their own signature (rpm headers, pacman ``.sig`` files) keep it: rolling
a dnf or pacman channel back to a snapshot whose packages were signed by a key that no
longer signs is refused, with what to do instead.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath

from packyard.domain.auth import Action, Principal
from packyard.domain.errors import InvalidRequest, NotAuthorized, NotFound
from packyard.formats import apt_repo
from packyard.services.audit import record
from packyard.services.context import Context
from packyard.services.keys import single_signature_key
from packyard.services.publish import (
    Channel,
    Signing,
    _prune,
    _signing,
    _snapshot_id,
    add_current_publication,
    file_records,
    parse_channel,
)
from packyard.storage.db.models import Publication

__all__ = ["TRIGGER", "rollback"]

#: The trigger of a publication a rollback made (its manifest names the snapshot it copies).
TRIGGER = "rollback"
#: Formats whose packages carry a signature of their own (by the single-signature key).
_SIGNED_PACKAGES = frozenset({"dnf", "pacman"})
_KEPT = ("current", "superseded", "rolled_back")


def rollback(
    ctx: Context, *, principal: Principal, channel: str, to: str | None = None
) -> Publication:
    """Serve an earlier kept snapshot's content again (default: the one before the current
    content), re-dated and re-signed as a new snapshot; returns the new publication."""
    if not principal.can(Action.PUBLISH):
        raise NotAuthorized(
            f"role {principal.role.value!r} may not roll channels back", hint="ask a maintainer"
        )
    target = parse_channel(ctx, channel)
    store = ctx.publications
    assert store is not None
    # The live row locked first (as publishing does): a publish of this channel finishing
    # meanwhile waits, or is seen.
    current = ctx.repos.publishing.current(target.name)
    rows = list(ctx.repos.publishing.publications(channel=target.name, statuses=_KEPT, limit=1000))
    chosen = _choose(ctx, target, rows, current, to)
    if current is not None and chosen.id == current.id:
        return chosen
    signing = _signing(ctx)
    if target.format in _SIGNED_PACKAGES and chosen.signed_by:
        package_key = single_signature_key(list(chosen.signed_by))
        if package_key not in signing.keys:
            raise InvalidRequest(
                f"the packages of snapshot {chosen.snapshot} are signed by key "
                f"{package_key[-16:]}, which no longer signs: clients configured with today's "
                "keys would refuse them",
                hint=f"demote or fail what should go, then `packyard publish --stage "
                f"{target.stage} --format {target.format}`",
            )
    manifest = store.manifest(target.format, target.stage, chosen.snapshot)
    if manifest is None:
        raise NotFound(
            f"snapshot {chosen.snapshot} of {target.name} is no longer on disk",
            hint="list kept snapshots with `packyard publications list`",
        )
    started = datetime.now(UTC)
    snapshot = _snapshot_id(started)
    renewed = _renewed_files(ctx, target, chosen.snapshot, signing, started)
    with store.build(target.format, target.stage, snapshot) as writer:
        for relpath in store.files(target.format, target.stage, chosen.snapshot):
            if relpath in renewed:
                writer.write(relpath, renewed[relpath])
                continue
            source = store.file(target.format, target.stage, relpath, snapshot=chosen.snapshot)
            if source is None:
                raise NotFound(f"snapshot {chosen.snapshot} lost {relpath} while rolling back")
            writer.link(relpath, source)
        records = manifest.get("files")
        manifest_bytes = writer.write_manifest(
            {
                **manifest,
                "snapshot": snapshot,
                "created_at": started.isoformat(),
                "signed_by": signing.keys,
                "rollback_of": chosen.snapshot,
                # Snapshots from before the manifest recorded its files have none to carry.
                **(
                    {"files": {**records, **file_records(writer.digests, renewed)}}
                    if isinstance(records, dict)
                    else {}
                ),
            }
        )
    if current is not None:
        current.status = "rolled_back"
    publication = add_current_publication(
        ctx,
        channel=target,
        snapshot=snapshot,
        started=started,
        count=chosen.artifact_count,
        signing=signing,
        manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(),
        trigger=TRIGGER,
    )
    record(
        ctx,
        actor=principal,
        action="publication.rollback",
        object_type="channel",
        object_id=target.name,
        before={"snapshot": current.snapshot if current else None},
        after={"snapshot": snapshot, "content_of": chosen.snapshot, "signed_by": signing.keys},
    )
    ctx.after_commit(lambda: store.activate(target.format, target.stage, snapshot))
    _prune(ctx, channel=target, keep=ctx.settings.publish.keep_snapshots)
    return publication


def rollback_of(ctx: Context, publication: Publication) -> str | None:
    """The snapshot whose content a rollback's publication serves again, else None."""
    if publication.trigger != TRIGGER or ctx.publications is None:
        return None
    manifest = ctx.publications.manifest(
        publication.format, publication.stage, publication.snapshot
    )
    source = manifest.get("rollback_of") if manifest else None
    return source if isinstance(source, str) else None


def _choose(
    ctx: Context,
    target: Channel,
    rows: list[Publication],
    current: Publication | None,
    to: str | None,
) -> Publication:
    if to is not None:
        matches = [p for p in rows if p.snapshot == to or p.snapshot.startswith(to)]
        if len(matches) != 1:
            raise NotFound(
                f"snapshot {to!r} of {target.name} is not kept",
                hint="list kept snapshots with `packyard publications list --channel "
                f"{target.name}`",
            )
        return matches[0]
    # "Back" from what is served: from the snapshot a rollback copied, not from the copy.
    base = current
    source = rollback_of(ctx, current) if current is not None else None
    if source is not None:
        base = next((p for p in rows if p.snapshot == source), current)
    older = [p for p in rows if base is None or p.created_at < base.created_at]
    if not older:
        raise InvalidRequest(
            f"channel {target.name} has no earlier snapshot to roll back to",
            hint="list them with `packyard publications list`",
        )
    return older[0]


def _renewed_files(
    ctx: Context, target: Channel, snapshot: str, signing: Signing, now: datetime
) -> dict[str, bytes]:
    """The files of ``snapshot`` that carry a date or a signature, made anew."""
    store = ctx.publications
    assert store is not None
    files = store.files(target.format, target.stage, snapshot)
    names = set(files)

    def read(relpath: str) -> bytes:
        path = store.file(target.format, target.stage, relpath, snapshot=snapshot)
        assert path is not None
        return path.read_bytes()

    now = now.replace(microsecond=0)
    valid_days = ctx.settings.publish.apt.valid_days
    out: dict[str, bytes] = {}
    for relpath in files:
        name = PurePosixPath(relpath).name
        if target.format == "apt" and name == "Release":
            release = apt_repo.redate_release(
                read(relpath),
                date=now,
                valid_until=now + timedelta(days=valid_days) if valid_days else None,
            )
            folder = relpath[: -len(name)]
            out[relpath] = release
            if folder + "InRelease" in names:
                out[folder + "InRelease"] = signing.clearsign(release)
            if folder + "Release.gpg" in names:
                out[folder + "Release.gpg"] = signing.detach(release, armor=True)
        elif name == "repomd.xml.key":
            out[relpath] = bytes(signing.signer.public_key(signing.keys))
        elif name.endswith((".asc", ".sig")) and relpath[:-4] in names:
            signed = read(relpath[:-4])
            out[relpath] = (
                signing.detach(signed, armor=True)
                if name.endswith(".asc")
                # pacman: one signature, by the key every client trusts during a transition.
                else signing.detach(signed, armor=False, all_keys=False)
            )
    return out
