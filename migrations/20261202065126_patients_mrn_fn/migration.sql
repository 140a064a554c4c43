-- Takes a tenant's next p_count MRN counter values as one statement run as its
-- own transaction (allocateMrns, on the side pool): the counter row is locked
-- only inside the server, for the statement and an asynchronous commit, never
-- across a round trip. synchronous_commit is off for that commit, which is
-- safe: WAL is flushed in order, so the registration's own (synchronous) commit
-- also makes the counter durable. Returns the last value taken.
-- It sets app.tenant_id (RLS) and synchronous_commit for the transaction it
-- runs in, so it refuses to run where a tenant is already set (a request's
-- transaction); call it on its own.
CREATE OR REPLACE FUNCTION carebase_next_mrns(p_tenant uuid, p_count integer) RETURNS bigint
  LANGUAGE plpgsql AS $$
DECLARE
  v_last bigint;
BEGIN
  IF coalesce(current_setting('app.tenant_id', true), '') <> '' THEN
    RAISE EXCEPTION 'carebase_next_mrns must run as its own transaction, not in a tenant transaction';
  END IF;
  IF p_count IS NULL OR p_count < 1 THEN
    RAISE EXCEPTION 'carebase_next_mrns: count must be positive';
  END IF;
  PERFORM set_config('app.tenant_id', p_tenant::text, true), set_config('synchronous_commit', 'off', true),
    set_config('lock_timeout', '5s', true), set_config('statement_timeout', '15s', true);
  INSERT INTO patient_mrn_counters (tenant_id, last_value) VALUES (p_tenant, p_count)
  ON CONFLICT (tenant_id) DO UPDATE SET last_value = patient_mrn_counters.last_value + p_count
  RETURNING last_value INTO v_last;
  RETURN v_last;
END $$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION carebase_next_mrns(uuid, integer) FROM PUBLIC;
--> statement-breakpoint
GRANT EXECUTE ON FUNCTION carebase_next_mrns(uuid, integer) TO carebase_app;
