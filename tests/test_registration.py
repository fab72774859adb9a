"""A company registers itself over the real app: the form with its business licence, the emailed link, an
admin's approval (its first user then logs in) or refusal with the reason; and what the form refuses."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from accounts.model import Role
from tests.accounts_rig import as_role, login, valid_uscc
from tests.mail_rig import center, notify

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def form(**changes) -> dict[str, str]:
    return {
        "organization_name": "靖江新材料科技有限公司",
        "uscc": valid_uscc(),
        "contact_name": "王工",
        "contact_phone": "0523-8888 1234",
        "contact_email": "wang@xincailiao.example",
        "password": "correct horse battery",
        **changes,
    }


async def register(client, fields: dict, licence: bytes = PDF, name: str = "licence.pdf", **headers):
    files = {"licence": (name, licence, "application/octet-stream")}
    return await client.post("/api/v1/registrations", data=fields, files=files, headers=headers)


def link_in(message) -> str:
    """The confirmation link's path and query (the test's client has the base URL)."""
    url = re.search(r"https?://\S+/register/confirm\?token=[\w-]+", message.get_body(("plain",)).get_content())[0]
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_register_confirm_approve_then_log_in(db_url, pool):
    async with center(db_url, pool) as (app, client, mailbox, _):
        fields = form()
        r = await register(client, fields)
        assert r.status_code == 202, r.text
        submitted = r.json()
        assert (submitted["status"], submitted["licence_type"], submitted["licence_size"]) == (
            "unconfirmed",
            "application/pdf",
            len(PDF),
        )
        assert "password" not in r.text
        await notify(app)
        [mail] = mailbox.to(fields["contact_email"])
        assert mail["Subject"] == f"请确认邮箱以完成 {fields['organization_name']} 的注册"
        admin = await as_role(pool, client, Role.admin)
        r = await client.post(f"/api/v1/registrations/{submitted['id']}/approve", json={}, headers=admin)
        assert r.status_code == 409 and "awaits its email confirmation" in r.json()["detail"]

        page = await client.get(link_in(mail))
        assert page.status_code == 200 and "邮箱已确认" in page.text
        again = await client.get(link_in(mail))
        assert again.status_code == 404 and "确认链接无效" in again.text

        listed = (await client.get("/api/v1/registrations", params={"status": "pending"}, headers=admin)).json()
        assert [x["id"] for x in listed["items"]] == [submitted["id"]]
        licence = await client.get(f"/api/v1/registrations/{submitted['id']}/licence", headers=admin)
        assert licence.content == PDF and licence.headers["content-type"] == "application/pdf"
        assert (
            await client.get("/api/v1/registrations", headers=await as_role(pool, client, Role.finance))
        ).status_code == 403

        r = await client.post(
            f"/api/v1/registrations/{submitted['id']}/approve",
            json={"subsidy_programs": ["jingjiang-sme"]},
            headers=admin,
        )
        assert r.status_code == 200, r.text
        approved = r.json()
        assert approved["status"] == "approved" and approved["organization_id"] and approved["user_id"]
        org = (await client.get(f"/api/v1/organizations/{approved['organization_id']}", headers=admin)).json()
        assert (org["uscc"], org["subsidy_programs"]) == (fields["uscc"], ["jingjiang-sme"])
        me = (
            await client.get("/api/v1/me", headers=await login(client, fields["contact_email"], fields["password"]))
        ).json()
        assert (me["role"], me["organization_id"]) == ("customer", approved["organization_id"])
        await notify(app)
        assert mailbox.to(fields["contact_email"])[-1]["Subject"] == f"{fields['organization_name']} 注册已通过"
        # The same company cannot register twice.
        r = await register(client, form(uscc=fields["uscc"], contact_email="other@xincailiao.example"))
        assert r.status_code == 409


async def test_a_refused_registration_says_why_and_creates_nothing(db_url, pool):
    async with center(db_url, pool) as (app, client, mailbox, _):
        fields = form(contact_email="li@example.com")
        submitted = (await register(client, fields, PNG, "licence.png")).json()
        await notify(app)
        token_link = link_in(mailbox.to("li@example.com")[0])
        assert (await client.get(token_link)).status_code == 200
        admin = await as_role(pool, client, Role.admin)
        r = await client.post(
            f"/api/v1/registrations/{submitted['id']}/refuse", json={"reason": "营业执照已过期"}, headers=admin
        )
        assert r.status_code == 200 and r.json()["status"] == "refused"
        await notify(app)
        refused = mailbox.to("li@example.com")[-1]
        assert (
            refused["Subject"].endswith("注册未通过") and "营业执照已过期" in refused.get_body(("plain",)).get_content()
        )
        r = await client.post("/api/v1/auth/token", data={"username": "li@example.com", "password": fields["password"]})
        assert r.status_code == 401
        r = await client.post(f"/api/v1/registrations/{submitted['id']}/approve", json={}, headers=admin)
        assert r.status_code == 409


async def test_what_the_form_refuses(db_url, pool):
    async with center(db_url, pool) as (_, client, _, _):
        cases = [
            (form(uscc="91350100M000100Y44"), PDF, 422, "check character"),
            (form(contact_email="not-an-email"), PDF, 422, "email"),
            (form(password="short"), PDF, 422, "characters"),
            (form(contact_phone=" "), PDF, 422, "contact phone"),
            (form(), b"MZ\x90\x00 an executable", 422, "PDF, JPG or PNG"),
            (form(), b"", 422, "empty"),
        ]
        for fields, licence, status, reason in cases:
            r = await register(client, fields, licence)
            assert r.status_code == status and reason in r.text, (fields, r.text)
        # Within the route's body limit but past the licence's own (bodies past the limit are 413: test_problems).
        r = await register(client, form(), PDF + b"\x00" * (10 * 1024 * 1024 + 1 - len(PDF)))
        assert r.status_code == 422 and "larger than 10 MB" in r.text
        r = await client.post("/api/v1/registrations/confirm", json={"token": "x" * 43})
        assert r.status_code == 404
        # Each address may start five registrations an hour (the refused ones above never started one).
        for i in range(5):
            assert (await register(client, form(contact_email=f"r{i}@example.com"))).status_code == 202
        r = await register(client, form(contact_email="r5@example.com"))
        assert r.status_code == 429 and r.headers["Retry-After"] == "3600"


async def test_the_registration_page_speaks_chinese_and_keeps_what_was_typed(db_url, pool):
    async with center(db_url, pool) as (_, client, _, _):
        page = await client.get("/register")
        assert page.status_code == 200 and "统一社会信用代码" in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)[1]
        fields = {**form(uscc="91350100M000100Y4"), "csrf": csrf}
        r = await client.post("/register", data=fields, files={"licence": ("l.pdf", PDF, "application/pdf")})
        assert r.status_code == 422
        assert "统一社会信用代码应为 18 位，当前为 17 位。" in r.text and fields["organization_name"] in r.text
        fields["uscc"] = valid_uscc()
        r = await client.post("/register", data=fields, files={"licence": ("l.pdf", PDF, "application/pdf")})
        assert r.status_code == 200 and "我们已向您的邮箱发送确认链接" in r.text
