CREATE TABLE "idempotency_keys" (
	"tenant_id" uuid DEFAULT carebase_current_tenant(),
	"actor" text,
	"key" text,
	"operation" text NOT NULL,
	"request_hash" text NOT NULL,
	"response" bytea,
	"http_status" integer,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	CONSTRAINT "idempotency_keys_pkey" PRIMARY KEY("tenant_id","actor","key")
);
--> statement-breakpoint
CREATE INDEX "idempotency_keys_expires_idx" ON "idempotency_keys" ("expires_at");--> statement-breakpoint
ALTER TABLE "idempotency_keys" ADD CONSTRAINT "idempotency_keys_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
SELECT carebase_enforce_tenant_rls();
--> statement-breakpoint
-- Expired keys of every tenant are purged by a scheduled task running as the
-- app role; RLS hides other tenants' rows, so the purge is a narrow definer function.
CREATE OR REPLACE FUNCTION carebase_purge_idempotency_keys(batch integer DEFAULT 10000) RETURNS integer
  LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    WITH doomed AS (
      SELECT tenant_id, actor, key FROM idempotency_keys WHERE expires_at < now() LIMIT batch
    ), gone AS (
      DELETE FROM idempotency_keys k USING doomed d
      WHERE k.tenant_id = d.tenant_id AND k.actor = d.actor AND k.key = d.key
      RETURNING 1
    )
    SELECT count(*)::integer FROM gone
  $$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION carebase_purge_idempotency_keys(integer) FROM PUBLIC;
--> statement-breakpoint
GRANT EXECUTE ON FUNCTION carebase_purge_idempotency_keys(integer) TO carebase_app;
--> statement-breakpoint
-- FORCE RLS binds the owner too; the definer function above runs as the owner,
-- so the owner (only) may see every tenant's keys of this table.
DO $$ BEGIN
  EXECUTE format('CREATE POLICY owner_maintenance ON idempotency_keys TO %I USING (true) WITH CHECK (true)', current_user);
END $$;
