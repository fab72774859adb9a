"""The booking form in Chinese says every broken class rule in Chinese: the rule's name and what it asks, with no
English sentence of the domain's detail behind it (the API keeps its English details). Each kind of rule
problem is triggered on the page: the price check, the refused confirmation, the refused waiting list and the
preview of a series. devices.yaml's cnc class: 1 h to 8 h on a 30 min grid, 30 days ahead, 40 future hours per
organization; the center opens 08:00-20:00 on weekdays."""

import html
import re
from datetime import date

from fabhub.web.i18n import RULES_ZH
from tests.accounts_rig import Clock
from tests.booking_rig import NOW, customer, local, slot
from tests.http import serve

ENGLISH = re.compile(r"[A-Za-z]+(?:[\s,;:'()-]+[A-Za-z]+){2,}")  # three English words in a row


def form(day: int, start: float, end: float, device_id: str = "cnc-01", **extra: str) -> dict[str, str]:
    def field(hour: float) -> str:
        return local(day, hour).strftime("%Y-%m-%dT%H:%M")

    cls = device_id.split("-")[0]
    return {"class_id": cls, "device_id": device_id, "start": field(start), "end": field(end), **extra}


async def said(client, who, path: str, data: dict[str, str], lang: str = "zh") -> list[str]:
    """What the page lists as problems: the form's problems and those of each occurrence of a series."""
    client.cookies.set("fabhub_session", who.headers["Authorization"].removeprefix("Bearer "))
    client.cookies.set("fabhub_lang", lang)
    try:
        token = re.search(r'name="csrf" value="([^"]+)"', (await client.get("/book")).text).group(1)
        page = (await client.post(path, data={"csrf": token, **data})).text
    finally:
        client.cookies.clear()
    found = re.findall(r'<ul class="problems" role="alert">(.*?)</ul>', page, re.S)
    items = re.findall(r"<li>(.*?)</li>", "".join(found), re.S)
    items += re.findall(r"<small>(.*?)</small>", "".join(re.findall(r'id="occurrences">(.*?)</table>', page, re.S)))
    return [html.unescape(i).strip() for i in items]


def rules_named(texts: list[str]) -> set[str]:
    return {rule for rule, name in RULES_ZH.items() for text in texts if text.startswith(name + "：")}


async def test_every_rule_problem_reads_in_chinese(db_url, pool):
    async with serve(db_url, clock=Clock(NOW), access_token_minutes=24 * 60) as client:
        booker = await customer(pool, client)
        unqualified = await customer(pool, client, classes=())
        expiring = await customer(pool, client, qualified_until=date(2027, 3, 2))
        full = await customer(pool, client)
        for day in (1, 2, 3, 4, 7):  # 5 weekdays x 8 h = 40 h, the organization's limit exactly
            r = await client.post("/api/v1/bookings", json=slot(day, 8, 16, device_id="cnc-02"), headers=full.headers)
            assert r.status_code == 201, r.text
        referenced = await customer(pool, client)
        async with pool.connection() as conn:
            await conn.execute("UPDATE organization SET reference_required = true WHERE id = %s", (referenced.org_id,))

        cases = [  # (who, path, form, the rules the page names)
            (booker, "/book/quote", form(-1, 9, 10), {"past", "opening_hours"}),  # Sunday, gone
            (booker, "/book/quote", form(1, 10, 10.5), {"min_booking"}),
            (booker, "/book/quote", form(3, 8, 16.5), {"max_booking"}),
            (booker, "/book/quote", form(1, 9.25, 10.25), {"granularity"}),
            (booker, "/book/quote", form(31, 9, 10), {"horizon"}),
            (booker, "/book/quote", form(1, 19, 21, "printer-01"), {"opening_hours"}),
            (unqualified, "/book/quote", form(1, 9, 10), {"qualification"}),
            (expiring, "/book/quote", form(2, 9, 10), {"qualification"}),
            (referenced, "/book/quote", form(1, 9, 10), {"reference"}),
            (full, "/book/quote", form(1, 16, 17), {"max_future_hours_per_org"}),
            # refused on confirming, and on joining the waiting list for a slot waiting cannot mend
            (booker, "/book", form(1, 10, 10.5), {"min_booking"}),
            (unqualified, "/book/wait", form(1, 8, 9, "cnc-02"), {"qualification"}),
            # a series whose days are taken
            (booker, "/book/quote", form(1, 8, 9, "cnc-02", repeat="DAILY", times="2"), {"taken"}),
        ]
        for who, path, data, rules in cases:
            texts = await said(client, who, path, data)
            assert rules_named(texts) == rules, (data, texts)
            english = [t for t in texts if ENGLISH.search(t)]
            assert not english, (data, english)

        # In English the page says the domain's sentences.
        texts = await said(client, booker, "/book/quote", form(1, 10, 10.5), lang="en")
        assert texts == ["a booking lasts at least 1 h"]
        texts = await said(client, full, "/book/quote", form(1, 16, 17))
        assert texts == [
            "超出本单位未来预约时长上限：本单位在此类设备上的未来预约最多 40 小时；已有 40 小时，本次预约 1 小时。"
        ]
