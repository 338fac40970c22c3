"""What the packet, Munki and files channels publish for each artifact: a download path of its
own per architecture, Munki receipts per component package, supported architectures, minimum
OS and manifests, percent-encoded file URLs — and entries cached by an older release computed
again after an upgrade. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import plistlib
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import pytest
from tests.integration.conftest import upload_bytes
from tests.unit.formats.format_fakes import xar_bytes

from packyard.bootstrap import Runtime
from packyard.demo.builders import macos_pkg_bytes, packet_bytes
from packyard.domain.auth import SYSTEM
from packyard.services import promotions, publish
from packyard.services.keys import ensure_signing_key
from packyard.services.repos import RepoResolver


def _ready(make_runtime: Callable[..., Runtime], **settings: object) -> Runtime:
    runtime = make_runtime(**settings)
    with runtime.context(write=True) as ctx:
        ensure_signing_key(ctx)
    return runtime


def _into_ci(
    runtime: Runtime, data: bytes, filename: str, *, package: str | None = None
) -> tuple[int, str]:
    """Upload a file and promote it into ci; its artifact id and sha256."""
    artifact = upload_bytes(
        runtime,
        principal=SYSTEM,
        data=data,
        filename=filename,
        package=package,
        version="1.0" if package else None,
    ).artifact
    with runtime.context(write=True) as ctx:
        promotions.promote(ctx, principal=SYSTEM, ref=artifact.sha256, stage="ci")
    return artifact.id, artifact.sha256


def _file(runtime: Runtime, fmt: str, rel: str) -> bytes:
    assert runtime.publications is not None
    path = runtime.publications.file(fmt, "ci", rel)
    assert path is not None, f"{fmt}/ci has no {rel}"
    return path.read_bytes()


def _resolver(runtime: Runtime) -> RepoResolver:
    assert runtime.publications is not None
    return RepoResolver(settings=runtime.settings, store=runtime.publications)


def _packet(version: str, arch: str | None, *, name: str = "edge-agent") -> bytes:
    return packet_bytes(
        name=name,
        version=version,
        tags=[],
        description=f"{name} for {arch}",
        files={"usr/bin/edge": f"#!/bin/sh\necho {arch}\n".encode()},
        arch=arch,
    )


def _product(*, host_architectures: str, min_os: str | None = "11.0") -> bytes:
    """A product archive (productbuild's shape) of com.example.tool 1.0 with two components."""
    allowed = (
        f'<volume-check><allowed-os-versions><os-version min="{min_os}"/>'
        "</allowed-os-versions></volume-check>"
        if min_os
        else ""
    )
    distribution = f"""<?xml version="1.0" encoding="utf-8"?>
<installer-gui-script minSpecVersion="2">
    <title>Example Tool</title>
    <product id="com.example.tool" version="1.0"/>
    <options customize="never" hostArchitectures="{host_architectures}"/>
    {allowed}
    <choices-outline><line choice="default"/></choices-outline>
    <choice id="default"><pkg-ref id="com.example.tool.app"/><pkg-ref id="com.example.tool.cli"/>
    </choice>
    <pkg-ref id="com.example.tool.app" version="1.0.3" installKBytes="2048">#app.pkg</pkg-ref>
    <pkg-ref id="com.example.tool.cli" version="0.9" installKBytes="12">#cli.pkg</pkg-ref>
</installer-gui-script>
""".encode()
    return xar_bytes(
        {
            "Distribution": distribution,
            # Different bytes per architecture, as real builds are.
            "app.pkg/Payload": host_architectures.encode(),
        }
    )


def test_packets_for_two_architectures_are_two_downloads(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = _ready(make_runtime)
    _, arm32 = _into_ci(runtime, _packet("1.0", "armv7l"), "edge-agent-1.0-armv7l.packet")
    _, arm64 = _into_ci(runtime, _packet("1.0", "aarch64"), "edge-agent-1.0-aarch64.packet")
    _, plain = _into_ci(runtime, _packet("2.0", None, name="notes"), "notes-2.0.packet")
    [result] = publish.publish(runtime.context, stages=["ci"], formats=["packet"])
    assert result.artifact_count == 3

    items = json.loads(_file(runtime, "packet", "index.json"))["items"]
    by_sha = {i["sha256"]: i for i in items}
    assert (by_sha[arm32]["arch"], by_sha[arm64]["arch"], by_sha[plain]["arch"]) == (
        "armv7l",
        "aarch64",
        None,
    )
    assert by_sha[arm32]["url"] == "files/edge-agent-1.0-armv7l.packet"
    assert by_sha[arm64]["url"] == "files/edge-agent-1.0-aarch64.packet"
    assert by_sha[plain]["url"] == "files/notes-2.0.packet"  # no arch: the name it always had
    # Each URL serves the bytes its item hashes.
    resolver = _resolver(runtime)
    for item in items:
        served = resolver.resolve("packet", f"ci/{unquote(item['url'])}")
        assert served.blob == item["sha256"]


def _catalog(runtime: Runtime) -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = plistlib.loads(_file(runtime, "munki", "catalogs/ci"))
    return loaded


def test_munki_items_per_architecture_with_a_receipt_per_component(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = _ready(make_runtime, publish={"munki": {"catalogs": {"testing": "ci"}}})
    intel = _product(host_architectures="x86_64")
    arm = _product(host_architectures="arm64")
    _, intel_sha = _into_ci(runtime, intel, "tool-1.0-x86_64.pkg")
    _, arm_sha = _into_ci(runtime, arm, "tool-1.0-arm64.pkg")
    component = macos_pkg_bytes(
        identifier="com.example.notes", version="2.3.1", title="Notes", install_kbytes=4
    )
    _, notes_sha = _into_ci(runtime, component, "notes-2.3.1.pkg")
    publish.publish(runtime.context, stages=["ci"], formats=["munki"])

    by_sha = {i["installer_item_hash"]: i for i in _catalog(runtime)}
    assert set(by_sha) == {intel_sha, arm_sha, notes_sha}
    x86, arm64, notes = by_sha[intel_sha], by_sha[arm_sha], by_sha[notes_sha]
    assert x86["installer_item_location"] == (
        "apps/com.example.tool/com.example.tool-1.0-x86_64.pkg"
    )
    assert arm64["installer_item_location"] == (
        "apps/com.example.tool/com.example.tool-1.0-arm64.pkg"
    )
    assert (x86["supported_architectures"], arm64["supported_architectures"]) == (
        ["x86_64"],
        ["arm64"],
    )
    # macOS records the component packages' receipts, never the product's identifier.
    for item in (x86, arm64):
        assert item["receipts"] == [
            {"packageid": "com.example.tool.app", "version": "1.0.3", "installed_size": 2048},
            {"packageid": "com.example.tool.cli", "version": "0.9", "installed_size": 12},
        ]
        assert item["installed_size"] == 2060
        assert item["minimum_os_version"] == "11.0"
        assert (item["name"], item["version"]) == ("com.example.tool", "1.0")
    # makepkginfo's int(size / 1024): these small files are 0 KiB, not 1.
    assert x86["installer_item_size"] == len(intel) // 1024 == 0

    # A component package: its own identifier, no architecture, the file name it always had.
    assert notes["receipts"] == [
        {"packageid": "com.example.notes", "version": "2.3.1", "installed_size": 4}
    ]
    assert "supported_architectures" not in notes and "minimum_os_version" not in notes
    assert notes["installer_item_location"] == "apps/com.example.notes/com.example.notes-2.3.1.pkg"

    resolver = _resolver(runtime)
    for sha, item in by_sha.items():
        assert resolver.resolve("munki", f"pkgs/{item['installer_item_location']}").blob == sha

    # The stage's manifest (also under its alias) offers every item of the stage's catalog.
    manifest = plistlib.loads(_file(runtime, "munki", "manifests/ci"))
    assert manifest == {
        "catalogs": ["ci"],
        "optional_installs": ["com.example.notes", "com.example.tool"],
    }
    for name in ("ci", "testing"):
        served = resolver.resolve("munki", f"manifests/{name}")
        assert served.path is not None and plistlib.loads(served.path.read_bytes()) == manifest
        assert served.content_type == "application/xml"
        assert resolver.resolve("munki", f"catalogs/{name}").path is not None


def test_an_empty_munki_stage_has_an_empty_manifest(make_runtime: Callable[..., Runtime]) -> None:
    runtime = _ready(make_runtime)
    publish.publish(runtime.context, stages=["ci"], formats=["munki"])
    assert plistlib.loads(_file(runtime, "munki", "manifests/ci")) == {
        "catalogs": ["ci"],
        "optional_installs": [],
    }


def test_file_urls_are_percent_encoded(make_runtime: Callable[..., Runtime]) -> None:
    runtime = _ready(make_runtime)
    data = b"\x7fFWBLOB" * 64
    _, sha = _into_ci(runtime, data, "fw blob#1?.bin", package="fw")
    publish.publish(runtime.context, stages=["ci"], formats=["files"])
    [item] = json.loads(_file(runtime, "files", "index.json"))["items"]
    assert item["filename"] == "fw blob#1?.bin"
    assert item["url"] == f"{sha[:12]}/fw%20blob%231%3F.bin"
    # The server decodes the path it is asked for (tests/functional checks it over HTTP).
    assert _resolver(runtime).resolve("files", f"ci/{unquote(item['url'])}").blob == sha


#: Entry kinds the previous release stored, whose entries this release must not reuse.
_OLD_KINDS = {"packet": "packet", "files": "files", "munki": "munki:v2"}


def _stale_entry(fmt: str, sha: str, size: int) -> str:
    """An entry as the previous release might have cached it, marked ``STALE``."""
    if fmt == "munki":
        return json.dumps(
            {
                "location": "apps/STALE.pkg",
                "sha256": sha,
                "size": size,
                "pkginfo": {"name": "STALE", "version": "1", "catalogs": ["{catalogs}"]},
            }
        )
    item = {"name": "STALE", "sha256": sha, "size": size, "url": "STALE"}
    return json.dumps({"item": item, "path": "STALE"})


@pytest.mark.parametrize("fmt", sorted(_OLD_KINDS))
def test_entries_cached_by_the_previous_release_are_computed_again(
    make_runtime: Callable[..., Runtime], fmt: str
) -> None:
    runtime = _ready(make_runtime)
    data, filename = {
        "packet": (_packet("1.0", "armv7l"), "edge-agent-1.0-armv7l.packet"),
        "files": (b"\x7fFWBLOB" * 64, "fw-1.0.bin"),
        "munki": (_product(host_architectures="arm64"), "tool-1.0.pkg"),
    }[fmt]
    artifact_id, sha = _into_ci(runtime, data, filename)
    with runtime.context(write=True) as ctx:  # an installation upgraded from the last release
        ctx.repos.publishing.add_entries(
            {(artifact_id, _OLD_KINDS[fmt]): _stale_entry(fmt, sha, len(data))}
        )
    [result] = publish.publish(runtime.context, stages=["ci"], formats=[fmt])
    assert result.new_entries == 1
    index = _file(runtime, fmt, "catalogs/ci" if fmt == "munki" else "index.json")
    assert b"STALE" not in index
    assert runtime.publications is not None
    manifest = runtime.publications.manifest(fmt, "ci", result.snapshot)
    assert manifest is not None and "STALE" not in json.dumps(manifest["pool"])
