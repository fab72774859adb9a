"""Who may call what: every route of the app, API and pages, with the roles it admits. This table is the one
place roles are stated. The routers take their callers through `auth.caller` (API) or `sessions.visitor`
(pages), which look the matched route up here; `public` marks the few routes open to anyone. `create_app`
refuses to start when a route has no line here or a line has no route, and tests/test_authorization.py
reads this table to call every route as every role.

Roles decide whether a route answers at all. What a customer sees inside an answer is narrower: only its
organization's bookings, usage and invoices, and a machine's detailed telemetry (values, program names,
parts, the state timeline) only inside its organization's bookings; see `telemetry.sight`."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from accounts.auth import Policy
from accounts.model import ALL_ROLES, Role

C, T, F, A = Role.customer, Role.technician, Role.finance, Role.admin
EVERYONE = ALL_ROLES
STAFF = frozenset({T, F, A})
BOOKERS = frozenset({C, T, A})
OPERATORS = frozenset({T, A})
FINANCE = frozenset({F, A})
ADMIN = frozenset({A})
CUSTOMERS = frozenset({C})
PUBLIC = None  # no login needed

ROLES: Policy = {
    ("POST", "/api/v1/auth/token"): PUBLIC,
    ("GET", "/api/v1/me"): EVERYONE,
    ("POST", "/api/v1/me/password"): EVERYONE,
    ("GET", "/api/v1/me/notifications"): EVERYONE,
    ("GET", "/register"): PUBLIC,
    ("POST", "/register"): PUBLIC,
    ("GET", "/register/confirm"): PUBLIC,
    ("GET", "/invite/{token}"): PUBLIC,
    ("POST", "/invite/{token}"): PUBLIC,
    ("POST", "/api/v1/registrations"): PUBLIC,
    ("POST", "/api/v1/registrations/confirm"): PUBLIC,
    ("GET", "/api/v1/notifications"): ADMIN,  # the delivery log: addresses and message texts
    ("GET", "/api/v1/notifications/{notification_id}"): ADMIN,
    ("POST", "/api/v1/notifications/{notification_id}/resend"): ADMIN,
    # Webhooks: their secrets sign what systems act on, and deliveries carry every organization's data.
    ("GET", "/api/v1/webhooks"): ADMIN,
    ("POST", "/api/v1/webhooks"): ADMIN,
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): ADMIN,
    ("GET", "/api/v1/registrations"): ADMIN,
    ("GET", "/api/v1/registrations/{registration_id}"): ADMIN,
    ("GET", "/api/v1/registrations/{registration_id}/licence"): ADMIN,
    ("POST", "/api/v1/registrations/{registration_id}/approve"): ADMIN,
    ("POST", "/api/v1/registrations/{registration_id}/refuse"): ADMIN,
    ("POST", "/api/v1/bookings/series/preview"): BOOKERS,
    ("POST", "/api/v1/waiting-list"): BOOKERS,
    ("GET", "/api/v1/waiting-list"): EVERYONE,
    ("DELETE", "/api/v1/waiting-list/{entry_id}"): BOOKERS,
    ("POST", "/api/v1/waiting-list/{entry_id}/accept"): BOOKERS,
    ("POST", "/api/v1/bookings/series"): BOOKERS,
    ("GET", "/api/v1/bookings/series/{series_id}"): EVERYONE,
    ("POST", "/api/v1/bookings/series/{series_id}/cancel"): BOOKERS,
    ("PUT", "/api/v1/me/notifications"): EVERYONE,
    # Organizations: customers see their own (others answer 404); admins manage them.
    ("GET", "/api/v1/organizations"): EVERYONE,
    ("POST", "/api/v1/organizations"): ADMIN,
    ("GET", "/api/v1/organizations/{organization_id}"): EVERYONE,
    ("PATCH", "/api/v1/organizations/{organization_id}"): ADMIN,
    # Users: staff read, admins manage; a customer sees only itself.
    ("GET", "/api/v1/users"): STAFF,
    ("POST", "/api/v1/users"): ADMIN,
    ("GET", "/api/v1/users/{user_id}"): EVERYONE,
    ("PATCH", "/api/v1/users/{user_id}"): ADMIN,
    # Invitations: admins invite by email; the link's token is the invited person's credential.
    ("POST", "/api/v1/invitations"): ADMIN,
    ("POST", "/api/v1/users/{user_id}/invitation"): ADMIN,
    ("POST", "/api/v1/invitations/accept"): PUBLIC,
    # API keys for systems: only admins make, list and revoke them (a key itself is never admin).
    ("POST", "/api/v1/api-keys"): ADMIN,
    ("GET", "/api/v1/api-keys"): ADMIN,
    ("POST", "/api/v1/api-keys/{key_id}/revoke"): ADMIN,
    ("GET", "/api/v1/users/{user_id}/qualifications"): EVERYONE,
    ("PUT", "/api/v1/users/{user_id}/qualifications/{device_class}"): OPERATORS,
    ("DELETE", "/api/v1/users/{user_id}/qualifications/{device_class}"): OPERATORS,
    ("GET", "/api/v1/audit"): FINANCE,
    # Booking: finance reads, customers and floor staff book; customers only for their organization.
    ("GET", "/api/v1/classes"): EVERYONE,
    ("GET", "/api/v1/availability"): EVERYONE,
    ("POST", "/api/v1/quotes"): BOOKERS,
    ("POST", "/api/v1/bookings"): BOOKERS,
    ("GET", "/api/v1/bookings"): EVERYONE,
    ("GET", "/api/v1/bookings/{booking_id}"): EVERYONE,
    ("POST", "/api/v1/bookings/{booking_id}/cancel"): BOOKERS,
    ("POST", "/api/v1/bookings/{booking_id}/change"): BOOKERS,
    ("POST", "/api/v1/bookings/{booking_id}/change/quote"): BOOKERS,
    ("POST", "/api/v1/bookings/{booking_id}/check-in"): OPERATORS,  # the machine's state, else a technician
    ("POST", "/api/v1/bookings/{booking_id}/finish"): BOOKERS,
    # The floor: technicians manage maintenance; admins the center's hours.
    ("GET", "/api/v1/maintenance"): STAFF,
    ("POST", "/api/v1/maintenance"): OPERATORS,
    ("DELETE", "/api/v1/maintenance/{window_id}"): OPERATORS,
    ("GET", "/api/v1/opening-hours"): EVERYONE,
    ("PUT", "/api/v1/opening-hours"): ADMIN,
    ("GET", "/api/v1/closed-days"): EVERYONE,
    ("PUT", "/api/v1/closed-days/{day}"): ADMIN,
    ("DELETE", "/api/v1/closed-days/{day}"): ADMIN,
    ("GET", "/api/v1/working-days"): EVERYONE,
    ("PUT", "/api/v1/working-days/{day}"): ADMIN,
    ("DELETE", "/api/v1/working-days/{day}"): ADMIN,
    ("POST", "/api/v1/calendar/feed"): EVERYONE,
    ("GET", "/api/v1/calendar/{secret}.ics"): PUBLIC,  # the secret in the URL is the credential
    # Machines: every signed-in user sees each machine's current state; a customer sees values, programs,
    # parts and the state timeline only inside its organization's bookings (telemetry.sight), and of the
    # gateway's health only connection and state. Refused samples are the technicians' to read.
    ("GET", "/api/v1/telemetry/latest"): EVERYONE,
    ("GET", "/api/v1/telemetry/devices/{device_id}/signals"): EVERYONE,
    ("GET", "/api/v1/telemetry/devices/{device_id}/signals/{signal}"): EVERYONE,
    ("GET", "/api/v1/telemetry/devices/{device_id}/states"): EVERYONE,
    ("GET", "/api/v1/telemetry/quarantine"): STAFF,
    ("GET", "/api/v1/devices"): EVERYONE,
    ("GET", "/api/v1/devices/{device_id}"): EVERYONE,
    # OEE: a customer gets its own view (its bookings as the planned time), staff every device.
    ("GET", "/api/v1/oee"): EVERYONE,
    ("GET", "/api/v1/utilisation"): EVERYONE,
    ("GET", "/api/v1/oee/bookings/{booking_id}"): EVERYONE,
    ("POST", "/api/v1/oee/bookings/{booking_id}/recompute"): FINANCE,
    # Energy: per machine and day is the center's own; per customer and month a customer sees its own.
    ("GET", "/api/v1/energy/devices"): STAFF,
    ("GET", "/api/v1/energy/customers"): EVERYONE,
    # Machine reports of completed bookings: the booking's organization and staff (another's reads as 404).
    ("GET", "/api/v1/bookings/{booking_id}/report"): EVERYONE,
    ("GET", "/api/v1/bookings/{booking_id}/report.pdf"): EVERYONE,
    ("GET", "/api/v1/bookings/{booking_id}/report.{fmt}"): EVERYONE,
    ("GET", "/api/v1/reports/compare"): EVERYONE,
    ("GET", "/api/v1/reports/compare.{fmt}"): EVERYONE,
    # Down time is the center's own: staff read it, floor staff explain it; anyone may read the codes.
    ("GET", "/api/v1/downtime"): STAFF,
    ("GET", "/api/v1/downtime/codes"): EVERYONE,
    ("PUT", "/api/v1/downtime/{device_id}/{start}"): OPERATORS,
    ("DELETE", "/api/v1/downtime/{device_id}/{start}"): OPERATORS,
    ("GET", "/api/v1/losses/pareto"): STAFF,
    # Billing: finance and admins draft, issue and credit; customers read their own issued invoices and usage.
    ("GET", "/api/v1/invoices"): EVERYONE,
    ("GET", "/api/v1/invoices/{invoice_id}"): EVERYONE,
    ("POST", "/api/v1/invoices/drafts"): FINANCE,
    ("POST", "/api/v1/invoices/{invoice_id}/issue"): FINANCE,
    ("POST", "/api/v1/invoices/{invoice_id}/credit-note"): FINANCE,
    ("PUT", "/api/v1/invoices/{invoice_id}/tax-number"): FINANCE,
    ("GET", "/api/v1/einvoice.xlsx"): FINANCE,  # every customer's invoices
    ("GET", "/api/v1/usage"): EVERYONE,
    ("GET", "/api/v1/invoices/{invoice_id}.pdf"): EVERYONE,
    ("GET", "/api/v1/invoices/{invoice_id}/lines.{fmt}"): EVERYONE,
    ("GET", "/api/v1/usage.{fmt}"): FINANCE,  # every customer's usage
    ("GET", "/api/v1/subsidy-report.{fmt}"): FINANCE,
    # Payments: finance and admins record, reverse and import; a customer reads its own invoices' payments.
    ("POST", "/api/v1/invoices/{invoice_id}/payments"): FINANCE,
    ("GET", "/api/v1/invoices/{invoice_id}/payments"): EVERYONE,
    ("POST", "/api/v1/payments/{payment_id}/reverse"): FINANCE,
    ("GET", "/api/v1/receivables"): FINANCE,
    ("GET", "/api/v1/receivables.csv"): FINANCE,
    ("POST", "/api/v1/bank-statements"): FINANCE,
    ("GET", "/api/v1/bank-statements/{statement_id}"): FINANCE,
    ("POST", "/api/v1/bank-statements/rows/{row_id}/assign"): FINANCE,
    ("POST", "/api/v1/bank-statements/rows/{row_id}/dismiss"): FINANCE,
    # Web pages: the same roles through the session cookie; anonymous visitors are sent to the login form.
    ("GET", "/"): EVERYONE,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): PUBLIC,
    ("POST", "/language"): PUBLIC,
    ("GET", "/board"): OPERATORS,
    ("GET", "/board/tiles"): OPERATORS,
    ("GET", "/board/events"): OPERATORS,
    ("GET", "/book"): BOOKERS,  # every machine's availability, no one else's bookings
    ("POST", "/book/quote"): BOOKERS,
    ("POST", "/book"): BOOKERS,
    ("GET", "/my-bookings"): CUSTOMERS,
    ("POST", "/my-bookings/{booking_id}/cancel"): CUSTOMERS,
    ("POST", "/my-bookings/{booking_id}/finish"): CUSTOMERS,
    ("GET", "/my-bookings/{booking_id}/change"): CUSTOMERS,
    ("POST", "/my-bookings/{booking_id}/change/quote"): CUSTOMERS,
    ("POST", "/my-bookings/{booking_id}/change"): CUSTOMERS,
    ("POST", "/my-bookings/calendar-link"): CUSTOMERS,
    ("POST", "/book/wait"): BOOKERS,
    ("POST", "/my-bookings/waiting/{entry_id}/{action}"): CUSTOMERS,
    ("POST", "/my-bookings/notifications"): CUSTOMERS,
    ("GET", "/bookings/{booking_id}/report"): EVERYONE,  # the booking's organization and staff
    ("GET", "/reports/compare"): EVERYONE,
    ("GET", "/finance"): FINANCE,
    ("POST", "/finance/drafts"): FINANCE,
    ("POST", "/finance/invoices/{invoice_id}/issue"): FINANCE,
    ("POST", "/finance/invoices/{invoice_id}/credit-note"): FINANCE,
    ("POST", "/finance/invoices/{invoice_id}/tax-number"): FINANCE,
    ("GET", "/finance/invoices/{invoice_id}"): FINANCE,
    ("GET", "/finance/receivables"): FINANCE,
    ("POST", "/finance/invoices/{invoice_id}/payments"): FINANCE,
    ("POST", "/finance/issue"): FINANCE,
    ("GET", "/finance/bank-statements"): FINANCE,
    ("POST", "/finance/bank-statements"): FINANCE,
    ("GET", "/finance/bank-statements/{statement_id}"): FINANCE,
    ("POST", "/finance/bank-statements/rows/{row_id}/assign"): FINANCE,
    ("POST", "/finance/bank-statements/rows/{row_id}/dismiss"): FINANCE,
    ("GET", "/management"): FINANCE,
    ("GET", "/management/{chart}.csv"): FINANCE,  # each chart's numbers, the page's own figures
    ("GET", "/machines/{device_id}"): OPERATORS,  # a machine's full telemetry: staff only
    ("POST", "/machines/{device_id}/maintenance"): OPERATORS,
    ("POST", "/machines/{device_id}/downtime"): OPERATORS,
    # Admin pages: admins run accounts, hours and the calendar; technicians find users to qualify them (as over
    # the API); finance reads the audit log.
    ("GET", "/admin/organizations"): ADMIN,
    ("POST", "/admin/organizations"): ADMIN,
    ("GET", "/admin/organizations/{organization_id}"): ADMIN,
    ("POST", "/admin/organizations/{organization_id}"): ADMIN,
    ("GET", "/admin/users"): OPERATORS,
    ("POST", "/admin/users"): ADMIN,
    ("GET", "/admin/users/{user_id}"): OPERATORS,
    ("POST", "/admin/users/{user_id}"): ADMIN,
    ("POST", "/admin/users/{user_id}/password"): ADMIN,
    ("POST", "/admin/users/invite"): ADMIN,
    ("POST", "/admin/users/{user_id}/invite"): ADMIN,
    ("POST", "/admin/users/{user_id}/qualifications"): OPERATORS,
    ("POST", "/admin/users/{user_id}/qualifications/{device_class}/revoke"): OPERATORS,
    ("GET", "/admin/api-keys"): ADMIN,
    ("POST", "/admin/api-keys"): ADMIN,
    ("POST", "/admin/api-keys/{key_id}/revoke"): ADMIN,
    ("GET", "/admin/import-users"): ADMIN,
    ("POST", "/admin/import-users"): ADMIN,
    ("GET", "/admin/hours"): ADMIN,
    ("POST", "/admin/hours"): ADMIN,
    ("POST", "/admin/hours/closed-days"): ADMIN,
    ("POST", "/admin/hours/closed-days/{day}/delete"): ADMIN,
    ("POST", "/admin/hours/working-days"): ADMIN,
    ("POST", "/admin/hours/working-days/{day}/delete"): ADMIN,
    ("GET", "/admin/registrations"): ADMIN,
    ("POST", "/admin/registrations/{registration_id}/approve"): ADMIN,
    ("POST", "/admin/registrations/{registration_id}/refuse"): ADMIN,
    ("GET", "/admin/notifications"): ADMIN,
    ("GET", "/admin/notifications/{notification_id}"): ADMIN,
    ("POST", "/admin/notifications/{notification_id}/resend"): ADMIN,
    ("GET", "/admin/webhooks"): ADMIN,
    ("POST", "/admin/webhooks"): ADMIN,
    ("POST", "/admin/webhooks/{webhook_id}/disable"): ADMIN,
    ("GET", "/admin/audit"): FINANCE,
    ("GET", "/admin/audit.csv"): FINANCE,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    # The API's documentation (fabhub/api_docs.py), public like /openapi.json, which FastAPI serves itself.
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
}


def routes(app: FastAPI) -> Iterator[tuple[tuple[str, str], APIRoute]]:
    """Every (method, path) of the app's API and page routes, with its route."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            # The dependencies look a route up by its own path: a router mounted under an extra prefix would
            # miss its lines.
            assert route.path == context.path, f"mount {route.path} without a prefix of the include"
            for method in route.methods or ():
                yield (method, route.path), route


def check(app: FastAPI, policy: Policy = ROLES) -> None:
    """Every route has its line, or the app does not start (lines of routes an app leaves out, such as the
    gateway's when it runs elsewhere, are fine here; the authorization test wants each line's route)."""
    missing = sorted({key for key, _ in routes(app)} - set(policy))
    if missing:
        names = ", ".join(f"{method} {path}" for method, path in missing)
        raise RuntimeError(f"routes without a line in fabhub/policy.py: {names}")
