"""Quote versus invoice (issue 14): the quoted subsidy is an estimate, and the booking pages say which rule the
invoice applies: the program's share of the amount actually billed, within what is left of the annual cap at
invoicing. A printer (overage basis) is quoted 2 h with 30.00 of subsidy, runs an hour over, and the cap has
40.00 left: the invoice grants 40.00, exactly what the rule on the page gives, so nothing surprises."""

import re
from decimal import Decimal

from accounts.model import Role
from common.money import money
from fabhub.catalogue import catalogue_from, oee_facts
from fabhub.jobs import JobRunner, jobs_for
from fabhub.settings import Settings
from oee.invoices import Invoicing
from oee.service import OeeService
from telemetry import BatchWriter, Sample
from tests.accounts_rig import Clock, as_role
from tests.booking_rig import NOW, ZONE, customer, local, slot
from tests.http import serve
from tests.test_invoices import center

PRINTER = "printer-01"
CAP = Decimal("40.00")
RULE_ZH = "补贴按实际计费金额和届时剩余额度结算"


async def page(client, headers, path, *, lang="zh", form=None):
    """A page as the customer's browser gets it: the session cookie, the language cookie, the form's token."""
    client.cookies.set("fabhub_session", headers["Authorization"].removeprefix("Bearer "))
    client.cookies.set("fabhub_lang", lang)
    try:
        if form is None:
            r = await client.get(path)
        else:
            token = re.search(r'name="csrf" value="([^"]+)"', (await client.get("/book")).text).group(1)
            r = await client.post(path, data={"csrf": token, **form})
        assert r.status_code == 200, r.text
        return r.text
    finally:
        client.cookies.clear()


def rule_of(html: str) -> tuple[str, Decimal | None]:
    """The rule paragraph's text and the share it names (None when it names no share)."""
    found = re.search(r'<p class="note" data-test="subsidy-rule">(.*?)</p>', html, re.S)
    assert found, "the page states no subsidy rule"
    text = " ".join(found.group(1).split())
    share = re.search(r"([0-9.]+)%", text)
    return text, Decimal(share.group(1)) / 100 if share else None


async def test_the_pages_state_the_rule_the_invoice_applies(db_url, pool):
    devices = center(cap=str(CAP))
    clock = Clock(NOW)
    oee = OeeService(*oee_facts(devices), ZONE, clock)
    settings = Settings()
    jobs = JobRunner(
        pool, jobs_for(settings, catalogue_from(devices), oee, Invoicing(oee, settings.vat_rate, ZONE, clock)), clock
    )
    async with serve(db_url, devices, clock=clock, access_token_minutes=24 * 60) as client:
        booker = await customer(pool, client, programs=("jingjiang-sme",))
        form = {"class_id": "printer", "device_id": PRINTER, "start": "2027-03-02T10:00", "end": "2027-03-02T12:00"}
        quoted = await page(client, booker.headers, "/book/quote", form=form)
        assert re.search(r'data-test="subsidy">−¥30.00<', quoted)  # 2 h x 30.00, half
        text, share = rule_of(quoted)
        assert RULE_ZH in text and "靖江市中小企业共享制造补贴" in text and share == Decimal("0.5")
        english, _ = rule_of(await page(client, booker.headers, "/book/quote", lang="en", form=form))
        assert "estimate" in english and "of the amount actually billed" in english and "annual cap" in english

        r = await client.post("/api/v1/bookings", json=slot(1, 10, 12, device_id=PRINTER), headers=booker.headers)
        assert r.status_code == 201, r.text
        quoted_subsidy = Decimal(r.json()["subsidy"])
        assert quoted_subsidy == Decimal("30.00")
        mine = await page(client, booker.headers, "/my-bookings")
        assert re.search(r'data-test="subsidy-estimate">补贴 −¥30.00 \(靖江市中小企业共享制造补贴, 50.0%, 预估\)', mine)
        assert RULE_ZH in rule_of(mine)[0]

        # The printer runs an hour past the booked end; nothing follows it that day.
        await BatchWriter(pool, clock=lambda: local(1, 14)).write_batch(
            [Sample(local(1, 10), PRINTER, "state", "running"), Sample(local(1, 13), PRINTER, "state", "idle")]
        )
        for at in (local(1, 10.52), local(1, 12.1), local(1, 13.6)):  # check-in, completion, results frozen
            clock.now = at
            assert (await jobs.run("booking-lifecycle"))[0]

        clock.now = local(31, 1)  # 1 April, 01:00
        finance = await as_role(pool, client, Role.finance)
        r = await client.post("/api/v1/invoices/drafts", json={"month": "2027-03"}, headers=finance)
        [invoice_id] = r.json()["invoices"]
        lines = (await client.get(f"/api/v1/invoices/{invoice_id}", headers=finance)).json()["lines"]
        [usage] = [line for line in lines if line["kind"] == "usage"]
        [subsidy] = [line for line in lines if line["kind"] == "subsidy"]
        assert (usage["quantity"], usage["amount"]) == ("3.0000", "90.00")  # overage: 2 h + 1 h over
        # The rule as the page stated it: the share of the billed amount (45.00), within the cap left (40.00).
        assert Decimal(subsidy["amount"]) == -min(money(Decimal(usage["amount"]) * share), CAP) == Decimal("-40.00")
        assert -Decimal(subsidy["amount"]) != quoted_subsidy  # the quote was the estimate the pages called it
