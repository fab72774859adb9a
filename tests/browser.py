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
