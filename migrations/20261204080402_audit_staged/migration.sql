CREATE TABLE "audit_staged" (
	"n" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "audit_staged_n_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"event" jsonb NOT NULL,
	"before" text NOT NULL,
	"after" text NOT NULL,
	"staged_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
-- ---------------------------------------------------------------- hand-written
-- A write's audit events are staged here in its own transaction and chained by
-- the group writer afterwards (src/platform/audit/tables.ts auditStaged).
-- The app role may only insert; the owner's functions below read and delete.
REVOKE SELECT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON "audit_staged" FROM carebase_app;
--> statement-breakpoint
GRANT INSERT ON "audit_staged" TO carebase_app;
--> statement-breakpoint
CREATE POLICY audit_staged_owner ON "audit_staged" TO CURRENT_USER USING (true) WITH CHECK (true);
--> statement-breakpoint
-- Chains a tenant's staged events, oldest first: takes the tenant's chain head
-- lock, moves the rows into audit_events with seq and hash
-- (carebase_audit_append) and deletes them here, in the caller's transaction.
-- The caller's app.tenant_id must be the tenant (as for carebase_audit_append).
-- Returns how many events it chained.
CREATE OR REPLACE FUNCTION carebase_audit_chain_staged(p_tenant uuid) RETURNS integer
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  genesis constant bytea := decode(repeat('00', 32), 'hex');
  v_rows jsonb;
  v_before text[];
  v_after text[];
  v_n integer;
BEGIN
  IF p_tenant IS NULL OR coalesce(current_setting('app.tenant_id', true), '') <> p_tenant::text THEN
    RAISE EXCEPTION 'carebase_audit_chain_staged: app.tenant_id must be the tenant';
  END IF;
  -- the head first: two chainers of one tenant take turns, and each sees the rows the other left
  INSERT INTO audit_chain_heads (tenant_id, seq, hash, anchor_seq, anchor_hash)
  VALUES (p_tenant, 0, genesis, 0, genesis)
  ON CONFLICT (tenant_id) DO UPDATE SET updated_at = now();
  WITH taken AS (DELETE FROM audit_staged WHERE tenant_id = p_tenant RETURNING n, event, before, after)
  SELECT jsonb_agg(event ORDER BY n), array_agg(before ORDER BY n), array_agg(after ORDER BY n), count(*)
    INTO v_rows, v_before, v_after, v_n FROM taken;
  IF v_n = 0 THEN
    RETURN 0;
  END IF;
  PERFORM carebase_audit_append(p_tenant, v_rows, v_before, v_after);
  RETURN v_n;
END $$;
--> statement-breakpoint
-- Tenants with staged events (the periodic chaining of what a crash left behind).
CREATE OR REPLACE FUNCTION carebase_audit_staged_tenants() RETURNS SETOF uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$ SELECT DISTINCT tenant_id FROM audit_staged ORDER BY tenant_id $$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION carebase_audit_chain_staged(uuid), carebase_audit_staged_tenants() FROM PUBLIC;
--> statement-breakpoint
GRANT EXECUTE ON FUNCTION carebase_audit_chain_staged(uuid), carebase_audit_staged_tenants() TO carebase_app;
--> statement-breakpoint
SELECT carebase_enforce_tenant_rls();
