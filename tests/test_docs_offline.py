"""/docs and /redoc work without the internet: every file the two pages name is a path of FabHub's own that it
serves, and no address of another host appears in them. In Chromium with every request to another host
refused, Swagger UI shows each operation of the API and ReDoc each operation too; the pages are opened under
a host name, as at the center, not as localhost (Swagger UI and ReDoc treat local addresses differently in
places). Saved as artifacts/screenshots/docs-offline.png and redoc-offline.png."""

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from playwright.async_api import Browser, Page, Route, expect

from tests.browser import chromium, new_page, shot
from tests.http import serve

PAGES = ("/docs", "/redoc")
TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
HOST = "fabhub.test"  # a name for 127.0.0.1, given to Chromium only
# ReDoc's footer logo: without it the footer shows no image (it hides itself on error), nothing else changes.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


class Addresses(HTMLParser):
    """Every address a page names in an attribute: src, href, and ReDoc's spec-url."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [value for name, value in attrs if name in ("src", "href", "spec-url") and value]


def addresses(html: str) -> list[str]:
    parser = Addresses()
    parser.feed(html)
    return parser.found


def operations(spec: dict) -> int:
    return sum(len(METHODS & set(item)) for item in spec["paths"].values())


async def test_the_docs_pages_name_only_files_fabhub_serves(db_url):
    async with serve(db_url) as client:
        origin = str(client.base_url).rstrip("/")
        for page in PAGES:
            r = await client.get(page)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), page
            html = r.text
            elsewhere = [url for url in re.findall(r"(?:https?:)?//[^\s\"'<>)]+", html) if not url.startswith(origin)]
            assert elsewhere == [], (page, elsewhere)
            found = addresses(html)
            assert len(found) >= 2, (page, found)  # the script and the icon at least
            if page == "/docs":
                found += re.findall(r"url: '([^']+)'", html)  # the spec, in Swagger UI's setup script
            assert "/openapi.json" in found, page
            for url in found:
                assert url.startswith("/") and not url.startswith("//"), (page, url)
                parts = urlsplit(urljoin(origin + page, url))
                assert (parts.scheme, parts.netloc) == ("http", urlsplit(origin).netloc), (page, url)
                answer = await client.get(parts.path)
                suffix = "." + parts.path.rsplit(".", 1)[-1]
                assert answer.status_code == 200 and answer.content, (page, url, answer.status_code)
                assert answer.headers["content-type"].startswith(TYPES[suffix]), (url, answer.headers["content-type"])


async def open_offline(browser: Browser, origin: str, path: str) -> tuple[Page, list[str], list[str]]:
    """The page at `path` in a context that refuses every request to anything but FabHub; also returns the
    refused addresses and the page's script errors, as they come."""
    page = await new_page(browser, origin)
    refused: list[str] = []
    errors: list[str] = []

    async def only_fabhub(route: Route) -> None:
        url = route.request.url
        if url.startswith((origin + "/", "data:", "blob:")):
            await route.continue_()
        else:
            refused.append(url)
            await route.abort()

    await page.context.route("**/*", only_fabhub)
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(path)
    return page, refused, errors


async def test_swagger_ui_and_redoc_render_with_every_other_host_blocked(db_url):
    async with serve(db_url) as client:
        count = operations((await client.get("/openapi.json")).json())
        origin = f"http://{HOST}:{client.base_url.port}"
        async with chromium(f"--host-resolver-rules=MAP {HOST} 127.0.0.1") as browser:
            page, refused, errors = await open_offline(browser, origin, "/docs")
            await expect(page.get_by_role("heading", level=1)).to_contain_text("FabHub")
            await expect(page.locator(".opblock")).to_have_count(count)
            await expect(page.locator(".opblock-summary-path").first).to_be_visible()
            await shot(page, "docs-offline")
            assert refused == [] and errors == [], (refused, errors)

            page, refused, errors = await open_offline(browser, origin, "/redoc")
            await expect(page.get_by_role("heading", level=1)).to_contain_text("FabHub")
            await expect(page.locator("[data-section-id^='operation/']")).to_have_count(count)
            healthz = page.get_by_role("heading", name="Database reachability and TimescaleDB status")
            await expect(healthz).to_be_visible()
            await shot(page, "redoc-offline", full_page=False)  # the whole page is tens of thousands of pixels
            assert set(refused) <= {REDOC_LOGO} and errors == [], (refused, errors)
