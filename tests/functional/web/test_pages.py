"""Every page, as a new admin meets them on a server with the demo data: sign in for the first
time with the one-time token, look at each page (screenshots), accessibility checks."""

from __future__ import annotations

import re
import stat

from playwright.sync_api import expect
from tests.functional.web.conftest import (
    PHONE,
    check_accessibility,
    page_of,
    set_first_password,
    shot,
)

PAGES = (
    ("/", "Dashboard"),
    ("/artifacts", "Artifacts"),
    ("/packages", "Packages"),
    ("/channels", "Channels"),
    ("/upload", "Upload"),
    ("/audit", "Audit log"),
    ("/admin/users", "Users"),
    ("/tokens", "API tokens"),
    ("/account", "Account"),
)


def test_first_admin_signs_in_and_every_page_renders(make_server, open_browser) -> None:
    server = make_server(extra=["--demo"])
    page = page_of(open_browser())
    # No page may log a script error or a Content-Security-Policy violation.
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.goto(server.url + "/")
    expect(page).to_have_url(re.compile(r"/login"))
    shot(page, "login-first-time")
    set_first_password(page, server)
    secret = server.data_dir / "session-secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600

    problems = {}
    for path, heading in PAGES:
        page.goto(server.url + path)
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        name = path.strip("/").replace("/", "-") or "dashboard"
        shot(page, f"desktop-{name}")
        if path == "/":
            # The charts drew (Chart.js ran under the page's CSP).
            assert page.evaluate("Chart.getChart('chart-activity') !== undefined")
            assert page.evaluate("Chart.getChart('chart-lead') !== undefined")
        if path == "/channels":
            # Munki is set up with preferences Munki has (no "Catalogs ="): keys show's lines.
            munki = page.locator(
                "article", has=page.get_by_role("heading", name="Munki", exact=True)
            )
            expect(munki).to_contain_text(
                f'ManagedInstalls SoftwareRepoURL "{server.url}/repos/munki"'
            )
            expect(munki).to_contain_text("ManagedInstalls ClientIdentifier")
            expect(munki).not_to_contain_text("Catalogs =")
        found = check_accessibility(page)
        if found:
            problems[path] = found
    # One artifact and one package page.
    page.goto(server.url + "/artifacts?sort=name&order=asc")
    page.locator("#results tbody tr a").first.click()
    expect(page.get_by_role("heading", name=re.compile(r"^Stages"))).to_be_visible()
    shot(page, "desktop-artifact")
    problems_artifact = check_accessibility(page)
    page.get_by_role("link", name=re.compile(".+")).filter(has_text="in the table").count()
    page.locator("nav[aria-label=breadcrumb] a").nth(1).click()
    expect(page.get_by_role("heading", name="Versions across stages")).to_be_visible()
    shot(page, "desktop-package")
    problems_package = check_accessibility(page)
    assert not console_errors, console_errors
    assert not problems, problems
    assert not problems_artifact, problems_artifact
    assert not problems_package, problems_package


def test_pages_fit_a_phone(make_server, open_browser) -> None:
    server = make_server(extra=["--demo"])
    page = page_of(open_browser(viewport=PHONE, mobile=True))
    set_first_password(page, server)
    for path, heading in PAGES:
        page.goto(server.url + path)
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        # Nothing wider than the screen except inside scrollable table wrappers.
        overflow = page.evaluate("document.documentElement.scrollWidth") - PHONE["width"]
        assert overflow <= 1, f"{path} is {overflow}px wider than a phone"
        shot(page, f"phone-{path.strip('/').replace('/', '-') or 'dashboard'}")
