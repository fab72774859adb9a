-- The sync column of every table a list answers from: `updated_since` reads it (common/paging.py). The
-- database's clock, so a client's next sync compares like with like whatever the app processes' clocks say.
CREATE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW IS DISTINCT FROM OLD THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;

-- A table's `updated_at`, kept by the trigger above: each domain's migration calls it for its own tables.
CREATE FUNCTION track_updates(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now()', tbl);
    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION touch_updated_at()',
                   tbl::text || '_updated_at', tbl);
END
$$;
