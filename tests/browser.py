"""Headless Chromium for the page tests: Debian's `chromium` (scripts/system-deps.sh installs it) driven by
Playwright, which must not download a browser of its own. Every page a test visits can be saved as a
screenshot under artifacts/screenshots, so a reviewer sees what the tests saw."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright

from tests.accounts_rig import PASSWORD
from tests.http import REPO

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = REPO / "artifacts" / "screenshots"


@contextlib.asynccontextmanager
async def chromium(*flags: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, *flags])
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(browser: Browser, base_url: str, *, phone: bool = False) -> Page:
    viewport = {"width": 390, "height": 844} if phone else {"width": 1366, "height": 900}
    context = await browser.new_context(base_url=base_url, viewport=viewport, locale="zh-CN")
    return await context.new_page()


async def log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    await page.goto("/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", password)
    async with page.expect_navigation():
        await page.click("form.card button[type=submit]")


async def shot(page: Page, name: str, *, full_page: bool = True) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"
    await page.screenshot(path=path, full_page=full_page)
    return path


PHONE_WIDTH = 390


async def assert_fits_phone(page: Page) -> None:
    """On a 390 px screen: nothing wider than the screen, and every visible button inside its width and
    clickable there (Playwright's actionability checks without clicking: visible, stable, enabled, not covered
    by anything else)."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE_WIDTH, (page.url, width)
    for button in await page.locator("button:visible").all():
        box = await button.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE_WIDTH, (page.url, box)
        await button.click(trial=True)


async def assert_cards(page: Page, table: str, *, phone: bool) -> None:
    """Every cell of a table of records carries its column's header as its label; on a phone the table is a
    card per row (the header row hidden, each cell a block with its label drawn before it), on a desktop a
    table. Rows that span the columns ("nothing yet") are left out."""
    found = await page.evaluate(
        """selector => {
          const table = document.querySelector(selector);
          const heads = [...table.tHead.rows[0].cells].map(c => c.textContent.trim());
          const cells = [...table.tBodies[0].rows].filter(r => r.cells.length === heads.length).flatMap(
            r => [...r.cells].map((c, i) => ({
              header: heads[i], label: c.dataset.label || "", display: getComputedStyle(c).display,
              before: getComputedStyle(c, "::before").content !== "none",
            })));
          return {head: getComputedStyle(table.tHead).display, cells};
        }""",
        table,
    )
    assert found["cells"], table
    for cell in found["cells"]:
        assert cell["label"] == cell["header"], (table, cell)
        if phone:
            assert cell["display"] == "block" and cell["before"] == bool(cell["label"]), (table, cell)
        else:
            assert cell["display"] == "table-cell" and not cell["before"], (table, cell)
    assert found["head"] == ("none" if phone else "table-header-group"), table
