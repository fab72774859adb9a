"""Rendering a page: Jinja2 with autoescaping, the reader's language and the center's time zone, the
navigation of the reader's role and the CSRF token every form carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from accounts.model import Principal, Role
from fabhub.policy import ROLES
from fabhub.web.i18n import Texts, language
from fabhub.web.session import CSRF_FIELD, LANG_COOKIE, Csrf

HERE = Path(__file__).resolve().parent

# (path, label, roles): each role sees only the pages the policy lets it open.
NAV = [
    (path, label, ROLES[("GET", path)] or frozenset())
    for path, label in (
        ("/board", "Live board"),
        ("/book", "Book a machine"),
        ("/my-bookings", "My bookings"),
        ("/finance", "Finance"),
        ("/management", "Management"),
        ("/admin/organizations", "Organizations"),
        ("/admin/registrations", "Registrations"),
        ("/admin/users", "Users"),
        ("/admin/hours", "Opening hours"),
        ("/admin/audit", "Audit log"),
        ("/admin/api-keys", "API keys"),
        ("/admin/notifications", "Delivery log"),
        ("/admin/webhooks", "Webhooks"),
    )
]


def home_of(role: Role) -> str:
    return next(path for path, _, roles in NAV if role in roles)


@dataclass
class Pages:
    zone: ZoneInfo
    center_name: str
    csrf: Csrf
    program_names: dict[str, str] = field(default_factory=dict)  # subsidy programs as the pages name them
    email: bool = False  # whether notification email goes out (FABHUB_SMTP_URL), for the pages that say so

    def __post_init__(self) -> None:
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["program_name"] = lambda program: self.program_names.get(program, program)
        self.env.globals["email_on"] = self.email

    def texts(self, request: Request) -> Texts:
        return Texts(language(request.cookies.get(LANG_COOKIE)), self.zone)

    def render(
        self, request: Request, template: str, user: Principal | None, status: int = 200, **context: Any
    ) -> HTMLResponse:
        texts = self.texts(request)
        nav = [(path, texts(label)) for path, label, roles in NAV if user is not None and user.role in roles]
        html = self.env.get_template(template).render(
            _=texts,
            t=texts,
            user=user,
            nav=nav,
            here=request.url.path,
            # where the language switch returns to: a page that answered a form has no address to GET again
            back=request.url.path if request.method == "GET" else "/",
            csrf_field=CSRF_FIELD,
            csrf=self.csrf.token(request),
            center=self.center_name,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def not_found(self, request: Request, user: Principal | None) -> HTMLResponse:
        return self.render(request, "error.html", user, status=404, message=self.texts(request)("Not found."))
