"""Browser fixtures: Debian's Chromium driven by Playwright against a real `packyard serve`.

Never downloads a browser (no `playwright install`): the tests use /usr/bin/chromium and fail
loudly, naming the package, when it is missing. Screenshots of every page go to
test-artifacts/screenshots/ (git-ignored) so a person can look at them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, expect, sync_playwright
from tests.conftest import REPO, Server

CHROMIUM = Path(os.environ.get("PACKYARD_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
PASSWORD = "correct horse battery"
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"

expect.set_options(timeout=10_000)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: the web UI tests drive Debian's Chromium. "
            "Install it with `apt-get install chromium` (./dev setup does)."
        )
    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def open_browser(playwright: Playwright, tmp_path: Path) -> Iterator[Any]:
    """Factory: open_browser(viewport=..., mobile=False) -> a fresh browser context."""
    contexts: list[BrowserContext] = []

    def factory(*, viewport: dict[str, int] = DESKTOP, mobile: bool = False) -> BrowserContext:
        profile = tmp_path / f"chromium-profile-{len(contexts)}"
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport=viewport,
            is_mobile=mobile,
            has_touch=mobile,
            device_scale_factor=2 if mobile else 1,
            accept_downloads=True,
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context

    yield factory
    for context in contexts:
        context.close()


def page_of(context: BrowserContext) -> Page:
    return context.pages[0] if context.pages else context.new_page()


def shot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def set_first_password(page: Page, server: Server, *, password: str = PASSWORD) -> None:
    """The first admin's path: / -> /login -> /setup with the one-time token."""
    page.goto(server.url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
    page.get_by_role("link", name="set your password", exact=True).click()
    page.get_by_label("API token").fill(server.token)
    page.get_by_label(re.compile(r"^New password \(")).fill(password)
    page.get_by_label("New password again").fill(password)
    page.get_by_role("button", name="Set password and sign in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def sign_in(page: Page, server: Server, name: str, password: str = PASSWORD) -> None:
    page.goto(server.url + "/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def check_accessibility(page: Page) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations on the current page (labels, contrast...)."""
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `./dev setup` (npm ci installs axe-core)")
    # Evaluated through the driver: the pages' CSP (rightly) refuses injected script tags.
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text() + "\n;undefined")
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => ['serious', 'critical'].includes(v.impact))"
        ".map(v => ({id: v.id, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target)}))"
    )
    return list(result)
