"""Tar member safety: the one place that decides whether an archive may be unpacked.

Used at upload (``inspect_artifact`` validates every member of a packet and of its data tar)
and on devices (the agent extracts with ``safe_extract``). A member is refused when it:

- has an absolute name, an empty name or a ``..`` component (even one that would stay inside);
- is a symlink whose target is absolute or, resolved lexically from the member's directory,
  leaves the root;
- is a hardlink whose target is absolute, has ``..`` or names no earlier regular member;
- is a device, fifo or any type other than file, directory, symlink, hardlink;
- sits below, or replaces, a symlink that appeared earlier in the archive (writing through it
  could land outside the root even though every name looks fine);
- pushes the archive past the member-count or declared-size limits.

``safe_extract`` is the single exception to "formats/ does no I/O": it writes files, so the
agent and the server share exactly the checks that the upload ran.

Deliberately not handled: ownership policy (tar's uid/gid are applied only when extracting
as root, as tarfile does), setuid bits (kept: packages legitimately ship them), sparse-file
optimisation, and compression (callers hand in an open ``TarFile``).
"""

from __future__ import annotations

import os
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from packyard.domain.errors import UnsafeArchive

__all__ = [
    "DEFAULT_LIMITS",
    "MemberChecker",
    "TarLimits",
    "check_member",
    "iter_safe_members",
    "normalise_name",
    "safe_extract",
]

_GIB: Final = 1024**3
_HINT: Final = (
    "rebuild the archive with paths relative to its root and only regular files, "
    "directories and links that stay inside it"
)


@dataclass(frozen=True, kw_only=True)
class TarLimits:
    """Upper bounds for one archive.

    Attributes:
        max_members: Most members accepted (each costs a header parse and a TarInfo).
        max_total_bytes: Most bytes the members may declare in total (what extraction writes).
    """

    max_members: int = 100_000
    max_total_bytes: int = 64 * _GIB


DEFAULT_LIMITS: Final = TarLimits()


def _unsafe(archive: str, name: str, problem: str, hint: str = _HINT) -> UnsafeArchive:
    return UnsafeArchive(
        f"{archive} member {name!r} {problem}",
        hint=hint,
        details={"archive": archive, "member": name},
    )


def normalise_name(name: str) -> str:
    """Return a member name relative to the root without ``./`` or trailing slashes.

    The root itself (``.`` or ``./``) becomes ``""``. No safety checks: see ``check_member``.
    """
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    return "" if name == "." else name


def _has_dotdot(path: str) -> bool:
    return ".." in path.split("/")


def check_member(member: tarfile.TarInfo, *, archive: str = "archive") -> str:
    """Check one member on its own (name, type, link target) and return its normalised name.

    Args:
        member: The member as read by tarfile.
        archive: What to call the archive in error messages (``packet``, ``data.tar.xz``).

    Raises:
        UnsafeArchive: the member would escape the root or is a special file.
    """
    raw = member.name
    if raw.startswith("/"):
        raise _unsafe(archive, raw, "has an absolute path")
    if "\x00" in raw:
        raise _unsafe(archive, raw, "has a NUL byte in its name")
    if _has_dotdot(raw):
        raise _unsafe(archive, raw, "has a '..' path component")
    name = normalise_name(raw)
    if not name and not member.isdir():
        raise _unsafe(archive, raw, "has an empty name")

    if member.issym():
        target = member.linkname
        if not target or target.startswith("/"):
            raise _unsafe(
                archive,
                raw,
                f"is a symlink to absolute target {target!r}",
                hint="use a relative symlink target that stays inside the archive root",
            )
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        if resolved == ".." or resolved.startswith("../"):
            raise _unsafe(
                archive,
                raw,
                f"is a symlink to {target!r}, which escapes the archive root",
                hint="use a relative symlink target that stays inside the archive root",
            )
    elif member.islnk():
        target = member.linkname
        if not target or target.startswith("/") or _has_dotdot(target):
            raise _unsafe(
                archive,
                raw,
                f"is a hardlink to {target!r}, which escapes the archive root",
                hint="hardlinks may only point at files stored earlier in the same archive",
            )
    elif not (member.isreg() or member.isdir()):
        kind = (
            "a character device"
            if member.ischr()
            else "a block device"
            if member.isblk()
            else "a fifo"
            if member.isfifo()
            else f"of unsupported type {member.type!r}"
        )
        raise _unsafe(
            archive,
            raw,
            f"is {kind}",
            hint="packages may hold only regular files, directories and links; "
            "create device nodes from a postinst script if they are really needed",
        )
    return name


class MemberChecker:
    """Checks members in archive order, adding the checks that need earlier members.

    Tracks member count, declared size, which names are symlinks (nothing may be stored
    below one) and which are regular files (hardlink targets must be among them).
    """

    def __init__(self, *, limits: TarLimits = DEFAULT_LIMITS, archive: str = "archive") -> None:
        self.limits = limits
        self.archive = archive
        self.count = 0
        self.total_bytes = 0
        self._symlinks: set[str] = set()
        self._files: set[str] = set()

    def check(self, member: tarfile.TarInfo) -> str:
        """Check the next member; return its normalised name.

        Raises:
            UnsafeArchive: the member is unsafe or a limit is exceeded.
        """
        self.count += 1
        if self.count > self.limits.max_members:
            raise UnsafeArchive(
                f"{self.archive} has more than {self.limits.max_members} members",
                hint="split the content into several packages or raise the member limit",
                details={"archive": self.archive, "limit": self.limits.max_members},
            )
        self.total_bytes += max(member.size, 0)
        if self.total_bytes > self.limits.max_total_bytes:
            raise UnsafeArchive(
                f"{self.archive} declares more than {self.limits.max_total_bytes} bytes of content",
                hint="split the content into several packages or raise the size limit",
                details={"archive": self.archive, "limit": self.limits.max_total_bytes},
            )
        name = check_member(member, archive=self.archive)
        parts = name.split("/") if name else []
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in self._symlinks:
                raise _unsafe(
                    self.archive,
                    member.name,
                    f"lies below the symlink {'/'.join(parts[:depth])!r}",
                    hint="store the real directory instead of writing through a symlink",
                )
        if name in self._symlinks:
            # Extracting a second member under a symlink's name would write through the link.
            raise _unsafe(
                self.archive,
                member.name,
                "replaces a symlink stored earlier in the archive",
                hint="store each path only once",
            )
        if member.islnk() and normalise_name(member.linkname) not in self._files:
            raise _unsafe(
                self.archive,
                member.name,
                f"is a hardlink to {member.linkname!r}, which is not a file stored earlier "
                "in the archive",
                hint="hardlinks may only point at files stored earlier in the same archive",
            )
        if member.issym():
            self._symlinks.add(name)
            self._files.discard(name)
        elif member.isreg():
            self._files.add(name)
        return name


def iter_safe_members(
    tar: tarfile.TarFile, *, limits: TarLimits = DEFAULT_LIMITS, archive: str = "archive"
) -> Iterator[tarfile.TarInfo]:
    """Yield every member of ``tar`` in order, each checked before it is yielded.

    Works on streaming tars (``r|``): the current member's data can be read with
    ``tar.extractfile`` before advancing.

    Raises:
        UnsafeArchive: at the first unsafe member or exceeded limit.
    """
    checker = MemberChecker(limits=limits, archive=archive)
    for member in tar:
        checker.check(member)
        yield member


def safe_extract(
    tar: tarfile.TarFile,
    dest: Path,
    *,
    limits: TarLimits = DEFAULT_LIMITS,
    archive: str = "archive",
) -> int:
    """Extract every member of ``tar`` below ``dest`` after checking it; return the count.

    ``dest`` should be a fresh staging directory: besides the member checks, each member's
    parent directory is resolved on disk and must stay inside ``dest`` (defence against
    symlinks that were already there). On an unsafe member extraction stops and what was
    written so far stays: the caller discards the staging directory.

    Raises:
        UnsafeArchive: a member is unsafe or a limit is exceeded.
    """
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    count = 0
    for member in iter_safe_members(tar, limits=limits, archive=archive):
        name = normalise_name(member.name)
        if not name:
            continue
        parent = (root / name).parent.resolve()
        if parent != root and root not in parent.parents:
            raise _unsafe(archive, member.name, "would be written outside the destination")
        if member.islnk():
            # Hardlink targets are archive-relative; point tarfile at the normalised name.
            member.linkname = normalise_name(member.linkname)
        target = root / name
        if not member.isdir() and target.is_symlink():
            # Never write through a link left in a reused staging directory.
            target.unlink()
        member.name = name
        # The checks above replace tarfile's own filters; "fully_trusted" keeps modes (setuid
        # included) exactly as packaged, which "data" and "tar" would strip.
        tar.extract(member, path=os.fspath(root), filter="fully_trusted")
        count += 1
    return count
