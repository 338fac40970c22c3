"""dnf/yum repository metadata assembled from per-package XML chunks.

Per-package ``<package>`` chunks of primary.xml, filelists.xml and other.xml are produced
once per artifact (createrepo_c's dump functions, see integrations/createrepo.py) and cached;
a publication wraps the chunks of the packages in a channel in their documents, gzips them and
describes them in repomd.xml. Nothing here reads rpm files.

Not handled: comps/groups, updateinfo, modules, sqlite databases (dnf does not need them).
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "DOCUMENTS",
    "RepoDataFile",
    "document_head",
    "document_tail",
    "metadata_document",
    "repodata_files",
    "repomd_xml",
]

_DOCUMENTS = {
    "primary": (
        "metadata",
        'xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm"',
    ),
    "filelists": ("filelists", 'xmlns="http://linux.duke.edu/metadata/filelists"'),
    "other": ("otherdata", 'xmlns="http://linux.duke.edu/metadata/other"'),
}


#: The metadata documents every repository carries, in repomd.xml order.
DOCUMENTS = tuple(_DOCUMENTS)


def document_head(kind: str, count: int) -> bytes:
    """The XML declaration and root element opening a document of ``count`` packages."""
    root, namespaces = _DOCUMENTS[kind]
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} {namespaces} packages="{count}">\n'
    ).encode()


def document_tail(kind: str) -> bytes:
    return f"</{_DOCUMENTS[kind][0]}>\n".encode()


def metadata_document(kind: str, chunks: Sequence[str]) -> bytes:
    """The primary, filelists or other document around per-package ``chunks``."""
    body = "".join(chunk if chunk.endswith("\n") else chunk + "\n" for chunk in chunks)
    return document_head(kind, len(chunks)) + body.encode("utf-8") + document_tail(kind)


@dataclass(frozen=True, kw_only=True)
class RepoDataFile:
    """One compressed metadata file as listed in repomd.xml."""

    kind: str
    href: str  # "repodata/<sha256>-<kind>.xml.gz"
    data: bytes  # compressed
    checksum: str
    open_checksum: str
    size: int
    open_size: int

    @classmethod
    def of(
        cls, kind: str, *, data: bytes, checksum: str, open_checksum: str, open_size: int
    ) -> RepoDataFile:
        """Describe a gzip'd document whose digests are known (named by its checksum)."""
        return cls(
            kind=kind,
            href=f"repodata/{checksum}-{kind}.xml.gz",
            data=data,
            checksum=checksum,
            open_checksum=open_checksum,
            size=len(data),
            open_size=open_size,
        )


def repodata_files(documents: dict[str, bytes]) -> list[RepoDataFile]:
    """Gzip each document and name it by its checksum (createrepo_c's unique-md-filenames)."""
    out = []
    for kind, raw in documents.items():
        packed = gzip.compress(raw, compresslevel=6, mtime=0)
        checksum = hashlib.sha256(packed).hexdigest()
        out.append(
            RepoDataFile(
                kind=kind,
                href=f"repodata/{checksum}-{kind}.xml.gz",
                data=packed,
                checksum=checksum,
                open_checksum=hashlib.sha256(raw).hexdigest(),
                size=len(packed),
                open_size=len(raw),
            )
        )
    return out


def repomd_xml(files: Sequence[RepoDataFile], *, revision: int, timestamp: int) -> bytes:
    """repomd.xml listing ``files`` (dnf fetches it first and checks every hash)."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<repomd xmlns="http://linux.duke.edu/metadata/repo" '
        'xmlns:rpm="http://linux.duke.edu/metadata/rpm">\n'
        f"  <revision>{revision}</revision>\n"
    ]
    for f in files:
        parts.append(
            f'  <data type="{f.kind}">\n'
            f'    <checksum type="sha256">{f.checksum}</checksum>\n'
            f'    <open-checksum type="sha256">{f.open_checksum}</open-checksum>\n'
            f'    <location href="{f.href}"/>\n'
            f"    <timestamp>{timestamp}</timestamp>\n"
            f"    <size>{f.size}</size>\n"
            f"    <open-size>{f.open_size}</open-size>\n"
            "  </data>\n"
        )
    parts.append("</repomd>\n")
    return "".join(parts).encode("utf-8")
