"""The admin pages over HTTP with a session cookie and the form token, against the real app and database:
organizations (a bad credit code refused next to the form in Chinese, eligibility, the reference flag, the
subsidy cap), users (create, role, deactivation, a new password that ends the old session), the CSV import
(a bad row shown in the preview, the import refused with nothing written, then the fixed file imported),
qualifications (granted, renewed and revoked by a technician), opening hours with closed and make-up working
days (which the booking check then follows), and the audit log filtered and exported."""

import csv
import io
import re
from datetime import date, timedelta

from accounts.model import Role
from accounts.users import list_users
from booking import hours
from tests.accounts_rig import PASSWORD, Clock, make_org, make_user, valid_uscc
from tests.booking_rig import NOW, ZONE, local
from tests.http import serve


async def log_in(client, pool, role: Role, email: str) -> str:
    """A session for a new user of the role; returns the form token."""
    await make_user(pool, role, email=email)
    return await session_of(client, email)


async def session_of(client, email: str) -> str:
    client.cookies.clear()
    r = await client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)
    r = await client.post("/login", data={"csrf": token, "email": email, "password": PASSWORD})
    assert r.status_code == 303, r.text
    return re.search(r'name="csrf" value="([^"]+)"', (await client.get("/login")).text).group(1)


def problems(page: str) -> list[str]:
    return re.findall(r"<li>([^<]*)</li>", page.split('class="problems"', 1)[1].split("</ul>", 1)[0])


async def test_organizations_create_edit_deactivate_and_subsidy(db_url, pool):
    async with serve(db_url, clock=Clock(NOW)) as client:
        csrf = await log_in(client, pool, Role.admin, "admin@center.example")
        form = {"csrf": csrf, "name": "泰州智造有限公司", "uscc": "91321282MA1XXXXXX1", "programs": "jingjiang-sme"}
        r = await client.post("/admin/organizations", data=form)
        assert r.status_code == 422
        assert r.text.index('class="problems"') > r.text.index('id="create-organization"')  # at its form
        [message] = problems(r.text)
        assert message.startswith("校验位为") and "泰州智造有限公司" in r.text  # typed values stay in the form

        code = valid_uscc()
        r = await client.post("/admin/organizations", data={**form, "uscc": code.lower()})
        assert r.status_code == 303
        org_id = int(r.headers["location"].split("/")[-1].split("?")[0])
        taken = await client.post("/admin/organizations", data={**form, "name": "另一家", "uscc": code})
        assert taken.status_code == 409 and f"统一社会信用代码 {code} 已属于另一家单位。" in problems(taken.text)

        listed = await client.get("/admin/organizations", params={"q": code[:10].lower()})
        assert f'data-org="{org_id}"' in listed.text and "靖江市中小企业共享制造补贴" in listed.text
        assert 'data-org="' not in (await client.get("/admin/organizations", params={"q": "没有这家"})).text

        page = await client.get(f"/admin/organizations/{org_id}")
        assert 'data-program="jingjiang-sme"' in page.text and "¥20,000.00" in page.text  # cap, nothing granted
        edit = {
            "csrf": csrf,
            "name": "泰州智造股份有限公司",
            "uscc": code,
            "contact_name": "王经理",
            "contact_phone": "0523-1234567",
            "contact_email": "wang@example.com",
            "programs": ["jingjiang-sme", "jiangsu-smart-manufacturing"],
            "reference_required": "on",
        }
        assert (await client.post(f"/admin/organizations/{org_id}", data=edit)).status_code == 303
        bad = await client.post(f"/admin/organizations/{org_id}", data={**edit, "contact_email": "not-an-email"})
        assert bad.status_code == 422 and problems(bad.text) == ["“not-an-email”不是有效的邮箱地址。"]
        org = (await client.get(f"/api/v1/organizations/{org_id}")).json()
        assert org["reference_required"] and org["name"] == "泰州智造股份有限公司"
        assert org["subsidy_programs"] == ["jiangsu-smart-manufacturing", "jingjiang-sme"]
        # The buyer tax data its invoices print: checked (the reason in Chinese, the typed values kept), then saved.
        tax = {
            "taxpayer_type": "small_scale",
            "invoice_address": "靖江市新港大道 8 号",
            "bank_name": "中国银行靖江支行",
        }
        bad = await client.post(
            f"/admin/organizations/{org_id}",
            data={**edit, **tax, "invoice_phone": "0523 84812345", "bank_account": "12"},
        )
        assert bad.status_code == 422 and problems(bad.text) == ["银行账号为 8 至 32 位数字。"]
        assert 'value="中国银行靖江支行"' in bad.text
        tax |= {"invoice_phone": "0523 84812345", "bank_account": "6216 6100 0001 2345"}
        assert (await client.post(f"/admin/organizations/{org_id}", data={**edit, **tax})).status_code == 303
        org = (await client.get(f"/api/v1/organizations/{org_id}")).json()
        assert [org[k] for k in ("taxpayer_type", "invoice_phone", "bank_account")] == [
            "small_scale",
            "0523 84812345",
            "6216610000012345",
        ]
        assert '<option value="small_scale" selected>' in (await client.get(f"/admin/organizations/{org_id}")).text

        member = await make_user(pool, Role.customer, org_id, "member@example.com")
        page = await client.get(f"/admin/organizations/{org_id}")
        assert f"/admin/users/{member}" in page.text and 'data-program="jiangsu-smart-manufacturing"' in page.text
        r = await client.post(f"/admin/organizations/{org_id}", data={"csrf": csrf, "active": "false"})
        assert r.status_code == 303
        assert not (await client.get(f"/api/v1/organizations/{org_id}")).json()["active"]
        assert "重新启用" in (await client.get(f"/admin/organizations/{org_id}")).text
    client.cookies.clear()


async def test_users_create_role_deactivate_and_new_password(db_url, pool):
    clock = Clock(NOW)
    async with serve(db_url, clock=clock) as client:
        org_id = await make_org(pool)
        victim = await make_user(pool, Role.customer, org_id, "li@example.com")
        # the victim's own session, to see the new password end it
        r = await client.post("/api/v1/auth/token", data={"username": "li@example.com", "password": PASSWORD})
        old = {"Authorization": f"Bearer {r.json()['access_token']}"}
        csrf = await log_in(client, pool, Role.admin, "admin@center.example")

        form = {"csrf": csrf, "email": "Zhao@Example.com", "name": "赵工", "role": "technician", "password": "short"}
        r = await client.post("/admin/users", data={**form, "organization_id": str(org_id)})
        assert r.status_code == 422 and problems(r.text) == ["技术员是中心员工，不属于任何单位：请不要选择单位。"]
        r = await client.post("/admin/users", data=form)
        assert r.status_code == 422 and problems(r.text) == ["密码须为 8 至 128 个字符。"]
        r = await client.post("/admin/users", data={**form, "password": "a long enough one"})
        assert r.status_code == 303
        new_id = int(r.headers["location"].split("/")[-1].split("?")[0])
        found = await client.get("/admin/users", params={"q": "zhao"})
        assert 'data-test="no-email"' in found.text  # no FABHUB_SMTP_URL here: the invite form says mail stays unsent
        assert f'data-user="{new_id}"' in found.text and f'data-user="{victim}"' not in found.text
        assert f'data-user="{victim}"' in (await client.get("/admin/users", params={"organization_id": org_id})).text

        change = {"csrf": csrf, "email": "zhao@example.com", "name": "赵工", "role": "finance", "active": "on"}
        assert (await client.post(f"/admin/users/{new_id}", data=change)).status_code == 303
        off = {k: v for k, v in change.items() if k != "active"}  # the box unticked
        assert (await client.post(f"/admin/users/{new_id}", data=off)).status_code == 303
        async with pool.connection() as conn:
            [user] = [u for u in await list_users(conn) if u.id == new_id]
        assert (user.role, user.active, user.email) == (Role.finance, False, "zhao@example.com")

        weak = await client.post(f"/admin/users/{victim}/password", data={"csrf": csrf, "password": " padded  "})
        assert weak.status_code == 422 and problems(weak.text) == ["密码首尾不能有空格。"]
        assert (await client.get("/api/v1/me", headers=old)).status_code == 200
        clock.advance(seconds=5)  # tokens of the second of the change still count
        r = await client.post(f"/admin/users/{victim}/password", data={"csrf": csrf, "password": "new password 1"})
        assert r.status_code == 303
        assert (await client.get("/api/v1/me", headers=old)).status_code == 401
        r = await client.post("/api/v1/auth/token", data={"username": "li@example.com", "password": "new password 1"})
        assert r.status_code == 200
        assert (await client.get("/admin/users/999999")).status_code == 404
    client.cookies.clear()


def csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


async def test_csv_import_shows_bad_rows_imports_nothing_until_fixed(db_url, pool):
    async with serve(db_url, clock=Clock(NOW)) as client:
        code = valid_uscc()
        org_id = await make_org(pool, "常州数控有限公司", code)
        await make_user(pool, Role.customer, org_id, "taken@example.com")
        csrf = await log_in(client, pool, Role.admin, "admin@center.example")
        rows = [
            ["邮箱", "姓名", "角色", "单位", "密码"],
            ["a@example.com", "甲", "客户", code, "password one"],
            ["b@example", "乙", "customer", code, ""],
            ["c@example.com", "丙", "boss", "", ""],
            ["d@example.com", "丁", "customer", "999999", ""],
            ["A@example.com", "戊", "technician", "", ""],
            ["taken@example.com", "己", "customer", str(org_id), ""],
        ]
        upload = {"file": ("users.csv", csv_text(rows).encode("utf-8-sig"), "text/csv")}
        r = await client.post("/admin/import-users", data={"csrf": csrf, "action": "check"}, files=upload)
        assert r.status_code == 422
        preview = {int(n): body for n, body in re.findall(r'<tr data-line="(\d+)"[^>]*>(.*?)</tr>', r.text, re.S)}
        assert 'row-problems">✓</td>' in preview[2]
        assert "“b@example”不是有效的邮箱地址。" in preview[3]
        assert "未知角色“boss”" in preview[4]
        assert "没有信用代码或编号为 999999 的单位。" in preview[5]
        assert "邮箱 a@example.com 在第 2 行也出现了。" in preview[6]
        assert "邮箱 taken@example.com 已被其他账户使用。" in preview[7]
        assert 'data-test="import"' not in r.text and "6 行有问题" not in r.text and "5 行有问题" in r.text

        # Importing anyway (a forged button) is refused, and nothing of the good row is written.
        text = csv_text(rows)
        r = await client.post("/admin/import-users", data={"csrf": csrf, "action": "import", "text": text})
        assert r.status_code == 422 and "6 行中有 5 行有问题，未导入任何内容。" in problems(r.text)
        async with pool.connection() as conn:
            emails = {u.email for u in await list_users(conn)}
        assert "a@example.com" not in emails

        fixed = csv_text(
            [rows[0], rows[1], ["b@example.com", "乙", "customer", code, ""], ["e@example.com", "庚", "财务", "", ""]]
        )
        r = await client.post("/admin/import-users", data={"csrf": csrf, "action": "check", "text": fixed})
        assert r.status_code == 200 and 'data-test="import"' in r.text
        r = await client.post("/admin/import-users", data={"csrf": csrf, "action": "import", "text": fixed})
        assert r.status_code == 200 and "导入完成。" in r.text
        made_up = re.findall(r"<code>([^<]+)</code>", r.text)
        assert made_up[0] == "同文件中" and len(made_up) == 3
        async with pool.connection() as conn:
            imported = {u.email: u for u in await list_users(conn)}
        assert imported["b@example.com"].organization_id == org_id and imported["e@example.com"].role == Role.finance
        login = await client.post("/api/v1/auth/token", data={"username": "b@example.com", "password": made_up[1]})
        assert login.status_code == 200

        empty = await client.post("/admin/import-users", data={"csrf": csrf, "action": "check", "text": "a,b\n"})
        assert empty.status_code == 422 and "第一行须包含列名" in problems(empty.text)[0]
    client.cookies.clear()


async def test_technician_grants_renews_and_revokes_qualifications(db_url, pool):
    async with serve(db_url, clock=Clock(NOW)) as client:
        person = await make_user(pool, Role.customer)
        csrf = await log_in(client, pool, Role.technician, "tech@center.example")
        page = await client.get(f"/admin/users/{person}")
        assert page.status_code == 200 and 'id="edit-user"' not in page.text  # the account is the admins'
        url = f"/admin/users/{person}/qualifications"
        past = await client.post(url, data={"csrf": csrf, "device_class": "cnc", "expires_on": "2027-02-28"})
        assert past.status_code == 422 and problems(past.text) == ["有效期已过，请选择今天或以后的日期。"]
        assert (
            await client.post(url, data={"csrf": csrf, "device_class": "cnc", "expires_on": "2027-06-30"})
        ).status_code == 303
        renew = {"csrf": csrf, "device_class": "cnc", "expires_on": "2028-06-30", "renew": "1"}
        assert (await client.post(url, data=renew)).status_code == 303
        held = (await client.get(f"/api/v1/users/{person}/qualifications")).json()
        assert [(q["device_class"], q["expires_on"]) for q in held] == [("cnc", "2028-06-30")]
        assert "2028-06-30" in (await client.get(f"/admin/users/{person}")).text
        r = await client.post(f"{url}/cnc/revoke", data={"csrf": csrf, "reason": "left the company"})
        assert r.status_code == 303
        assert (await client.get(f"/api/v1/users/{person}/qualifications")).json() == []
        again = await client.post(f"{url}/cnc/revoke", data={"csrf": csrf})
        assert again.status_code == 404 and problems(again.text) == [f"用户 {person} 没有 cnc 的操作资格。"]
        assert (
            await client.post(f"/admin/users/{person}/password", data={"csrf": csrf, "password": "x" * 10})
        ).status_code == 403
    client.cookies.clear()


async def test_hours_closed_days_and_make_up_working_days(db_url, pool):
    async with serve(db_url, clock=Clock(NOW)) as client:
        csrf = await log_in(client, pool, Role.admin, "admin@center.example")
        week = {f"day{d}": "08:00-20:00" for d in range(1, 6)} | {"day6": "09:00-12:00, 13:00-17:00", "day7": ""}
        bad = await client.post("/admin/hours", data={"csrf": csrf, **week, "day2": "08:00-12:00, 11:00-14:00"})
        assert bad.status_code == 422 and problems(bad.text)[0].startswith("周二：请按 08:00-12:00")
        assert "11:00-14:00" in bad.text  # what was typed stays
        partial = await client.post("/admin/hours", data={"csrf": csrf, "day1": "08:00-20:00"})
        assert partial.status_code == 422 and problems(partial.text) == ["表单不完整，请重试。"]
        assert (await client.post("/admin/hours", data={"csrf": csrf, **week})).status_code == 303

        holidays = "2027-10-01..2027-10-07 国庆节\n\n2027-09-15 中秋节"
        r = await client.post("/admin/hours/closed-days", data={"csrf": csrf, "year": "2027", "days": holidays})
        assert r.status_code == 303
        wrong = await client.post(
            "/admin/hours/closed-days", data={"csrf": csrf, "year": "2027", "days": "2028-01-01 元旦"}
        )
        assert wrong.status_code == 422 and problems(wrong.text) == ["第 1 行：日期须在所选年份内，且按先后顺序"]
        # Sunday 26 September 2027 is worked as a Monday.
        sunday = date(2027, 9, 26)
        make_up = {"csrf": csrf, "year": "2027", "days": "2027-09-26 国庆节调休", "as_weekday": "1"}
        assert (await client.post("/admin/hours/working-days", data=make_up)).status_code == 303
        clash = {**make_up, "days": "2027-10-02 国庆节调休"}
        r = await client.post("/admin/hours/working-days", data=clash)
        assert r.status_code == 422 and problems(r.text) == ["2027-10-02 是闭馆日：请先删除。"]
        weekday = {**make_up, "days": "2027-09-24..2027-09-26 国庆节调休"}  # a Friday, a Saturday, a Sunday
        r = await client.post("/admin/hours/working-days", data=weekday)
        assert r.status_code == 422 and problems(r.text) == ["2027-09-24 不是周六或周日：调休上班日只能是周末。"]

        page = await client.get("/admin/hours", params={"year": "2027"})
        assert page.text.count('<li data-day="2027-10-') == 7 and 'data-day="2027-09-26"' in page.text
        async with pool.connection() as conn:
            start = local(0, 0).replace(year=2027, month=9, day=26)
            opened = await hours.open_time(conn, start, start + timedelta(days=7), ZONE)
        days = {s.astimezone(ZONE).date(): (s.astimezone(ZONE).hour, e.astimezone(ZONE).hour) for s, e in opened}
        assert days[sunday] == (8, 20)  # a Monday's hours on a Sunday
        assert date(2027, 10, 1) not in days and days[date(2027, 9, 27)] == (8, 20)

        r = await client.post("/admin/hours/working-days/2027-09-26/delete", data={"csrf": csrf})
        assert r.status_code == 303
        r = await client.post("/admin/hours/working-days/2027-09-26/delete", data={"csrf": csrf})
        assert r.status_code == 404 and problems(r.text) == ["2027-09-26 不是调休上班日。"]
        assert (await client.post("/admin/hours/closed-days/2027-10-01/delete", data={"csrf": csrf})).status_code == 303
        async with pool.connection() as conn:
            closed = await hours.closed_days(conn, date(2027, 1, 1), date(2028, 1, 1))
        assert [c["day"] for c in closed][:2] == [date(2027, 9, 15), date(2027, 10, 2)]
    client.cookies.clear()


async def test_audit_log_filtered_and_exported(db_url, pool):
    clock = Clock(NOW)
    async with serve(db_url, clock=clock) as client:
        csrf = await log_in(client, pool, Role.admin, "admin@center.example")
        person = await make_user(pool, Role.customer)
        grant = {"csrf": csrf, "device_class": "cnc", "expires_on": "2027-12-31"}
        assert (await client.post(f"/admin/users/{person}/qualifications", data=grant)).status_code == 303
        clock.advance(days=3)
        csrf = await session_of(client, "admin@center.example")  # the first session has ended
        assert (
            await client.post(f"/admin/users/{person}/qualifications/cnc/revoke", data={"csrf": csrf, "reason": "=1+1"})
        ).status_code == 303

        page = await client.get("/admin/audit", params={"actor": "ADMIN@center", "entity": "qualification"})
        assert page.text.count("data-entry=") == 2
        day = NOW.date().isoformat()
        page = await client.get("/admin/audit", params={"actor": "admin@", "since": day, "until": day})
        assert page.text.count("data-entry=") == 1 and "grant" in page.text
        nobody = await client.get("/admin/audit", params={"actor": "nobody", "since": "0001-01-01"})
        assert "data-entry=" not in nobody.text
        # The API takes the same filters (the session cookie reads it).
        since = (NOW + timedelta(days=1)).isoformat()
        api = await client.get("/api/v1/audit", params={"actor": "admin@center", "since": since})
        assert [e["action"] for e in api.json()["items"]] == ["revoke"]

        r = await client.get("/admin/audit.csv", params={"entity": "qualification", "entity_id": str(person)})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert r.content.startswith("\ufeff".encode())
        table = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
        assert table[0][:3] == ["时间", "操作人", "操作"]
        assert [row[2] for row in table[1:]] == ["revoke", "grant"]
        assert table[1][5] == "'=1+1"  # a reason that looks like a formula stays text
        assert table[2][0] == "2027-03-01 07:00"
    client.cookies.clear()


async def test_finance_reads_the_audit_log_only(db_url, pool):
    async with serve(db_url, clock=Clock(NOW)) as client:
        await log_in(client, pool, Role.finance, "finance@center.example")
        assert (await client.get("/admin/audit")).status_code == 200
        for path in ("/admin/organizations", "/admin/users", "/admin/hours", "/admin/import-users"):
            assert (await client.get(path)).status_code == 403, path
        nav = (await client.get("/finance")).text
        assert 'href="/admin/audit"' in nav and 'href="/admin/users"' not in nav
    client.cookies.clear()
