CREATE TABLE "rate_limits" (
	"key" varchar(255) PRIMARY KEY,
	"points" integer DEFAULT 0 NOT NULL,
	"expire" bigint
);
--> statement-breakpoint
CREATE TABLE "api_keys" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"name" text NOT NULL,
	"prefix" text NOT NULL CONSTRAINT "api_keys_prefix_key" UNIQUE,
	"secret_hash" bytea NOT NULL,
	"permissions" text[] NOT NULL,
	"tier" text DEFAULT 'standard' NOT NULL,
	"created_by" uuid NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	"revoked_by" uuid,
	"last_used_at" timestamp with time zone,
	CONSTRAINT "api_keys_tenant_id_id_key" UNIQUE("tenant_id","id"),
	CONSTRAINT "api_keys_tier_check" CHECK ("tier" in ('free', 'standard', 'enterprise')),
	CONSTRAINT "api_keys_prefix_check" CHECK ("prefix" ~ '^[0-9a-f]{12}$')
);
--> statement-breakpoint
CREATE TABLE "break_glass_grants" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"user_id" uuid NOT NULL,
	"patient_id" uuid NOT NULL,
	"reason" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"ended_at" timestamp with time zone,
	"ended_by" uuid,
	"reviewed_at" timestamp with time zone,
	"reviewed_by" uuid,
	CONSTRAINT "break_glass_grants_tenant_id_id_key" UNIQUE("tenant_id","id"),
	CONSTRAINT "break_glass_grants_window_check" CHECK ("expires_at" > "created_at")
);
--> statement-breakpoint
CREATE INDEX "api_keys_tenant_created_idx" ON "api_keys" ("tenant_id","created_at");--> statement-breakpoint
CREATE INDEX "break_glass_grants_lookup_idx" ON "break_glass_grants" ("tenant_id","user_id","patient_id","expires_at");--> statement-breakpoint
CREATE INDEX "break_glass_grants_tenant_created_idx" ON "break_glass_grants" ("tenant_id","created_at");--> statement-breakpoint
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "break_glass_grants" ADD CONSTRAINT "break_glass_grants_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
-- API key authentication resolves a key prefix before the tenant is known. Only
-- the SECURITY DEFINER function below (running as the owner) reads api_keys
-- across tenants; the app role keeps tenant RLS on the table.
CREATE POLICY api_keys_owner_lookup ON "api_keys" FOR SELECT TO CURRENT_USER USING (true);
--> statement-breakpoint
CREATE OR REPLACE FUNCTION carebase_api_key_lookup(p_prefix text)
  RETURNS TABLE (key_id uuid, key_tenant_id uuid, key_secret_hash bytea, key_permissions text[], key_tier text,
                 key_revoked_at timestamptz, key_expires_at timestamptz, tenant_status text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    SELECT k.id, k.tenant_id, k.secret_hash, k.permissions, k.tier, k.revoked_at, k.expires_at, t.status
      FROM api_keys k
      LEFT JOIN tenants t ON t.id = k.tenant_id
     WHERE k.prefix = p_prefix
  $$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION carebase_api_key_lookup(text) FROM PUBLIC;
--> statement-breakpoint
GRANT EXECUTE ON FUNCTION carebase_api_key_lookup(text) TO carebase_app;
--> statement-breakpoint
-- Keys are revoked, grants are ended: neither is ever deleted by the app.
REVOKE DELETE ON "api_keys", "break_glass_grants" FROM carebase_app;
--> statement-breakpoint
SELECT carebase_enforce_tenant_rls();
