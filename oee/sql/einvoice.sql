-- The e-invoice hand-off: issued documents' lines for the tax platform's batch-issue sheet, and the platform's
-- invoice numbers recorded back. Names start with `einvoice-`/`tax-number` so they never collide.

-- name: einvoice-lines
-- Every line of the month's issued invoices and credit notes, by document number and position. A credit
-- line takes the kind of the line it reverses (same position on the original), so it gets the same item;
-- `original_number` is the tax platform's number of the cancelled invoice, else its FabHub number.
SELECT i.id AS invoice_id, i.kind AS document_kind, i.number, i.vat_rate, i.vat, o.name AS buyer, o.uscc,
       o.invoice_address, o.invoice_phone, o.bank_name, o.bank_account,
       coalesce(ol.kind, l.kind) AS kind, l.position, l.description, l.quantity, l.unit, l.unit_price, l.amount,
       d.class_id, c.number AS original_fabhub_number, ct.number AS original_tax_number
FROM invoice i
JOIN org_profile o ON o.id = i.organization_id
JOIN invoice_line l ON l.invoice_id = i.id
LEFT JOIN invoice_line ol ON ol.invoice_id = i.credits AND ol.position = l.position
LEFT JOIN booking_slot b ON b.id = l.booking_id
LEFT JOIN device_entry d ON d.id = b.device_id
LEFT JOIN invoice c ON c.id = i.credits
LEFT JOIN invoice_tax_number ct ON ct.invoice_id = i.credits
WHERE i.month = :month AND i.status = 'issued'
ORDER BY i.number, l.position;

-- name: tax-number-of^
SELECT number, recorded_at, recorded_by FROM invoice_tax_number WHERE invoice_id = :invoice_id;

-- name: put-tax-number!
INSERT INTO invoice_tax_number (invoice_id, number, recorded_at, recorded_by)
VALUES (:invoice_id, :number, :at, :by)
ON CONFLICT (invoice_id) DO UPDATE SET number = excluded.number, recorded_at = excluded.recorded_at,
                                       recorded_by = excluded.recorded_by;
