-- name: paid-of-invoice$
-- What the invoice's payments that stand (not reversed) add up to.
SELECT coalesce(sum(amount), 0) FROM payment WHERE invoice_id = :invoice_id AND reversed_at IS NULL;

-- name: insert-payment$
INSERT INTO payment (invoice_id, amount, paid_on, method, reference, recorded_by, recorded_at)
VALUES (:invoice_id, :amount, :paid_on, :method, :reference, :by, :now)
RETURNING id;

-- name: payments-of-invoice
SELECT id, invoice_id, amount, paid_on, method, reference, recorded_by, recorded_at, reversed_at, reversed_by,
       reversal_reason, updated_at
FROM payment WHERE invoice_id = :invoice_id
ORDER BY paid_on, id;

-- name: lock-payment
SELECT id, invoice_id, amount, reversed_at FROM payment WHERE id = :id FOR UPDATE;

-- name: reverse-payment!
UPDATE payment SET reversed_at = :now, reversed_by = :by, reversal_reason = :reason WHERE id = :id;

-- name: open-invoices
-- Issued invoices on or before :as_of and not credited by then, with what was paid by then.
SELECT i.id, i.number, i.organization_id, o.name AS organization_name, i.issued_at, i.total,
       coalesce((SELECT sum(p.amount) FROM payment p
                 WHERE p.invoice_id = i.id AND p.reversed_at IS NULL AND p.paid_on <= :as_of), 0) AS paid
FROM invoice i
JOIN org_profile o ON o.id = i.organization_id
LEFT JOIN invoice cn ON cn.id = i.credited_by
WHERE i.kind = 'invoice' AND i.status = 'issued' AND i.issued_at < :until
  AND (cn.id IS NULL OR cn.issued_at >= :until)
ORDER BY o.name, i.organization_id, i.issued_at, i.id;

-- name: invoice-by-number$
SELECT id FROM invoice WHERE number = :number AND kind = 'invoice' AND status = 'issued' AND credited_by IS NULL;

-- name: insert-statement$
INSERT INTO bank_statement (filename, imported_by, imported_at) VALUES (:filename, :by, :now) RETURNING id;

-- name: insert-bank-row$
INSERT INTO bank_row (statement_id, line, booked_on, amount, reference, payer, row_hash, status)
VALUES (:statement_id, :line, :booked_on, :amount, :reference, :payer, :row_hash, 'unmatched')
ON CONFLICT (row_hash) DO NOTHING
RETURNING id;

-- name: match-bank-row!
UPDATE bank_row SET status = :status, payment_id = :payment_id, reason = :reason, reviewed_by = :by,
       reviewed_at = :now
WHERE id = :id;

-- name: lock-bank-row
SELECT id, statement_id, booked_on, amount, reference, payer, status FROM bank_row WHERE id = :id FOR UPDATE;

-- name: statement-exists$
SELECT EXISTS (SELECT 1 FROM bank_statement WHERE id = :id);

-- name: bank-rows
-- With the invoice a row paid (its number, customer and what is still open on it now, for the review page).
SELECT r.id, r.statement_id, r.line, r.booked_on, r.amount, r.reference, r.payer, r.status, r.payment_id,
       p.invoice_id, r.reason, i.number AS invoice_number, o.name AS organization_name,
       i.total - (SELECT coalesce(sum(q.amount), 0) FROM payment q
                  WHERE q.invoice_id = i.id AND q.reversed_at IS NULL) AS invoice_open
FROM bank_row r
LEFT JOIN payment p ON p.id = r.payment_id
LEFT JOIN invoice i ON i.id = p.invoice_id
LEFT JOIN org_profile o ON o.id = i.organization_id
WHERE r.statement_id = :statement_id
ORDER BY r.line, r.id;

-- name: bank-statements
-- The latest imports (or the one :id), newest first, with their rows counted by status.
SELECT s.id, s.filename, s.imported_at, u.email AS imported_by,
       count(r.id) FILTER (WHERE r.status = 'matched') AS matched,
       count(r.id) FILTER (WHERE r.status = 'unmatched') AS unmatched,
       count(r.id) FILTER (WHERE r.status = 'assigned') AS assigned,
       count(r.id) FILTER (WHERE r.status = 'dismissed') AS dismissed
FROM bank_statement s
JOIN user_profile u ON u.id = s.imported_by
LEFT JOIN bank_row r ON r.statement_id = s.id
WHERE CAST(:id AS bigint) IS NULL OR s.id = :id
GROUP BY s.id, s.filename, s.imported_at, u.email
ORDER BY s.id DESC
LIMIT :limit;
