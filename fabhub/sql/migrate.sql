-- The migration runner's own bookkeeping and locking.

-- name: lock-migrations!
-- One runner at a time: a second process waits here, then finds everything applied.
SELECT pg_advisory_lock(hashtext('fabhub.migrate'));

-- name: unlock-migrations!
SELECT pg_advisory_unlock(hashtext('fabhub.migrate'));

-- name: create-migration-table#
CREATE TABLE IF NOT EXISTS fabhub_migration (
    package    text        NOT NULL,
    version    integer     NOT NULL,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (package, version)
);

-- name: applied-migrations
SELECT package, version, name, checksum FROM fabhub_migration;

-- name: record-migration!
INSERT INTO fabhub_migration (package, version, name, checksum)
VALUES (:package, :version, :name, :checksum);

-- name: timescaledb-installable$
SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       AND current_setting('shared_preload_libraries') ~ 'timescaledb';

-- name: create-timescaledb#
CREATE EXTENSION IF NOT EXISTS timescaledb;

-- name: database-status^
SELECT current_setting('server_version') AS server_version,
       (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS timescaledb;
