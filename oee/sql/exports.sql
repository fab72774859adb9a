-- Exports: invoice lines, the month's usage and the subsidy report. Read-only; money stays numeric (Decimal
-- in Python) all the way to the file. Names start with `export-` so they never collide with other files'.

-- name: export-invoice^
-- An invoice (or credit note) with its customer and, for a credit note, the number of the invoice it cancels.
SELECT i.id, i.kind, i.status, i.number, i.month, i.vat_rate, i.total, i.vat, i.reason, i.created_at, i.issued_at,
       o.name AS customer, o.uscc, o.contact_name, o.contact_phone, o.contact_email, o.taxpayer_type,
       o.invoice_address, o.invoice_phone, o.bank_name, o.bank_account,
       c.number AS credits_number, cb.number AS credited_by_number, t.number AS tax_number
FROM invoice i
JOIN org_profile o ON o.id = i.organization_id
LEFT JOIN invoice_tax_number t ON t.invoice_id = i.id
LEFT JOIN invoice c ON c.id = i.credits
LEFT JOIN invoice cb ON cb.id = i.credited_by
WHERE i.id = :id;

-- name: export-usage
-- Usage records of the bookings that start in the month (the center's calendar), oldest first. Hours are
-- rounded in numeric (never float) to the hundredth; parts to whole parts.
SELECT b.id AS booking_id, o.name AS organization, o.uscc, d.id AS device_id, d.name AS device, d.class_id,
       b.status, lower(b.during) AS start, upper(b.during) AS "end", b.reference,
       round(CAST(u.booked_s AS numeric) / 3600, 2) AS booked_h,
       round(CAST(u.running_s AS numeric) / 3600, 2) AS running_h,
       round(CAST(u.setup_s AS numeric) / 3600, 2) AS setup_h,
       round(CAST(u.overrun_s AS numeric) / 3600, 2) AS overrun_h,
       round(CAST(u.offline_s AS numeric) / 3600, 2) AS offline_h,
       CAST(round(CAST(u.parts_total AS numeric)) AS bigint) AS parts_total,
       CAST(round(CAST(u.parts_good AS numeric)) AS bigint) AS parts_good,
       round(CAST(u.energy_kwh AS numeric), 3) AS energy_kwh,
       round(CAST(u.idle_energy_kwh AS numeric), 3) AS idle_energy_kwh,
       round(CAST(u.energy_kwh AS numeric) * u.carbon_factor, 2) AS co2_kg, u.carbon_factor
FROM usage_record u
JOIN booking_slot b ON b.id = u.booking_id
JOIN device_entry d ON d.id = b.device_id
JOIN org_profile o ON o.id = b.organization_id
WHERE lower(b.during) >= :since AND lower(b.during) < :until
ORDER BY lower(b.during), b.id;

-- name: export-program^
SELECT id, name, share, annual_cap FROM subsidy_program_entry WHERE id = :id;

-- name: export-subsidy-report
-- Per customer, for one program and one invoice month: the bookings quoted under the program that are on the
-- customer's live issued invoice of the month (its usage lines are their market value), the subsidy granted
-- from the ledger over the month's issued invoices and credit notes (so a credited invoice nets to nothing),
-- and the cap used in the calendar year up to and including the month (issued documents only).
WITH live AS (
    SELECT i.organization_id, l.booking_id, l.amount
    FROM invoice i
    JOIN invoice_line l ON l.invoice_id = i.id
    JOIN booking_slot b ON b.id = l.booking_id
    WHERE i.kind = 'invoice' AND i.status = 'issued' AND i.credited_by IS NULL AND i.month = :month
      AND l.kind = 'usage' AND b.subsidy_program = :program_id
), market AS (
    SELECT organization_id, count(DISTINCT booking_id) AS bookings, sum(amount) AS market_value
    FROM live GROUP BY organization_id
), granted AS (
    SELECT s.organization_id, sum(s.amount) AS granted
    FROM subsidy_ledger s
    JOIN invoice_line l ON l.id = s.invoice_line_id
    JOIN invoice i ON i.id = l.invoice_id
    WHERE s.program_id = :program_id AND i.status = 'issued' AND i.month = :month
    GROUP BY s.organization_id
), used AS (
    SELECT s.organization_id, sum(s.amount) AS used
    FROM subsidy_ledger s
    JOIN invoice_line l ON l.id = s.invoice_line_id
    JOIN invoice i ON i.id = l.invoice_id
    WHERE s.program_id = :program_id AND s.year = :year AND i.status = 'issued' AND i.month <= :month
    GROUP BY s.organization_id
)
SELECT o.id AS organization_id, o.name AS customer, o.uscc,
       coalesce(m.bookings, 0) AS bookings,
       coalesce(m.market_value, 0) AS market_value,
       coalesce(g.granted, 0) AS granted,
       coalesce(u.used, 0) AS cap_used
FROM org_profile o
LEFT JOIN market m ON m.organization_id = o.id
LEFT JOIN granted g ON g.organization_id = o.id
LEFT JOIN used u ON u.organization_id = o.id
WHERE m.organization_id IS NOT NULL OR g.organization_id IS NOT NULL
ORDER BY o.name, o.id;
