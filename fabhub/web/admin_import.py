"""Importing users from a CSV file: upload, a preview with each row's problems, then the import, which
accounts.imports does all or nothing. The preview carries the file's text in an editable field, so a bad row
can be fixed in place and checked again; nothing is stored between the steps, and the import checks every
row again before it writes."""

import csv
import io
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from psycopg_pool import AsyncConnectionPool
from starlette.datastructures import UploadFile

from accounts.imports import MAX_ROWS, ImportRow, check_rows, import_users
from accounts.model import Principal
from common.errors import DomainError
from fabhub.web.i18n import Texts
from fabhub.web.render import Pages
from fabhub.web.session import WebSessions, field

# Column names as English or Chinese headers write them.
COLUMNS = {
    "email": "email",
    "邮箱": "email",
    "name": "name",
    "姓名": "name",
    "role": "role",
    "角色": "role",
    "organization": "organization",
    "单位": "organization",
    "统一社会信用代码": "organization",
    "password": "password",
    "密码": "password",
}
ROLES_ZH = {"客户": "customer", "技术员": "technician", "财务": "finance", "管理员": "admin"}
REQUIRED = ("email", "name", "role")
HEADER_RULE = "The first line must name the columns email, name and role; organization and password may follow."


class BadFile(Exception):
    """The file as a whole cannot be read as rows: the reason, in the reader's language."""


def decode(data: bytes) -> str:
    """UTF-8 (with or without the byte order mark Excel writes), else GB 18030, which Chinese Excel saves."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("gb18030", errors="replace")


def parse(text: str, texts: Texts) -> list[ImportRow]:
    """The rows of a CSV file whose first line names the columns; line numbers are the file's."""
    reader = csv.reader(io.StringIO(text.replace("\x00", "")))
    header = next(reader, None)
    if header is None:
        raise BadFile(texts("The file is empty."))
    names = [COLUMNS.get(h.strip().lower(), "") for h in header]
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise BadFile(texts(HEADER_RULE))
    rows = []
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        values = {name: cell for name, cell in zip(names, cells, strict=False) if name}
        role = values.get("role", "").strip()
        rows.append(
            ImportRow(
                line=reader.line_num,
                email=values.get("email", ""),
                name=values.get("name", ""),
                role=ROLES_ZH.get(role, role),
                organization=values.get("organization", ""),
                password=values.get("password", ""),
            )
        )
    return rows


def make_router(pages: Pages, sessions: WebSessions, pool: AsyncConnectionPool, clock: Any) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    Visitor = Annotated[Principal, Depends(sessions.visitor)]  # roles: fabhub/policy.py

    def page(request: Request, user: Principal, status: int = 200, **extra: Any) -> HTMLResponse:
        return pages.render(request, "admin_import.html", user, status=status, max_rows=MAX_ROWS, **extra)

    def row_problems(texts: Texts, checked: list[Any]) -> list[dict[str, Any]]:
        return [{"checked": c, "problems": [texts.error(p) for p in c.problems]} for c in checked]

    @router.get("/admin/import-users")
    async def import_form(request: Request, user: Visitor) -> HTMLResponse:
        return page(request, user)

    @router.post("/admin/import-users")
    async def check_or_import(request: Request, user: Visitor) -> HTMLResponse:
        """`action=check` shows the preview; `action=import` imports, or shows the preview again if a row has
        a problem."""
        form = await sessions.csrf.checked_form(request)
        texts = pages.texts(request)
        upload = form.get("file")
        if isinstance(upload, UploadFile) and upload.filename:
            text = decode(await upload.read())
        else:
            text = str(form.get("text", ""))
        try:
            rows = parse(text, texts)
            async with pool.connection() as conn:
                if field(form, "action") == "import":
                    created = await import_users(conn, rows, at=clock(), actor=user)
                    return page(request, user, created=created, notice=texts("Imported."))
                checked = await check_rows(conn, rows)
        except BadFile as exc:
            return page(request, user, status=422, text=text, problems=[str(exc)], problem_form="upload")
        except DomainError as exc:
            checked = exc.extra.get("rows", [])
            problems = [texts.error(exc.detail)]
            preview = row_problems(texts, checked)
            return page(
                request, user, status=exc.status, text=text, preview=preview, problems=problems, problem_form="upload"
            )
        preview = row_problems(texts, checked)
        bad = sum(1 for p in preview if p["problems"])
        return page(request, user, status=422 if bad else 200, text=text, preview=preview, bad=bad)

    return router
