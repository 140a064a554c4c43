CREATE TABLE "patient_duplicate_overrides" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"patient_id" uuid NOT NULL,
	"duplicate_of" uuid NOT NULL,
	"actor_id" uuid,
	"reason" text NOT NULL,
	"request_id" text,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "patient_merges" ADD COLUMN "reason" text;--> statement-breakpoint
CREATE INDEX "patient_duplicate_overrides_patient_idx" ON "patient_duplicate_overrides" ("tenant_id","patient_id");--> statement-breakpoint
ALTER TABLE "patient_duplicate_overrides" ADD CONSTRAINT "patient_duplicate_overrides_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "patient_duplicate_overrides" ADD CONSTRAINT "patient_duplicate_overrides_patient_fkey" FOREIGN KEY ("tenant_id","patient_id") REFERENCES "patients"("tenant_id","id");--> statement-breakpoint
ALTER TABLE "patient_duplicate_overrides" ADD CONSTRAINT "patient_duplicate_overrides_duplicate_fkey" FOREIGN KEY ("tenant_id","duplicate_of") REFERENCES "patients"("tenant_id","id");--> statement-breakpoint
-- append-only evidence, like patient_ssn_reveals and patient_merges
REVOKE UPDATE, DELETE, TRUNCATE ON "patient_duplicate_overrides" FROM carebase_app;--> statement-breakpoint
SELECT carebase_enforce_tenant_rls();
