"""The live board in a real browser: the gateway reads a simulator over Modbus TCP, and the tile changes
color when the machine does, pushed over server-sent events."""

from playwright.async_api import expect

from accounts.model import Role
from fabhub.web import board
from simulators.faultproxy import FaultProxy
from tests.accounts_rig import login, make_user
from tests.browser import chromium, log_in, new_page, shot
from tests.gateway_rig import devices_for, running_robot
from tests.http import serve


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
