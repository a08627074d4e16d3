-- Every API instance keeps read caches (the principal's tenant and agent,
-- customers by phone) and LISTENs on `switchboard_cache`. These triggers tell
-- it what a committed write changed, whoever made the write (the API, the
-- worker's imports, the seed, an operator's psql): PostgreSQL delivers a
-- notification only after its transaction commits, and never for one that
-- rolled back, so an instance drops an entry exactly when a newer value
-- becomes visible.
--
-- Payload: `<kind> <key> <key> ...`, one notification per statement (and per
-- row for the rarely written tenants and agents). A key `*` drops the whole
-- cache of that kind; a customer key is `<tenant>:<phone>` or `<tenant>` for
-- all of that tenant's customers. A notification carries at most 8000 bytes,
-- so a large statement (an import batch) names tenants instead of phones.

CREATE FUNCTION cache_customers_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    keys text[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        keys := ARRAY(SELECT DISTINCT tenant_id || ':' || phone FROM new_rows
                      WHERE phone IS NOT NULL);
    ELSIF TG_OP = 'UPDATE' THEN
        keys := ARRAY(SELECT tenant_id || ':' || phone FROM old_rows WHERE phone IS NOT NULL
                      UNION
                      SELECT tenant_id || ':' || phone FROM new_rows WHERE phone IS NOT NULL);
    ELSE
        keys := ARRAY(SELECT DISTINCT tenant_id || ':' || phone FROM old_rows
                      WHERE phone IS NOT NULL);
    END IF;
    IF cardinality(keys) > 100 THEN
        keys := ARRAY(SELECT DISTINCT split_part(k, ':', 1) FROM unnest(keys) AS k);
        IF cardinality(keys) > 100 THEN
            keys := ARRAY['*'];
        END IF;
    END IF;
    IF cardinality(keys) > 0 THEN
        PERFORM pg_notify('switchboard_cache', 'customers ' || array_to_string(keys, ' '));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER customers_cache_insert AFTER INSERT ON customers
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cache_customers_changed();
CREATE TRIGGER customers_cache_update AFTER UPDATE ON customers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cache_customers_changed();
CREATE TRIGGER customers_cache_delete AFTER DELETE ON customers
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cache_customers_changed();

-- Tenants and agents are written rarely (provisioning), one row at a time.
CREATE FUNCTION cache_row_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- OLD is NULL for an insert, NEW for a delete.
    PERFORM pg_notify('switchboard_cache', TG_ARGV[0] || ' ' || coalesce(OLD.id, NEW.id));
    RETURN NULL;
END
$$;

-- Inserts too: an instance may have cached "no such row" for that id. A
-- login stamps `last_login_at`, which no cache holds: only the columns a
-- cached answer shows invalidate it.
CREATE TRIGGER agents_cache
    AFTER INSERT OR UPDATE OF tenant_id, email, name, role OR DELETE ON agents
    FOR EACH ROW EXECUTE FUNCTION cache_row_changed('agents');
CREATE TRIGGER tenants_cache AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION cache_row_changed('tenants');
