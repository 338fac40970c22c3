"""Roles apply in the browser exactly as in the API: a viewer sees no action and is refused
(403, with the API's message) when posting a form anyway; a post without the session's CSRF
token is refused; a phone-sized screen can do an admin's work."""

from __future__ import annotations

import html
import json
import re

import httpx
from playwright.sync_api import expect
from tests.functional.web.conftest import PHONE, page_of, set_first_password, shot, sign_in

from packyard.demo.builders import deb_bytes

ACTION_BUTTONS = re.compile(
    r"^(Promote|Hold|Release|Demote|Mark failed|Deprecate|Add note|Save icon|Set pipeline|Upload)$"
)


def _upload(server, name: str = "role-test", version: str = "1.0-1") -> str:
    content = deb_bytes(
        name=name,
        version=version,
        description="roles\n test",
        maintainer="T <t@example.org>",
        files={"usr/share/doc/x": b"x"},
    )
    with server.client() as client:
        response = client.post(
            "/api/v1/artifacts",
            params={"filename": f"{name}.deb", "justification": "t", "provenance": "t"},
            content=content,
            headers={"Content-Type": "application/octet-stream"},
        )
    assert response.status_code == 201, response.text
    return response.json()["sha256"]


def test_viewer_sees_no_actions_and_posting_anyway_is_refused(make_server, open_browser) -> None:
    server = make_server()
    sha = _upload(server)
    admin = page_of(open_browser())
    set_first_password(admin, server)

    # The admin creates a viewer with a password from the users page.
    admin.get_by_role("link", name="Users", exact=True).click()
    admin.get_by_label("User name").fill("vera")
    admin.get_by_label("Role").last.select_option("viewer")
    admin.get_by_label(re.compile(r"^Password")).fill("viewer password 1")
    admin.get_by_role("button", name="Create user").click()
    expect(admin.get_by_role("status").filter(has_text="User vera created")).to_be_visible()
    shot(admin, "roles-users-admin")

    # A CSRF-less post with the admin's own session cookie is refused.
    cookies = {c["name"]: c["value"] for c in admin.context.cookies()}
    with httpx.Client(base_url=server.url, cookies=cookies) as forged:
        no_token = forged.post(f"/artifacts/{sha}/promote", data={"stage": "ci"})
        assert no_token.status_code == 403
        assert "CSRF" in no_token.text
        wrong = forged.post(
            f"/artifacts/{sha}/promote", data={"stage": "ci", "csrf_token": "x" * 43}
        )
        assert wrong.status_code == 403
    with server.client() as client:  # nothing happened
        assert [s["stage"] for s in client.get(f"/api/v1/artifacts/{sha}").json()["stages"]] == [
            "new"
        ]

    viewer = page_of(open_browser())
    sign_in(viewer, server, "vera", "viewer password 1")
    nav = viewer.get_by_role("navigation", name="Main")
    for hidden in ("Upload", "Audit log", "Users"):
        expect(nav.get_by_role("link", name=hidden, exact=True)).to_have_count(0)
    viewer.goto(f"{server.url}/artifacts/{sha}")
    expect(viewer.get_by_role("heading", name=re.compile("role-test"))).to_be_visible()
    expect(viewer.get_by_role("button", name=ACTION_BUTTONS)).to_have_count(0)
    expect(viewer.locator(".gates")).to_contain_text("role 'viewer' may not promote artifacts")
    shot(viewer, "roles-viewer-artifact")
    viewer.goto(f"{server.url}/packages/role-test")
    expect(viewer.get_by_role("button", name=ACTION_BUTTONS)).to_have_count(0)

    # Posting the forms anyway, with a valid CSRF token: 403 and the API's message.
    token = json.loads(viewer.locator("body").get_attribute("hx-headers"))["X-CSRF-Token"]
    for path, form, message in (
        (f"/artifacts/{sha}/promote", {"stage": "ci"}, "role 'viewer' may not promote artifacts"),
        (f"/artifacts/{sha}/hold", {"reason": "x"}, "role 'viewer' may not hold or release"),
        (f"/artifacts/{sha}/deprecate", {"reason": "x"}, "may not fail or deprecate"),
        ("/packages/role-test/notes", {"text": "hi"}, "may not write package notes"),
        ("/admin/users", {"name": "eve", "role": "admin"}, "may not manage users"),
    ):
        response = viewer.request.post(server.url + path, form={**form, "csrf_token": token})
        assert response.status == 403, (path, response.status)
        assert message in html.unescape(response.text()), path
    for path in ("/audit", "/admin/users", "/upload"):
        assert viewer.request.get(server.url + path).status == 403, path
    with server.client() as client:
        detail = client.get(f"/api/v1/artifacts/{sha}").json()
    assert [s["stage"] for s in detail["stages"]] == ["new"] and detail["status"] == "active"

    # Signing out ends the session for good: the old cookie no longer works.
    old = {c["name"]: c["value"] for c in viewer.context.cookies()}
    viewer.request.post(server.url + "/logout", form={"csrf_token": token})
    with httpx.Client(base_url=server.url, cookies=old, follow_redirects=False) as replay:
        assert replay.get("/").status_code == 303


def test_an_admin_promotes_from_a_phone(make_server, open_browser) -> None:
    server = make_server()
    sha = _upload(server, name="phone-app")
    page = page_of(open_browser(viewport=PHONE, mobile=True))
    set_first_password(page, server)
    shot(page, "phone-dashboard-empty-ish")
    page.get_by_role("button", name="Menu").click()
    page.get_by_role("link", name="Artifacts", exact=True).last.click()
    expect(page.get_by_role("heading", name="Artifacts", exact=True)).to_be_visible()
    page.locator("#results tbody a", has_text="phone-app").click()
    page.get_by_label("To stage").select_option("ci")
    page.get_by_label("Promotion note").fill("from my phone")
    page.get_by_role("button", name="Promote", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Promoted to ci.")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth") - PHONE["width"]
    assert overflow <= 1, f"the artifact page is {overflow}px wider than the phone"
    shot(page, "phone-artifact-promoted")
    with server.client() as client:
        stages = client.get(f"/api/v1/artifacts/{sha}").json()["stages"]
    assert [(s["stage"], s["entered_by"], s["note"]) for s in stages][-1] == (
        "ci",
        "admin",
        "from my phone",
    )
