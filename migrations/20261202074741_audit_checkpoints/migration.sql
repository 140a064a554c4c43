CREATE TABLE "audit_checkpoints" (
	"tenant_id" uuid DEFAULT carebase_current_tenant(),
	"seq" bigint,
	"at" timestamp with time zone NOT NULL,
	"hash" bytea NOT NULL,
	"signed_at" timestamp with time zone NOT NULL,
	"key_id" text NOT NULL,
	"signature" bytea NOT NULL,
	CONSTRAINT "audit_checkpoints_pkey" PRIMARY KEY("tenant_id","seq")
);
--> statement-breakpoint
ALTER TABLE "audit_checkpoints" ADD CONSTRAINT "audit_checkpoints_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
-- Hand-written: checkpoints are append-only like the log (grants for the app
-- role, triggers for everyone; see src/platform/audit/checkpoint.ts).
CREATE OR REPLACE FUNCTION carebase_audit_append_only() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
--> statement-breakpoint
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON "audit_checkpoints"
  FOR EACH ROW EXECUTE FUNCTION carebase_audit_append_only();
--> statement-breakpoint
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON "audit_checkpoints"
  FOR EACH STATEMENT EXECUTE FUNCTION carebase_audit_append_only();
--> statement-breakpoint
REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON "audit_checkpoints" FROM carebase_app;
--> statement-breakpoint
GRANT SELECT, INSERT ON "audit_checkpoints" TO carebase_app;
--> statement-breakpoint
-- Tenants whose chain head moved (since p_since) past their last checkpoint:
-- the signer's work list (the app role cannot list tenants through RLS).
CREATE OR REPLACE FUNCTION carebase_audit_checkpoint_due(p_since timestamptz) RETURNS SETOF uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    SELECT h.tenant_id FROM audit_chain_heads h
     WHERE h.updated_at >= p_since
       AND h.seq > coalesce((SELECT max(c.seq) FROM audit_checkpoints c WHERE c.tenant_id = h.tenant_id), 0)
     ORDER BY h.tenant_id $$;
--> statement-breakpoint
CREATE POLICY audit_checkpoints_owner ON "audit_checkpoints" TO CURRENT_USER USING (true) WITH CHECK (true);
--> statement-breakpoint
REVOKE ALL ON FUNCTION carebase_audit_checkpoint_due(timestamptz) FROM PUBLIC;
--> statement-breakpoint
GRANT EXECUTE ON FUNCTION carebase_audit_checkpoint_due(timestamptz) TO carebase_app;
