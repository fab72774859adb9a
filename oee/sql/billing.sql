-- Billing: what to bill, usage records, invoices and the subsidy ledger.

-- name: lock-invoicing$
-- One invoice run per customer at a time.
SELECT pg_advisory_xact_lock(hashtext('fabhub.invoice'), CAST(mod(:organization_id, 2147483647) AS integer));

-- name: customers-to-bill
-- Customers with billable bookings on no live invoice (draft or issued, not credited), starting before :until.
SELECT DISTINCT b.organization_id
FROM booking_slot b
WHERE lower(b.during) < :until
  AND (b.status IN ('completed', 'no_show') OR (b.status = 'cancelled' AND b.fee > 0))
  AND NOT EXISTS (SELECT 1 FROM invoice_line l JOIN invoice i ON i.id = l.invoice_id
                  WHERE l.booking_id = b.id AND i.kind = 'invoice' AND i.credited_by IS NULL)
ORDER BY 1;

-- name: bookings-to-bill
-- A customer's billable bookings that no live invoice (draft or issued, not credited) holds, oldest first
-- (subsidies are granted in date order); earlier months' stragglers included, so none is forgotten.
-- Finished ones only: a booking still under way waits for the next run.
SELECT b.id, b.device_id, d.name AS device_name, d.class_id, lower(b.during) AS start, upper(b.during) AS "end",
       b.status, b.hourly_rate, b.gross, b.subsidy_program, b.subsidy_share, b.fee, b.late_cancellation,
       b.reference, b.booked_end, dc.billing_basis, dc.metered_minimum_share
FROM booking_slot b
JOIN device_entry d ON d.id = b.device_id
JOIN device_class_entry dc ON dc.id = d.class_id
WHERE b.organization_id = :organization_id AND lower(b.during) < :until
  AND (b.status IN ('completed', 'no_show') OR (b.status = 'cancelled' AND b.fee > 0))
  AND NOT EXISTS (SELECT 1 FROM invoice_line l JOIN invoice i ON i.id = l.invoice_id
                  WHERE l.booking_id = b.id AND i.kind = 'invoice' AND i.credited_by IS NULL)
ORDER BY lower(b.during), b.id;

-- name: live-invoice^
SELECT id, status FROM invoice
WHERE organization_id = :organization_id AND month = :month AND kind = 'invoice' AND credited_by IS NULL;

-- name: delete-draft!
DELETE FROM invoice WHERE id = :id AND status = 'draft';

-- name: insert-invoice$
INSERT INTO invoice (kind, organization_id, month, vat_rate, credits, reason, created_at)
VALUES (:kind, :organization_id, :month, :vat_rate, :credits, :reason, :now)
RETURNING id;

-- name: insert-line$
INSERT INTO invoice_line (invoice_id, position, booking_id, kind, description, quantity, unit, unit_price, amount,
                          subsidy_program)
VALUES (:invoice_id, :position, :booking_id, :kind, :description, :quantity, :unit, :unit_price, :amount,
        :subsidy_program)
RETURNING id;

-- name: set-totals!
UPDATE invoice SET total = :total, vat = :vat WHERE id = :id;

-- name: overrun^
-- How long the machine ran on past the booked end :end, and from when that is known (settles_at). The run
-- lasts until the device's first change to another state, but never past :stop: the start of the device's
-- next booking or maintenance window (what it does from then on belongs to that booking) or a day after the
-- end, whichever comes first (oee.results computes :stop); and while it still runs, never past :now. Not
-- running at the end: no overrun, known at the end.
WITH at_end AS (
    SELECT state FROM state_change WHERE device_id = :device_id AND time <= :end ORDER BY time DESC LIMIT 1
), stopped AS (
    SELECT min(time) AS at FROM state_change
    WHERE device_id = :device_id AND time > :end AND time < :stop AND state <> 'running'
), run AS (
    SELECT coalesce((SELECT state FROM at_end) = 'running', false) AS running,
           coalesce((SELECT at FROM stopped), CAST(:stop AS timestamptz)) AS until
)
SELECT CASE WHEN running
            THEN greatest(0, extract(epoch FROM least(until, CAST(:now AS timestamptz)) - CAST(:end AS timestamptz)))
            ELSE 0 END::double precision AS seconds,
       CASE WHEN running THEN until ELSE CAST(:end AS timestamptz) END AS settles_at
FROM run;

-- name: store-usage!
INSERT INTO usage_record (booking_id, booked_s, running_s, setup_s, overrun_s, offline_s, parts_total, parts_good,
                          energy_kwh, idle_energy_kwh, carbon_factor, carbon_source, carbon_year, computed_at)
VALUES (:booking_id, :booked_s, :running_s, :setup_s, :overrun_s, :offline_s, :parts_total, :parts_good, :energy_kwh,
        :idle_energy_kwh, :carbon_factor, :carbon_source, :carbon_year, :now)
ON CONFLICT (booking_id) DO UPDATE SET
    booked_s = EXCLUDED.booked_s, running_s = EXCLUDED.running_s, setup_s = EXCLUDED.setup_s,
    overrun_s = EXCLUDED.overrun_s, offline_s = EXCLUDED.offline_s, parts_total = EXCLUDED.parts_total,
    parts_good = EXCLUDED.parts_good, energy_kwh = EXCLUDED.energy_kwh, idle_energy_kwh = EXCLUDED.idle_energy_kwh,
    carbon_factor = EXCLUDED.carbon_factor, carbon_source = EXCLUDED.carbon_source,
    carbon_year = EXCLUDED.carbon_year, computed_at = EXCLUDED.computed_at;

-- name: ensure-subsidy-cap!
INSERT INTO subsidy_cap (organization_id, program_id, year) VALUES (:organization_id, :program_id, :year)
ON CONFLICT DO NOTHING;

-- name: subsidy-used$
SELECT coalesce(sum(l.amount), 0) FROM subsidy_ledger l
WHERE l.organization_id = :organization_id AND l.program_id = :program_id AND l.year = :year;

-- name: cap-row-lock$
-- Locked while the ledger's sum is read and added to: one invoice run at a time takes from a cap.
SELECT 1 FROM subsidy_cap WHERE organization_id = :organization_id AND program_id = :program_id AND year = :year
FOR UPDATE;

-- name: record-subsidy!
INSERT INTO subsidy_ledger (organization_id, program_id, year, invoice_line_id, booking_id, amount, at)
VALUES (:organization_id, :program_id, :year, :invoice_line_id, :booking_id, :amount, :now);

-- name: subsidy-use-of-year
SELECT p.id, p.name, p.share, p.annual_cap, coalesce(sum(l.amount), 0) AS used,
       p.annual_cap - coalesce(sum(l.amount), 0) AS remaining
FROM subsidy_program_entry p
LEFT JOIN subsidy_ledger l ON l.program_id = p.id AND l.organization_id = :organization_id AND l.year = :year
WHERE p.id = ANY(CAST(:programs AS text[])) OR l.id IS NOT NULL
GROUP BY p.id, p.name, p.share, p.annual_cap
ORDER BY p.id;

-- name: program-cap^
SELECT annual_cap, name FROM subsidy_program_entry WHERE id = :id;

-- name: next-invoice-number$
INSERT INTO invoice_number (year, last) VALUES (:year, 1)
ON CONFLICT (year) DO UPDATE SET last = invoice_number.last + 1
RETURNING last;

-- name: lock-invoice^
SELECT id, kind, organization_id, month, status, number, total, vat, vat_rate, credited_by
FROM invoice WHERE id = :id FOR UPDATE;

-- name: issue-invoice!
UPDATE invoice SET status = 'issued', number = :number, issued_at = :now, issued_by = :by WHERE id = :id;

-- name: mark-credited!
UPDATE invoice SET credited_by = :credit_note WHERE id = :id;

-- name: invoice-lines
SELECT l.id, l.position, l.booking_id, l.kind, l.description, l.quantity, l.unit, l.unit_price, l.amount,
       l.subsidy_program, b.reference
FROM invoice_line l LEFT JOIN booking_slot b ON b.id = l.booking_id
WHERE l.invoice_id = :invoice_id ORDER BY l.position;

-- name: ledger-of-invoice
SELECT s.organization_id, s.program_id, s.year, s.invoice_line_id, s.booking_id, s.amount
FROM subsidy_ledger s JOIN invoice_line l ON l.id = s.invoice_line_id
WHERE l.invoice_id = :invoice_id;

-- name: invoices
SELECT i.id, i.kind, i.organization_id, o.name AS organization_name, i.month, i.status, i.number, i.total, i.vat,
       i.vat_rate, i.credits, i.credited_by, i.reason, i.created_at, i.issued_at, i.updated_at, t.number AS tax_number,
       (SELECT coalesce(sum(p.amount), 0) FROM payment p WHERE p.invoice_id = i.id AND p.reversed_at IS NULL) AS paid
FROM invoice i JOIN org_profile o ON o.id = i.organization_id
LEFT JOIN invoice_tax_number t ON t.invoice_id = i.id
WHERE (CAST(:month AS date) IS NULL OR i.month = :month)
  AND (CAST(:organization_id AS bigint) IS NULL OR i.organization_id = :organization_id)
  AND (CAST(:status AS text) IS NULL OR i.status = :status)
  AND (CAST(:id AS bigint) IS NULL OR i.id = :id)
ORDER BY i.month DESC, o.name, i.id;

-- name: usage-of-month
SELECT b.id AS booking_id, b.organization_id, o.name AS organization_name, b.device_id, lower(b.during) AS start,
       upper(b.during) AS "end", b.status, u.booked_s, u.running_s, u.setup_s, u.overrun_s, u.offline_s,
       u.parts_total, u.parts_good, u.energy_kwh, u.idle_energy_kwh,
       round(CAST(u.energy_kwh AS numeric) * u.carbon_factor, 2) AS co2_kg, u.carbon_factor, u.carbon_source,
       u.carbon_year, u.computed_at, u.updated_at, b.reference
FROM booking_slot b
JOIN org_profile o ON o.id = b.organization_id
JOIN usage_record u ON u.booking_id = b.id
WHERE lower(b.during) >= :start AND lower(b.during) < :end
  AND (CAST(:organization_id AS bigint) IS NULL OR b.organization_id = :organization_id)
ORDER BY lower(b.during), b.id;

-- name: month-drafted$
SELECT EXISTS (SELECT 1 FROM invoice_run WHERE month = :month);

-- name: record-run!
INSERT INTO invoice_run (month, at, invoices) VALUES (:month, :at, :invoices)
ON CONFLICT (month) DO UPDATE SET at = EXCLUDED.at, invoices = EXCLUDED.invoices;
