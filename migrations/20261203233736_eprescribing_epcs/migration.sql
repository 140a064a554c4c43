CREATE TABLE "rx_epcs_reports" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"day" date NOT NULL,
	"counts" jsonb NOT NULL,
	"signed" jsonb NOT NULL,
	"refusals" integer NOT NULL,
	"generated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rx_epcs_reports_tenant_day_key" UNIQUE("tenant_id","day")
);
--> statement-breakpoint
ALTER TABLE "rx_prescriptions" ADD COLUMN "dea_number" text;--> statement-breakpoint
ALTER TABLE "rx_epcs_reports" ADD CONSTRAINT "rx_epcs_reports_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "rx_prescriptions" ADD CONSTRAINT "rx_prescriptions_epcs_dea_check" CHECK (not "epcs" or "dea_number" is not null);--> statement-breakpoint
-- hand-written: reports are regenerated for a day (upsert), never deleted by the app
REVOKE DELETE, TRUNCATE ON "rx_epcs_reports" FROM carebase_app;
--> statement-breakpoint
SELECT carebase_enforce_tenant_rls();
