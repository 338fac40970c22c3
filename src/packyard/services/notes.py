"""Notes on packages (PkgBot's package notes): short texts maintainers leave for each other,
e.g. "pinned to 1.x until the vendor fixes the licence server".

Not handled: editing a note (delete it and write a new one; the audit log keeps both).
"""

from __future__ import annotations

from collections.abc import Sequence

from packyard.domain.auth import Action, Principal
from packyard.domain.errors import InvalidRequest, NotAuthorized, NotFound
from packyard.services.audit import record
from packyard.services.context import Context
from packyard.storage.db.models import PackageNote

__all__ = ["MAX_NOTE_LENGTH", "add_note", "delete_note", "list_notes"]

MAX_NOTE_LENGTH = 4000


def _package_id(ctx: Context, name: str) -> int:
    package = ctx.repos.packages.by_name(name)
    if package is None:
        raise NotFound(
            f"package {name!r} does not exist", hint="list packages with `packyard packages list`"
        )
    return package.id


def list_notes(ctx: Context, *, principal: Principal, package: str) -> Sequence[PackageNote]:
    """The package's notes, newest first (everyone who may read may read them)."""
    return ctx.repos.notes.for_package(_package_id(ctx, package))


def add_note(ctx: Context, *, principal: Principal, package: str, text: str) -> PackageNote:
    if not principal.can(Action.MANAGE_PACKAGES):
        raise NotAuthorized(
            f"role {principal.role.value!r} may not write package notes", hint="ask a maintainer"
        )
    text = text.strip()
    if not text:
        raise InvalidRequest("the note is empty", hint="write what others should know")
    if len(text) > MAX_NOTE_LENGTH:
        raise InvalidRequest(
            f"the note is longer than {MAX_NOTE_LENGTH} characters", hint="shorten it"
        )
    note = ctx.repos.notes.add(
        PackageNote(
            package_id=_package_id(ctx, package),
            author=principal.name,
            created_at=ctx.now(),
            text=text,
        )
    )
    record(
        ctx,
        actor=principal,
        action="package.note_add",
        object_type="package",
        object_id=package,
        after={"note": note.id, "text": text},
    )
    return note


def delete_note(ctx: Context, *, principal: Principal, package: str, note_id: int) -> None:
    """Delete a note: its author (while still a maintainer) or an admin."""
    note = ctx.repos.notes.get(note_id)
    if note is None or note.package_id != _package_id(ctx, package):
        raise NotFound(f"package {package!r} has no note {note_id}", hint="reload the page")
    if not principal.can(Action.MANAGE_PACKAGES) or (
        note.author != principal.name and not principal.can(Action.MANAGE_USERS)
    ):
        raise NotAuthorized(
            f"user {principal.name!r} may not delete {note.author}'s note",
            hint="only its author or an admin may",
        )
    ctx.repos.notes.delete(note)
    record(
        ctx,
        actor=principal,
        action="package.note_delete",
        object_type="package",
        object_id=package,
        before={"note": note_id, "author": note.author, "text": note.text},
    )
