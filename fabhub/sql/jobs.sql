-- Scheduled jobs: one runner per job at a time across every FabHub process.

-- name: try-job-lock$
-- Held until the job's transaction ends; a second process finds it taken and skips the run.
SELECT pg_try_advisory_xact_lock(hashtext('fabhub.job'), hashtext(:name));
