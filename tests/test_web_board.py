"""The live board in a real browser: the gateway reads a simulator over Modbus TCP, and the tile changes
color when the machine does, pushed over server-sent events. Every state's tile is readable (WCAG AA
contrast), on a desktop and on a 390 px phone."""

import json
import re
from datetime import timedelta

from playwright.async_api import expect

from accounts.model import Role
from fabhub.web import board
from simulators.faultproxy import FaultProxy
from telemetry import BatchWriter, Sample
from tests.accounts_rig import Clock, login, make_user
from tests.booking_rig import NOW, customer, local, slot
from tests.browser import assert_fits_phone, chromium, log_in, new_page, shot
from tests.gateway_rig import devices_for, running_robot
from tests.http import serve

# A machine of devices.yaml in each state; printer-03 has never been seen (unknown).
STATES = {
    "cnc-01": "running",
    "cnc-02": "setup",
    "robot-01": "idle",
    "robot-02": "down",
    "printer-01": "maintenance",
    "printer-02": "offline",
}
# Per visible element of each tile that holds text of its own: its text color and the background colors from
# it up to the tile, as the browser computed them.
TEXT_COLORS = """() => [...document.querySelectorAll(".tile")].map(tile => ({
  state: tile.dataset.state,
  texts: [tile, ...tile.querySelectorAll("*")]
    .filter(el => el.checkVisibility() && [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()))
    .map(el => {
      const layers = [];
      for (let at = el; ; at = at.parentElement) {
        layers.unshift(getComputedStyle(at).backgroundColor);
        if (at === tile) break;
      }
      return {text: el.textContent.trim(), color: getComputedStyle(el).color, layers};
    }),
}))"""


def rgba(css: str) -> tuple[float, float, float, float]:
    """`rgb(r, g, b)` or `rgba(r, g, b, a)` as the browser computes a color."""
    found = [float(x) for x in re.findall(r"[\d.]+", css)]
    return (found[0], found[1], found[2], found[3] if len(found) == 4 else 1.0)


def over(top: tuple[float, float, float, float], below: tuple[float, float, float]) -> tuple[float, float, float]:
    r, g, b, a = top
    return (r * a + below[0] * (1 - a), g * a + below[1] * (1 - a), b * a + below[2] * (1 - a))


def luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG 2.x relative luminance of an sRGB color."""
    linear = [c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(color: str, layers: list[str]) -> float:
    """WCAG contrast ratio of a text color over its stacked backgrounds (the page's white beneath them all)."""
    background = (255.0, 255.0, 255.0)
    for layer in layers:
        background = over(rgba(layer), background)
    lighter, darker = sorted((luminance(over(rgba(color), background)), luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


async def test_a_tile_changes_color_when_the_machine_does(db_url, pool, tmp_path):
    sim = await running_robot("robot-01")
    await sim.start()
    try:
        devices = devices_for(["robot-01"], {"robot-01": sim.port})
        async with serve(db_url, devices, run_gateway=True, data_dir=tmp_path, batch_max_age_s=0.05) as client:
            await make_user(pool, Role.technician, email="tech@center.example")
            async with chromium() as browser:
                # the browser reaches the app through a proxy that can cut the line
                proxy = FaultProxy(client.base_url.host, client.base_url.port)
                await proxy.start()
                page = await new_page(browser, f"http://127.0.0.1:{proxy.port}")
                await log_in(page, "tech@center.example")
                assert page.url.endswith("/board")
                tile = page.locator("#tile-robot-01")
                await expect(tile).to_have_class("tile state-running", timeout=15_000)
                await shot(page, "board-running")
                sim.machine.force("down", 600)
                await sim.tick(0)
                await expect(tile).to_have_class("tile state-down", timeout=10_000)
                await expect(tile.locator("[data-field=state]")).to_have_text("故障")
                await shot(page, "board-down")
                # The line to the server drops: the board says so, then reconnects by itself and catches up
                # with what changed meanwhile.
                await proxy.refuse()
                await expect(page.locator("#lost")).to_have_class("banner shown", timeout=10_000)
                await shot(page, "board-connection-lost")
                sim.machine.force("running", 600)
                await sim.tick(0)
                await proxy.resume()
                await expect(page.locator("#lost")).to_have_class("banner", timeout=10_000)
                await expect(tile).to_have_class("tile state-running", timeout=10_000)
                await sim.stop()
                await expect(tile).to_have_class("tile state-offline", timeout=15_000)
                await proxy.stop()
    finally:
        await sim.stop()


async def test_an_open_stream_ends_when_its_account_is_deactivated(db_url, pool, monkeypatch):
    monkeypatch.setattr(board, "RECHECK_S", 0.2)
    async with serve(db_url) as client:
        user_id = await make_user(pool, Role.technician, email="leaving@center.example")
        token = (await login(client, "leaving@center.example"))["Authorization"].removeprefix("Bearer ")
        client.cookies.set("fabhub_session", token)
        async with client.stream("GET", "/board/events", headers={"Accept": "text/event-stream"}) as r:
            assert r.status_code == 200
            seen = []
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    seen.append(line.removeprefix("event: ").strip())
                    if seen == ["hello"]:
                        async with pool.connection() as conn:
                            await conn.execute("UPDATE app_user SET active = false WHERE id = %s", (user_id,))
                    if seen[-1] == "expired":
                        break
            assert seen == ["hello", "expired"]


async def test_every_state_is_readable_on_a_desktop_and_a_phone(db_url, pool):
    """A tile in every state the board knows, one with an alarm, one with a long program name and the booking
    under way: each text on each tile is at least 4.5:1 against its background, and at 390 px nothing is
    wider than the screen."""
    clock = Clock(NOW)
    async with serve(db_url, clock=clock, access_token_minutes=24 * 60) as client:
        booker = await customer(pool, client)
        booked = await client.post("/api/v1/bookings", json=slot(0, 9, 11, device_id="cnc-01"), headers=booker.headers)
        assert booked.status_code == 201, booked.text
        clock.now = local(0, 9.5)
        at = local(0, 9)
        samples = [Sample(at, device, "state", state) for device, state in STATES.items()]
        samples += [
            Sample(at, "cnc-01", "program", "O1234_FLANGE_HOUSING_ROUGHING_AND_FINISHING_V12.NC"),
            Sample(at, "robot-02", "emergency_stop", 1.0),
            Sample(at, "robot-01", "temperature.base", 31.5),
            Sample(at - timedelta(minutes=1), "printer-01", "progress_pct", 42.0),
        ]
        await BatchWriter(pool, clock=lambda: at).write_batch(samples)
        await make_user(pool, Role.technician, email="tech@center.example")
        async with chromium() as browser:
            for phone in (False, True):
                page = await new_page(browser, str(client.base_url), phone=phone)
                await log_in(page, "tech@center.example")
                assert page.url.endswith("/board")
                await expect(page.locator("#tile-robot-02 [data-field=alarm]")).to_have_text("报警： 急停")
                await expect(page.locator("#tile-cnc-01 [data-field=booking]")).not_to_have_text("未预约")
                tiles = await page.evaluate(TEXT_COLORS)
                states = set(json.loads(await page.locator("#board").get_attribute("data-labels")))
                assert {tile["state"] for tile in tiles} == states  # every state the board names, on a tile
                for tile in tiles:
                    for text in tile["texts"]:
                        ratio = contrast(text["color"], text["layers"])
                        assert ratio >= 4.5, (tile["state"], text, round(ratio, 2))
                if not phone:  # a stop pushed live is worded in Chinese too
                    live = [Sample(clock.now, "robot-01", "protective_stop", 1.0)]
                    await BatchWriter(pool, clock=clock).write_batch(live)
                    await expect(page.locator("#tile-robot-01 [data-field=alarm]")).to_have_text("报警： 保护性停止")
                await shot(page, "board-phone" if phone else "board-desktop")
                if phone:
                    await assert_fits_phone(page)
                    for tile in await page.locator(".tile").all():
                        box = await tile.bounding_box()
                        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
