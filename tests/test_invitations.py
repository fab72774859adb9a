"""Inviting people by email over the real app and a real mailbox: an admin invites (API or admin page), the
email arrives once with the link, the person chooses a password on the linked page and is logged in; the link
works once, a new invitation replaces it, it expires after 7 days, and an unknown one gets a clear page in
Chinese (English on the switch). Who may invite, and what an invitation refuses."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from accounts.model import Role
from tests.accounts_rig import PASSWORD, as_role, login, make_org, make_user
from tests.mail_rig import center, notify

NEW_PASSWORD = "a fresh long password"


def link_in(message) -> str:
    """The invitation link's path (the test's client has the base URL)."""
    url = re.search(r"https?://\S+/invite/[\w-]+", message.get_body(("plain",)).get_content())[0]
    return urlsplit(url).path


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page)[1]


async def choose(client, link: str, password: str, repeat: str | None = None):
    """The invited person's browser: opens the link and sends the form."""
    page = await client.get(link)
    form = {"csrf": csrf_of(page.text), "password": password, "repeat": password if repeat is None else repeat}
    return await client.post(link, data=form)


async def audit_actions(client, headers, user_id: int) -> list[str]:
    r = await client.get("/api/v1/audit", params={"entity": "user", "entity_id": str(user_id)}, headers=headers)
    return [e["action"] for e in reversed(r.json()["items"])]


async def test_invite_by_api_then_choose_a_password_and_log_in(db_url, pool):
    async with center(db_url, pool) as (app, client, mailbox, _):
        admin = await as_role(pool, client, Role.admin)
        org = await make_org(pool)
        body = {"email": "Zhao@Example.com", "name": "赵工", "role": "customer", "organization_id": org}
        r = await client.post("/api/v1/invitations", json=body, headers=admin)
        assert r.status_code == 201, r.text
        invited = r.json()
        user_id = invited["user"]["id"]
        assert invited["user"]["email"] == "zhao@example.com" and invited["expires_at"].endswith("+08:00")
        # No password is usable before the person chooses one.
        for guess in ("", "fabhub: no such account", PASSWORD):
            r = await client.post("/api/v1/auth/token", data={"username": "zhao@example.com", "password": guess})
            assert r.status_code in (401, 422)

        await notify(app)
        await notify(app)
        [mail] = mailbox.to("zhao@example.com")  # once, however often the jobs run
        text = mail.get_body(("plain",)).get_content()
        assert mail["Subject"].startswith("邀请您加入") and "赵工，您好" in text and "仅可使用一次" in text
        link = link_in(mail)

        client.cookies.clear()
        page = await client.get(link)
        assert page.status_code == 200 and "zhao@example.com" in page.text and "设置密码" in page.text
        differ = await choose(client, link, NEW_PASSWORD, "another long password")
        assert differ.status_code == 422 and "两次输入的密码不一致。" in differ.text
        weak = await choose(client, link, "short")
        assert weak.status_code == 422 and "密码须为 8 至 128 个字符。" in weak.text
        done = await choose(client, link, NEW_PASSWORD)
        assert done.status_code == 303 and done.headers["location"] == "/book"
        me = await client.get("/api/v1/me")  # the page logged the person in
        assert me.status_code == 200 and me.json()["id"] == user_id
        assert (await client.get("/api/v1/me", headers=await login(client, "zhao@example.com", NEW_PASSWORD))).json()[
            "organization_id"
        ] == org

        client.cookies.clear()
        again = await client.get(link)
        assert again.status_code == 404 and "邀请链接无效" in again.text
        reused = await choose(client, link, "yet another password")
        assert reused.status_code == 404 and "邀请链接无效" in reused.text
        await login(client, "zhao@example.com", NEW_PASSWORD)  # the reuse changed nothing
        await notify(app)
        assert len(mailbox.to("zhao@example.com")) == 1
        assert await audit_actions(client, admin, user_id) == ["create", "invite", "password", "accept_invitation"]


async def test_a_new_invitation_replaces_the_old_link_and_links_expire(db_url, pool):
    async with center(db_url, pool) as (app, client, mailbox, clock):
        await make_user(pool, Role.admin, email="admin@center.example")
        admin = await login(client, "admin@center.example")
        body = {"email": "tech@example.com", "name": "Li Wei", "role": "technician", "language": "en"}
        user_id = (await client.post("/api/v1/invitations", json=body, headers=admin)).json()["user"]["id"]
        r = await client.post(f"/api/v1/users/{user_id}/invitation", headers=admin)
        assert r.status_code == 200, r.text
        await notify(app)
        first, second = mailbox.to("tech@example.com")
        assert (
            second["Subject"].startswith("You are invited to")
            and "Hello Li Wei" in second.get_body(("plain",)).get_content()
        )
        assert (await client.get(link_in(first))).status_code == 404  # replaced
        assert (await client.get(link_in(second))).status_code == 200

        clock.advance(days=7, seconds=1)
        client.cookies.set("fabhub_lang", "en")
        expired = await client.get(link_in(second))
        assert expired.status_code == 404 and "this invitation link is not valid" in expired.text
        client.cookies.clear()
        page = await client.get(link_in(second))
        assert page.status_code == 404 and "已超过 7 天" in page.text

        # Invited again after the expiry, in the last invitation's language; accepted over the API this time.
        admin = await login(client, "admin@center.example")  # the earlier token has expired too
        assert (await client.post(f"/api/v1/users/{user_id}/invitation", headers=admin)).status_code == 200
        await notify(app)
        third = mailbox.to("tech@example.com")[-1]
        assert third["Subject"].startswith("You are invited to")
        token = link_in(third).rsplit("/", 1)[1]
        r = await client.post("/api/v1/invitations/accept", json={"token": token, "password": "short"})
        assert r.status_code == 422 and "a password has 8 to 128 characters" in r.json()["detail"]
        r = await client.post("/api/v1/invitations/accept", json={"token": token, "password": NEW_PASSWORD})
        assert r.status_code == 204
        r = await client.post("/api/v1/invitations/accept", json={"token": token, "password": NEW_PASSWORD})
        assert r.status_code == 404 and "not valid" in r.json()["detail"]
        await login(client, "tech@example.com", NEW_PASSWORD)
        r = await client.post(f"/api/v1/users/{user_id}/invitation", headers=admin)
        assert r.status_code == 409 and "has a password already" in r.json()["detail"]


async def test_unknown_links_get_a_page_not_an_error(db_url, pool):
    async with center(db_url, pool) as (_, client, _, _):
        for link in ("/invite/" + "x" * 43, "/invite/short", "/invite/" + "y" * 300, "/invite/%00%0A"):
            page = await client.get(link)
            assert page.status_code == 404 and "邀请链接无效" in page.text, link
            r = await client.post(link, data={"csrf": csrf_of(page.text), "password": NEW_PASSWORD, "repeat": ""})
            assert r.status_code == 404 and "邀请链接无效" in r.text, link
        r = await client.post("/api/v1/invitations/accept", json={"token": "x" * 43, "password": NEW_PASSWORD})
        assert r.status_code == 404
        r = await client.post("/api/v1/invitations/accept", json={"token": "not a token", "password": NEW_PASSWORD})
        assert r.status_code == 422


async def test_who_may_invite_and_what_an_invitation_refuses(db_url, pool):
    async with center(db_url, pool) as (app, client, mailbox, _):
        org = await make_org(pool)
        good = {"email": "new@example.com", "name": "新人", "role": "customer", "organization_id": org}
        for role in (Role.technician, Role.finance, Role.customer):
            r = await client.post("/api/v1/invitations", json=good, headers=await as_role(pool, client, role))
            assert r.status_code == 403, role
        assert (await client.post("/api/v1/invitations", json=good)).status_code == 401
        admin = await as_role(pool, client, Role.admin)
        taken = await make_user(pool, Role.finance, email="taken@example.com")
        cases = [
            ({**good, "email": "not-an-email"}, 422, "is not an email address"),
            ({**good, "organization_id": None}, 422, "a customer belongs to an organization"),
            ({**good, "role": "finance"}, 422, "belongs to no organization"),
            ({**good, "role": "boss"}, 422, "role"),
            ({**good, "organization_id": 9_000_000}, 422, "does not exist"),
            ({**good, "name": " "}, 422, "a user's name has 1 to 200 characters"),
            ({**good, "language": "fr"}, 422, "language"),
            ({**good, "password": "chosen by the admin"}, 422, "password"),
            ({**good, "email": "TAKEN@example.com", "role": "finance", "organization_id": None}, 409, "in use"),
        ]
        for body, status, reason in cases:
            r = await client.post("/api/v1/invitations", json=body, headers=admin)
            assert r.status_code == status and reason in r.text, (body, r.status_code, r.text)
        r = await client.post(f"/api/v1/users/{taken}/invitation", headers=admin)
        assert r.status_code == 409
        assert (await client.post("/api/v1/users/9000000/invitation", headers=admin)).status_code == 404
        await notify(app)
        assert mailbox.messages == []  # nothing refused was sent


async def test_invite_and_invite_again_on_the_admin_page(db_url, pool):
    async with center(db_url, pool) as (app, client, mailbox, _):
        await make_user(pool, Role.admin, email="admin@center.example")
        page = await client.get("/login")
        r = await client.post(
            "/login", data={"csrf": csrf_of(page.text), "email": "admin@center.example", "password": PASSWORD}
        )
        assert r.status_code == 303
        users_page = (await client.get("/admin/users")).text
        assert 'data-test="no-email"' not in users_page  # this center sends email
        csrf = csrf_of(users_page)
        form = {"csrf": csrf, "email": "wu@example.com", "name": "吴工", "role": "technician", "language": "zh-CN"}
        bad = await client.post("/admin/users/invite", data={**form, "organization_id": str(await make_org(pool))})
        assert bad.status_code == 422
        assert bad.text.index('class="problems"') > bad.text.index('id="invite-user"') and "吴工" in bad.text
        assert "技术员是中心员工，不属于任何单位" in bad.text
        r = await client.post("/admin/users/invite", data=form)
        assert r.status_code == 303 and r.headers["location"].endswith("?invited=1")
        person = await client.get(r.headers["location"])
        assert (
            "邀请邮件正在发送。" in person.text
            and "尚未设置密码。" in person.text
            and "邀请链接有效期至" in person.text
        )
        user_id = int(r.headers["location"].split("/")[-1].split("?")[0])
        assert (await client.post(f"/admin/users/{user_id}/invite", data={"csrf": csrf})).status_code == 303
        await notify(app)
        old, new = mailbox.to("wu@example.com")
        assert link_in(old) != link_in(new)
        admin_cookies = dict(client.cookies)

        client.cookies.clear()
        assert (await choose(client, link_in(new), NEW_PASSWORD)).headers["location"] == "/board"
        client.cookies.clear()
        client.cookies.update(admin_cookies)
        person = await client.get(f"/admin/users/{user_id}")
        assert "尚未设置密码" not in person.text
        r = await client.post(f"/admin/users/{user_id}/invite", data={"csrf": csrf})
        assert r.status_code == 409 and f"用户 {user_id} 已设置密码" in r.text
        client.cookies.clear()
