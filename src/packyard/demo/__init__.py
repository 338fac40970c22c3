"""The demo data set that ``packyard serve --demo`` loads: a handful of realistic artifacts.

``demo_catalog()`` describes each artifact (file name, package, version, why it was uploaded,
where it came from, which stages it should reach and whether it ends failed or deprecated);
the bytes are built on first use by ``packyard.demo.builders``, in pure Python, so a fresh
machine needs no packaging tools to show the demo.

Deliberately not handled: loading the catalog (uploading, promoting, failing) is the job of
the service layer that ``serve --demo`` calls; users, devices, recipes and assignments are not
part of this module; and the files are demo-sized, not real software.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial

from packyard.demo.builders import (
    DEMO_MTIME,
    deb_bytes,
    firmware_blob_bytes,
    macos_pkg_bytes,
    packet_bytes,
    pacman_bytes,
)
from packyard.domain.artifacts import ArtifactFormat, ArtifactStatus

__all__ = [
    "DEMO_MTIME",
    "DemoItem",
    "deb_bytes",
    "demo_catalog",
    "firmware_blob_bytes",
    "macos_pkg_bytes",
    "packet_bytes",
    "pacman_bytes",
]


@dataclass(frozen=True, kw_only=True)
class DemoItem:
    """One demo artifact and where the demo loader should leave it.

    Attributes:
        filename: The name it is uploaded under.
        format: The format detection should find.
        name: Package name (given at upload for formats that do not carry one).
        version: Version (likewise).
        justification: Why the artifact exists, as an uploader would write it.
        provenance: What produced it (pipeline run, commit, recipe build).
        stages: Stages it should reach, in pipeline order (empty: stays in ``new``).
        status: Its final lifecycle status.
        status_reason: Why it was failed or deprecated; None when active.
        build: Builds the file's bytes; use ``content``, which builds once.
    """

    filename: str
    format: ArtifactFormat
    name: str
    version: str
    justification: str
    provenance: str
    stages: tuple[str, ...]
    status: ArtifactStatus = ArtifactStatus.ACTIVE
    status_reason: str | None = None
    build: Callable[[], bytes] = field(repr=False, compare=False)

    @cached_property
    def content(self) -> bytes:
        """The file's bytes, built on first access."""
        return self.build()


_DEB_MAINTAINER = "Example Platform Team <platform@example.com>"
_HELLO_DESCRIPTION = """\
friendly greeting for the Packyard demo
hello-packyard prints a greeting and exits. It exists to show a package
moving through the ci, dev, stage and prod stages.

It has no other purpose."""


def _hello_script(version: str, *, extra: str = "") -> bytes:
    return (
        "#!/bin/sh\n"
        f"# hello-packyard {version}\n"
        'name="${1:-world}"\n'
        f"{extra}"
        'echo "Hello, ${name}! (from hello-packyard ' + version + ')"\n'
    ).encode()


def _hello_deb(version: str, *, extra: str = "") -> Callable[[], bytes]:
    upstream = version.split("-")[0]
    return partial(
        deb_bytes,
        name="hello-packyard",
        version=version,
        arch="all",
        depends=("dash (>= 0.5)",),
        description=_HELLO_DESCRIPTION,
        maintainer=_DEB_MAINTAINER,
        section="utils",
        files={
            "usr/bin/hello-packyard": _hello_script(upstream, extra=extra),
            "usr/share/doc/hello-packyard/README": (
                f"hello-packyard {upstream}\n\nRun `hello-packyard NAME`.\n"
            ).encode(),
        },
    )


def _sensor_gateway(version: str) -> Callable[[], bytes]:
    return partial(
        packet_bytes,
        name="sensor-gateway",
        version=version,
        tags=("arch=armv7l", "systemd"),
        description="Reads the field sensors over I2C and uploads batched readings via MQTT.",
        arch="armv7l",
        files={
            "opt/sensor-gateway/bin/sensor-gateway": (
                f"#!/bin/sh\n# sensor-gateway {version} (demo stand-in for the armv7l binary)\n"
                "exec sleep infinity\n"
            ).encode(),
            "etc/sensor-gateway/config.toml": (
                b'[mqtt]\nbroker = "mqtts://mqtt.example.com:8883"\nbatch_seconds = 30\n'
            ),
            "etc/systemd/system/sensor-gateway.service": (
                b"[Unit]\nDescription=Sensor gateway\nAfter=network-online.target\n\n"
                b"[Service]\nExecStart=/opt/sensor-gateway/bin/sensor-gateway\n"
                b"Restart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n"
            ),
        },
        scripts={
            "postinst": "#!/bin/sh\nset -e\nsystemctl daemon-reload\n"
            "systemctl enable --now sensor-gateway.service\n",
            "prerm": "#!/bin/sh\nset -e\nsystemctl disable --now sensor-gateway.service\n",
        },
    )


def demo_catalog() -> list[DemoItem]:
    """Describe the demo artifacts, oldest upload first.

    Returns:
        A new list on every call: three versions of a deb (one deprecated), a pacman package,
        two packets for an armv7l fleet (one failed), a macOS component package and a generic
        firmware blob.
    """
    all_stages = ("ci", "dev", "stage", "prod")
    return [
        DemoItem(
            filename="hello-packyard_0.9-2_all.deb",
            format=ArtifactFormat.DEB,
            name="hello-packyard",
            version="0.9-2",
            justification="Beta for the internal pilot group; greeting text reviewed by docs.",
            provenance="CI pipeline example/hello#371, commit 0c7d5e8",
            stages=all_stages,
            status=ArtifactStatus.DEPRECATED,
            status_reason=(
                "Superseded by 1.0-1: 0.9 prints the greeting on stderr (example/hello#57)."
            ),
            build=_hello_deb("0.9-2", extra="exec 1>&2  # the bug fixed in 1.0\n"),
        ),
        DemoItem(
            filename="hello-packyard_1.0-1_all.deb",
            format=ArtifactFormat.DEB,
            name="hello-packyard",
            version="1.0-1",
            justification="First stable release: prints on stdout, takes the name to greet.",
            provenance="CI pipeline example/hello#398, commit 9b1e4d2 (tag v1.0)",
            stages=all_stages,
            build=_hello_deb("1.0-1"),
        ),
        DemoItem(
            filename="hello-packyard_1.1-1_all.deb",
            format=ArtifactFormat.DEB,
            name="hello-packyard",
            version="1.1-1",
            justification=(
                "Adds a --json greeting requested by support (SUP-2231); soaking in dev."
            ),
            provenance="CI pipeline example/hello#412, commit 3f2a9c1",
            stages=("ci", "dev"),
            build=_hello_deb(
                "1.1-1",
                extra='[ "$1" = --json ] && { echo \'{"greeting": "hello"}\'; exit 0; }\n',
            ),
        ),
        DemoItem(
            filename="site-backup-2.4.0-1-any.pkg.tar.zst",
            format=ArtifactFormat.PACMAN,
            name="site-backup",
            version="2.4.0-1",
            justification="Nightly rsync of /srv to the NAS; adds retention pruning (OPS-1187).",
            provenance="Recipe site-backup build #87: PKGBUILD at ops/site-backup@5d41c0e",
            stages=("ci", "dev", "stage"),
            build=partial(
                pacman_bytes,
                name="site-backup",
                version="2.4.0-1",
                arch="any",
                depends=("bash", "rsync>=3.2", "openssh"),
                description="Nightly rsync backup of /srv with retention pruning",
                url="https://git.example.com/ops/site-backup",
                license="MIT",
                files={
                    "usr/bin/site-backup": (
                        b"#!/bin/bash\nset -euo pipefail\n"
                        b"rsync -a --delete /srv/ backup@nas.example.com:/backups/$(hostname)/\n"
                    ),
                    "usr/lib/systemd/system/site-backup.timer": (
                        b"[Unit]\nDescription=Nightly site backup\n\n"
                        b"[Timer]\nOnCalendar=*-*-* 02:30:00\nPersistent=true\n\n"
                        b"[Install]\nWantedBy=timers.target\n"
                    ),
                    "usr/lib/systemd/system/site-backup.service": (
                        b"[Unit]\nDescription=Site backup\n\n"
                        b"[Service]\nType=oneshot\nExecStart=/usr/bin/site-backup\n"
                    ),
                },
            ),
        ),
        DemoItem(
            filename="sensor-gateway_3.2.0_armv7l.packet",
            format=ArtifactFormat.PACKET,
            name="sensor-gateway",
            version="3.2.0",
            justification="Batches MQTT uploads every 30 s to cut cellular data on the fleet.",
            provenance="CI pipeline fleet/sensor-gateway#1290, commit a71c3e9 (armv7l cross)",
            stages=("ci", "dev", "stage"),
            build=_sensor_gateway("3.2.0"),
        ),
        DemoItem(
            filename="sensor-gateway_3.3.0~rc1_armv7l.packet",
            format=ArtifactFormat.PACKET,
            name="sensor-gateway",
            version="3.3.0~rc1",
            justification="Release candidate: reads the new humidity sensor (FLEET-310).",
            provenance="CI pipeline fleet/sensor-gateway#1302, commit e90b2f4 (armv7l cross)",
            stages=("ci", "dev"),
            status=ArtifactStatus.FAILED,
            status_reason=(
                "4 of 12 dev devices could not start the service after install: "
                "libgpiod is missing on the glibc-2.23 images."
            ),
            build=_sensor_gateway("3.3.0~rc1"),
        ),
        DemoItem(
            filename="Notes-2.3.1.pkg",
            format=ArtifactFormat.MACOS_PKG,
            name="com.example.notes",
            version="2.3.1",
            justification="Fixes the iCloud sync conflict dialog for the design team (NOTES-412).",
            provenance="Xcode Cloud workflow Release #77, example/notes-mac commit 61f0b8a",
            stages=("ci", "dev"),
            build=partial(
                macos_pkg_bytes,
                identifier="com.example.notes",
                version="2.3.1",
                title="Notes",
                install_kbytes=18_432,
                number_of_files=214,
            ),
        ),
        DemoItem(
            filename="firmware-blob-2024.03.1.bin",
            format=ArtifactFormat.GENERIC,
            name="firmware-blob",
            version="2024.03.1",
            justification="LTE modem firmware: fixes band 20 re-attach (vendor advisory ARS-7).",
            provenance="Vendor portal sync job #5521, Acme Radio release RN-2024-03",
            stages=("ci",),
            build=partial(firmware_blob_bytes, name="firmware-blob", version="2024.03.1"),
        ),
    ]
