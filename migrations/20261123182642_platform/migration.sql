-- Platform: the application role, tenant context and row level security.
-- The owner (whoever runs migrations) owns every table; the app connects as
-- carebase_app, which is not the owner and has no BYPASSRLS.
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'carebase_app') THEN
    CREATE ROLE carebase_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
END $$;
--> statement-breakpoint
GRANT USAGE ON SCHEMA public TO carebase_app;
--> statement-breakpoint
-- /readyz compares applied migrations with the committed ones.
GRANT USAGE ON SCHEMA drizzle TO carebase_app;
--> statement-breakpoint
GRANT SELECT ON drizzle.__drizzle_migrations TO carebase_app;
--> statement-breakpoint
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO carebase_app;
--> statement-breakpoint
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO carebase_app;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION carebase_current_tenant() RETURNS uuid
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT nullif(current_setting('app.tenant_id', true), '')::uuid $$;
--> statement-breakpoint
-- Enables + forces RLS and adds the tenant_isolation policy on every table of
-- schema public that has a tenant_id column. Idempotent; every migration that
-- adds a tenant-owned table ends with SELECT carebase_enforce_tenant_rls(),
-- and the migration runner calls it again after each run.
CREATE OR REPLACE FUNCTION carebase_enforce_tenant_rls() RETURNS void
  LANGUAGE plpgsql AS $$
DECLARE t record;
BEGIN
  FOR t IN
    SELECT c.relname FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t.relname);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t.relname);
    IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = 'public' AND tablename = t.relname AND policyname = 'tenant_isolation') THEN
      EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = carebase_current_tenant()) WITH CHECK (tenant_id = carebase_current_tenant())', t.relname);
    END IF;
  END LOOP;
END $$;
--> statement-breakpoint
CREATE TABLE "tenants" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"slug" text NOT NULL UNIQUE,
	"name" text NOT NULL,
	"status" text DEFAULT 'active' NOT NULL,
	"plan" text DEFAULT 'standard' NOT NULL,
	"settings" jsonb DEFAULT '{}' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "tenants" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "tenants" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
-- A request sees and changes only its own tenant row. Creating a tenant sets
-- app.tenant_id to the new tenant's id first (platform-admin action).
CREATE POLICY tenant_self ON "tenants" USING (id = carebase_current_tenant()) WITH CHECK (id = carebase_current_tenant());
--> statement-breakpoint
GRANT SELECT, INSERT, UPDATE ON "tenants" TO carebase_app;
--> statement-breakpoint
REVOKE DELETE ON "tenants" FROM carebase_app;
--> statement-breakpoint
SELECT carebase_enforce_tenant_rls();
