-- The center's figures for management: what each subsidy program has paid out against its caps.

-- name: subsidy-against-caps
-- Per program and customer, the subsidy of :year in the ledger (credit notes give it back) and the program's
-- annual cap per customer: every eligible customer, and any other the ledger names (eligibility withdrawn
-- after use). Programs by id, customers by name.
WITH pairs AS (
    SELECT p.id AS program_id, o.id AS organization_id
    FROM subsidy_program_entry p JOIN org_profile o ON p.id = ANY(o.subsidy_programs)
    UNION
    SELECT program_id, organization_id FROM subsidy_ledger WHERE year = :year
)
SELECT p.id AS program_id, p.name AS program_name, p.annual_cap, o.id AS organization_id,
       o.name AS organization_name,
       coalesce((SELECT sum(l.amount) FROM subsidy_ledger l
                 WHERE l.program_id = x.program_id AND l.organization_id = x.organization_id AND l.year = :year),
                0) AS used
FROM pairs x
JOIN subsidy_program_entry p ON p.id = x.program_id
JOIN org_profile o ON o.id = x.organization_id
ORDER BY p.id, o.name, o.id;
