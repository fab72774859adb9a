"""Pages answer bad input with a page that says what is wrong, never a 500: dates near year 1 or 9999 in
the calendar, the booking form, the management window and the maintenance form, and a NUL in a note."""

import re

from accounts.model import Role
from tests.accounts_rig import Clock, as_role
from tests.booking_rig import NOW
from tests.http import serve


async def session(client, pool, role: Role) -> str:
    token = (await as_role(pool, client, role))["Authorization"].removeprefix("Bearer ")
    client.cookies.clear()
    client.cookies.set("fabhub_session", token)
    page = (await client.get("/login")).text
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


async def test_dates_out_of_range_and_nul_get_a_page_not_a_500(db_url, pool):
    async with serve(db_url, clock=Clock(NOW)) as client:
        csrf = await session(client, pool, Role.admin)
        for url in (
            "/book?start=0001-01-01T00:00%2B14:00",
            "/book?start=9999-12-31T23:59",
            "/book?week=9999-12-31",
            "/book?week=0001-01-01",
            "/book?week=not-a-date&cls=nope&device=nope",
        ):
            r = await client.get(url)
            assert r.status_code == 200 and 'id="calendar"' in r.text, url
        for query in ("until=0001-01-01", "since=0001-01-01&until=0001-02-01", "since=2027-01-01&until=2026-01-01"):
            r = await client.get(f"/management?{query}")
            assert r.status_code == 200 and "92" in r.text, query  # the window's rule, and the last 30 days
        for start, end in (("9999-12-30T09:00", "9999-12-30T10:00"), ("0001-01-01T00:00+14:00", "2027-03-02T10:00")):
            form = {"csrf": csrf, "class_id": "cnc", "device_id": "cnc-01", "start": start, "end": end}
            r = await client.post("/book/quote", data=form)
            assert r.status_code == 422 and "2000" in r.text, (start, r.status_code)
            form = {"csrf": csrf, "start": start, "end": end, "reason": "out of range"}
            r = await client.post("/machines/cnc-01/maintenance", data=form)
            assert r.status_code == 422, (start, r.status_code)
        form = {"csrf": csrf, "start": "2027-03-01T07:00+08:00", "code": "other", "note": "a\x00b"}
        r = await client.post("/machines/cnc-01/downtime", data=form)
        assert r.status_code == 422 and "500" in r.text
    client.cookies.clear()
