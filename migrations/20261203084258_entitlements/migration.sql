CREATE TABLE "tenant_entitlements" (
	"tenant_id" uuid PRIMARY KEY DEFAULT carebase_current_tenant(),
	"modules" text[] NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "tenant_entitlements" ADD CONSTRAINT "tenant_entitlements_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
-- entitlements are set by operators (and later the subscriptions module), never by a request: the app role only reads them
REVOKE INSERT, UPDATE, DELETE ON "tenant_entitlements" FROM carebase_app;
--> statement-breakpoint
SELECT carebase_enforce_tenant_rls();
