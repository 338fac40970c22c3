"""The rest of what the CLI does, from the browser: download, demote, fail, set a pipeline,
pipelines, verify the audit chain, tokens (create, use with the API, revoke), users (update,
disable), own password."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx
from playwright.sync_api import expect
from tests.functional.web.conftest import page_of, set_first_password, shot
from tests.functional.web.test_roles import _upload

DEFAULT_PIPELINE = {
    "stages": [
        {"name": "new"},
        {"name": "ci"},
        {"name": "dev"},
        {"name": "stage"},
        {"name": "prod", "change_control": True},
    ]
}
SHORT_PIPELINE = {"stages": [{"name": "dev"}, {"name": "prod", "change_control": True}]}


def test_download_demote_fail_pipelines_audit_verify_tokens_and_users(
    make_server, open_browser, tmp_path: Path
) -> None:
    server = make_server(
        config={"pipelines": {"default": DEFAULT_PIPELINE, "short": SHORT_PIPELINE}}
    )
    sha = _upload(server, name="admin-app")
    page = page_of(open_browser())
    set_first_password(page, server)

    # Download verifies against the sha256; promote twice, demote, fail.
    page.goto(f"{server.url}/artifacts/{sha}")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download").click()
    assert hashlib.sha256(Path(download_info.value.path()).read_bytes()).hexdigest() == sha
    for stage in ("ci", "dev"):
        page.get_by_label("To stage").select_option(stage)
        page.get_by_role("button", name="Promote", exact=True).click()
        expect(page.get_by_role("status").filter(has_text=f"Promoted to {stage}.")).to_be_visible()
    page.get_by_label(re.compile("^Out of stage")).select_option("ci")
    page.get_by_role("button", name="Demote", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Removed from ci")).to_be_visible()
    expect(page.locator(".stage-track li.reached")).to_have_count(1)
    page.get_by_label("Failure reason").fill("segfaults on start")
    page.get_by_role("button", name="Mark failed").click()
    expect(page.get_by_role("status").filter(has_text="Marked failed")).to_be_visible()
    expect(page.locator(".gates")).to_contain_text("marked failed")

    # Pipelines are listed; a package gets the short pipeline.
    page.get_by_role("link", name="Packages", exact=True).click()
    expect(page.get_by_role("heading", name="short")).to_be_visible()
    page.get_by_role("link", name="admin-app").click()
    page.get_by_label("Pipeline", exact=True).select_option("short")
    page.get_by_role("button", name="Set pipeline").click()
    expect(page.get_by_role("status").filter(has_text="Pipeline set to short.")).to_be_visible()
    expect(page.locator(".page-head")).to_contain_text("dev → prod")

    # The audit chain verifies.
    page.get_by_role("link", name="Audit log").click()
    page.get_by_role("button", name="Verify the hash chain").click()
    expect(page.get_by_role("status").filter(has_text="Audit log intact")).to_be_visible()
    shot(page, "admin-audit-verified")

    # Tokens: create one (shown once), it works with the API, revoke it, it stops working.
    page.get_by_role("link", name="Tokens", exact=True).click()
    page.get_by_label(re.compile("^Name")).fill("laptop")
    page.get_by_label(re.compile("^Expires after")).fill("90")
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("#new-token").inner_text().strip()
    assert secret.startswith("pky_")
    shot(page, "admin-token-created")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret}"}) as api:
        assert api.get("/api/v1/whoami").json()["name"] == "admin"
        page.get_by_role("button", name="Revoke token laptop").click()
        expect(page.get_by_role("status").filter(has_text="revoked")).to_be_visible()
        assert api.get("/api/v1/whoami").status_code == 401

    # Users: a maintainer limited to dev, who sets their password with their first token.
    page.get_by_role("link", name="Users", exact=True).click()
    page.get_by_label("User name").fill("dana")
    page.get_by_label("Role").last.select_option("maintainer")
    page.get_by_role("button", name="Create user").click()
    first_token = page.locator("#new-token").inner_text().strip()
    page.get_by_text("Edit dana").click()
    page.get_by_label("every stage").last.uncheck()
    page.locator("form[action='/admin/users/dana'] input[value=dev]").check()
    page.get_by_role("button", name="Save dana").click()
    expect(page.get_by_role("status").filter(has_text="User dana updated.")).to_be_visible()
    expect(page.locator("table tbody tr", has_text="dana")).to_contain_text("dev")
    shot(page, "admin-users")

    dana = page_of(open_browser())
    dana.goto(server.url + "/setup")
    dana.get_by_label("API token").fill(first_token)
    dana.get_by_label(re.compile(r"^New password \(")).fill("dana password 1")
    dana.get_by_label("New password again").fill("dana password 1")
    dana.get_by_role("button", name="Set password and sign in").click()
    expect(dana.get_by_role("heading", name="Dashboard")).to_be_visible()
    dana.goto(server.url + "/account")
    dana.get_by_label("Current password").fill("dana password 1")
    dana.get_by_label(re.compile(r"^New password \(")).fill("dana password 2")
    dana.get_by_label("New password again").fill("dana password 2")
    dana.get_by_role("button", name="Change password").click()
    expect(dana.get_by_role("status").filter(has_text="Password changed.")).to_be_visible()

    # Disabling dana ends her session at once.
    page.get_by_text("Edit dana").click()
    page.locator("form[action='/admin/users/dana'] input[name=disabled]").check()
    page.get_by_role("button", name="Save dana").click()
    expect(page.locator("table tbody tr", has_text="dana")).to_contain_text("disabled")
    dana.goto(server.url + "/")
    expect(dana).to_have_url(re.compile(r"/login"))
    expect(dana.get_by_role("status").filter(has_text="disabled")).to_be_visible()
    dana.get_by_label("User name").fill("dana")
    dana.get_by_label("Password").fill("dana password 2")
    dana.get_by_role("button", name="Sign in").click()
    expect(dana.get_by_role("alert")).to_contain_text("wrong user name or password")
