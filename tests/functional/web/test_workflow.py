"""What a new admin does from the browser, end to end, against a real server: upload with
progress, filter/sort/export the table, promote through the gates (with refusals and their
messages), hold, deprecate, notes and an icon, the audit log, rolling a channel back — and
staying signed in across a restart."""

from __future__ import annotations

import csv
import io
import re
import struct
import zlib
from pathlib import Path

from playwright.sync_api import Page, expect
from tests.functional.web.conftest import page_of, set_first_password, shot

from packyard.demo.builders import deb_bytes


def _deb(tmp: Path, name: str, version: str) -> Path:
    path = tmp / f"{name}_{version}_all.deb"
    path.write_bytes(
        deb_bytes(
            name=name,
            version=version,
            depends=["libc6 (>= 2.31)"],
            description=f"{name} for the web tests\n Built by the test.",
            maintainer="Tests <tests@example.org>",
            files={f"usr/share/doc/{name}/README": f"{name} {version}\n".encode()},
        )
    )
    return path


def _png(width: int = 8, height: int = 8) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + b"\x20\x60\xa0" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _promote(page: Page, stage: str, *, change_control: str = "", note: str = "") -> None:
    page.get_by_label("To stage").select_option(stage)
    page.get_by_label(re.compile("^Change-control id")).fill(change_control)
    page.get_by_label("Promotion note").fill(note)
    page.get_by_role("button", name="Promote", exact=True).click()


def test_admin_uploads_filters_promotes_deprecates_audits_and_rolls_back(
    make_server, open_browser, tmp_path: Path
) -> None:
    server = make_server()
    page = page_of(open_browser())
    set_first_password(page, server)

    # Upload two versions through the upload page, with progress.
    old, new = _deb(tmp_path, "web-hello", "1.0-1"), _deb(tmp_path, "web-hello", "1.1-1")
    other = _deb(tmp_path, "web-other", "2.0-1")
    page.get_by_role("link", name="Upload", exact=True).click()
    page.get_by_label("Package files").set_input_files([str(old), str(new), str(other)])
    page.get_by_label(re.compile("^Justification")).fill("fixes CVE-2026-0001")
    page.get_by_label(re.compile("^Provenance")).fill("CI job 4711, commit 3f2a9c1")
    page.get_by_role("button", name="Upload", exact=True).click()
    uploads = page.locator("#upload-list li")
    expect(uploads.filter(has_text="Uploaded as")).to_have_count(3, timeout=30_000)
    expect(page.locator("#upload-list progress").first).to_have_attribute("value", "100")
    shot(page, "workflow-upload")

    # The table: free text, a filter, sorting; the URL holds the state.
    page.get_by_role("link", name="Artifacts", exact=True).click()
    expect(page.locator(".result-count")).to_contain_text("3 artifacts")
    page.get_by_label("Search").fill("web-hello")
    expect(page.locator(".result-count")).to_contain_text("2 artifacts")
    expect(page).to_have_url(re.compile(r"q=web-hello"))
    page.locator("th.col-version a").click()
    expect(page).to_have_url(re.compile(r"sort=version"))
    page.locator("th.col-version a").click()  # second click: ascending
    expect(page).to_have_url(re.compile(r"order=asc"))
    versions = page.locator("#results tbody td.col-version")
    expect(versions).to_have_text(["1.0-1", "1.1-1"])
    bookmark = page.url
    page.goto(bookmark)  # a shared link shows the same view
    expect(page.locator("#results tbody td.col-version")).to_have_text(["1.0-1", "1.1-1"])
    expect(page.get_by_label("Search")).to_have_value("web-hello")
    shot(page, "workflow-artifacts-filtered")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export CSV").click()
    exported = list(csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text())))
    assert [r["version"] for r in exported] == ["1.0-1", "1.1-1"]
    assert {r["justification"] for r in exported} == {"fixes CVE-2026-0001"}

    # Promote the new version through the gates; skipping a stage is refused, with the reason.
    page.locator("#results tbody a", has_text="web-hello").last.click()
    expect(page.get_by_role("heading", name=re.compile("web-hello"))).to_contain_text("1.1-1")
    artifact_url = page.url
    with page.expect_response(lambda r: r.url.endswith("/promote")) as refused:
        _promote(page, "dev")
    assert refused.value.status == 409
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("stage 'dev' requires the artifact to have reached 'ci' first")
    expect(alert).to_contain_text("promote it to 'ci' first")
    expect(alert).to_contain_text("stage_required")
    shot(page, "workflow-refused-promotion")
    for stage in ("ci", "dev", "stage"):
        _promote(page, stage, note=f"tested in the stage before {stage}")
        expect(page.get_by_role("status").filter(has_text=f"Promoted to {stage}.")).to_be_visible()
    expect(page.locator(".gates")).to_contain_text("stage 'prod' requires a change-control id")
    with page.expect_response(lambda r: r.url.endswith("/promote")) as refused:
        _promote(page, "prod")
    assert refused.value.status == 422
    expect(page.get_by_role("alert")).to_contain_text("requires a change-control id")
    _promote(page, "prod", change_control="CHG-1234", note="CAB approved")
    expect(page.get_by_role("status").filter(has_text="Promoted to prod.")).to_be_visible()
    expect(page.locator(".stage-track li.reached")).to_have_count(5)
    expect(page.locator(".stage-track")).to_contain_text("CHG-1234")
    expect(page.get_by_text("It reached the last stage.")).to_be_visible()
    shot(page, "workflow-artifact-in-prod")

    # Hold and release, then deprecate the old version: it can no longer be promoted.
    page.goto(server.url + "/artifacts?q=web-hello&sort=version&order=asc")
    page.locator("#results tbody a", has_text="web-hello").first.click()
    expect(page.get_by_role("heading", name=re.compile("web-hello"))).to_contain_text("1.0-1")
    page.get_by_label("Hold reason").fill("waiting for the vendor")
    page.get_by_role("button", name="Hold", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="On hold.")).to_be_visible()
    expect(page.locator(".gates")).to_contain_text("the artifact is on hold")
    page.get_by_role("button", name="Release", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Hold released.")).to_be_visible()
    page.get_by_label("Deprecation reason").fill("superseded by 1.1-1")
    page.get_by_role("button", name="Deprecate", exact=True).click()
    expect(
        page.get_by_role("status").filter(has_text="Deprecated: it left every channel.")
    ).to_be_visible()
    expect(page.locator(".page-head")).to_contain_text("deprecated")
    expect(page.get_by_role("button", name="Promote", exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="Deprecate", exact=True)).to_have_count(0)
    shot(page, "workflow-deprecated")

    # The package page: versions side by side, a note, an icon (served at a stable URL).
    page.locator("nav[aria-label=breadcrumb] a").nth(1).click()
    expect(page.get_by_role("heading", name="Versions across stages")).to_be_visible()
    matrix = page.locator("table.matrix tbody tr")
    expect(matrix).to_have_count(2)
    expect(matrix.first.locator("td.in")).to_have_count(5)  # 1.1-1 reached all five stages
    page.get_by_label("New note").fill("Pinned to 1.x until the licence server moves.")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator(".notes")).to_contain_text("Pinned to 1.x")
    icon = tmp_path / "icon.png"
    icon.write_bytes(_png())
    page.get_by_label(re.compile("^Upload an icon")).set_input_files(str(icon))
    page.get_by_role("button", name="Save icon").click()
    expect(page.get_by_role("status").filter(has_text="Icon saved.")).to_be_visible()
    expect(page.get_by_text("Uploaded icon.")).to_be_visible()
    current_icon = page.get_by_alt_text("Current icon of web-hello")
    expect(current_icon).to_have_attribute(
        "src", re.compile(r"/packages/web-hello/icon\?v=[0-9a-f]{12}$")
    )
    page.wait_for_function(
        "i => i.complete && i.naturalWidth > 0", arg=current_icon.element_handle()
    )
    assert current_icon.evaluate("i => i.naturalWidth") == 8  # the uploaded PNG, not the avatar
    shot(page, "workflow-package")
    anonymous = page.request.get(server.url + "/packages/web-hello/icon", headers={"Cookie": ""})
    assert anonymous.ok and anonymous.headers["content-type"] == "image/png"
    assert anonymous.body() == icon.read_bytes()

    # The audit log: every refusal is there, filterable.
    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("Action").fill("artifact.promote.refused")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator(".result-count")).to_contain_text("2 events")
    expect(page.locator("table.audit-table tbody")).to_contain_text("requires a change-control id")
    shot(page, "workflow-audit-refusals")
    page.goto(server.url + "/audit?action=artifact.deprecate")
    expect(page.locator("table.audit-table tbody")).to_contain_text("superseded by 1.1-1")

    # Channels: wait until apt/prod has two snapshots (publishing runs in the background),
    # then roll it back to the older one.
    page.goto(server.url + "/channels?stage=prod")
    expect(page.get_by_role("heading", name="Use the prod channels")).to_be_visible()
    expect(page.locator("pre").first).to_contain_text("packyard")
    rollback = page.locator("#channel-apt-prod").get_by_role("button", name=re.compile("^Roll"))
    for _ in range(60):
        if rollback.count() and page.locator("#channel-apt-prod tr.current").count():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(rollback.first).to_be_visible()
    target = page.locator("#channel-apt-prod tr.superseded code").first.inner_text()
    shot(page, "workflow-channels")
    rollback.first.click()
    expect(
        page.get_by_role("status").filter(has_text=f"now serves the content of snapshot {target}")
    ).to_be_visible()
    # The content comes back as a new snapshot, re-dated and re-signed (apt takes it).
    expect(page.locator("#channel-apt-prod tr.current")).to_contain_text("rollback")
    expect(page.locator("#channel-apt-prod tr.current code")).not_to_have_text(target)

    # A restart keeps everyone signed in (the session secret lives in the data dir).
    server.stop()
    server.start()
    page.goto(artifact_url)
    expect(page.get_by_role("heading", name=re.compile("web-hello"))).to_be_visible()
    page.goto(server.url + "/")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.locator(".board")).to_contain_text("web-hello")
    shot(page, "workflow-dashboard")
