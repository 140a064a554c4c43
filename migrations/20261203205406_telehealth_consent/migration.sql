CREATE TABLE "telehealth_consent_texts" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"kind" text NOT NULL,
	"version" integer NOT NULL,
	"title" text NOT NULL,
	"body" text NOT NULL,
	"published_by" uuid,
	"published_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "telehealth_consent_texts_version_key" UNIQUE("tenant_id","kind","version"),
	CONSTRAINT "telehealth_consent_texts_tenant_id_id_key" UNIQUE("tenant_id","id"),
	CONSTRAINT "telehealth_consent_texts_version_check" CHECK ("version" > 0)
);
--> statement-breakpoint
CREATE TABLE "telehealth_consents" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"kind" text NOT NULL,
	"consent_text_id" uuid NOT NULL,
	"version" integer NOT NULL,
	"patient_id" uuid,
	"user_id" uuid,
	"appointment_id" uuid,
	"recorded_by" text NOT NULL,
	"on_behalf" boolean DEFAULT false NOT NULL,
	"ip" text,
	"user_agent" text,
	"consented_at" timestamp with time zone DEFAULT now() NOT NULL,
	"withdrawn_at" timestamp with time zone,
	"withdrawn_by" text,
	CONSTRAINT "telehealth_consents_subject_check" CHECK (("patient_id" is null) <> ("user_id" is null)),
	CONSTRAINT "telehealth_consents_appointment_check" CHECK ("appointment_id" is null or "kind" = 'recording')
);
--> statement-breakpoint
CREATE INDEX "telehealth_consents_patient_idx" ON "telehealth_consents" ("tenant_id","patient_id","kind");--> statement-breakpoint
CREATE INDEX "telehealth_consents_user_idx" ON "telehealth_consents" ("tenant_id","user_id","kind");--> statement-breakpoint
ALTER TABLE "telehealth_consent_texts" ADD CONSTRAINT "telehealth_consent_texts_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "telehealth_consents" ADD CONSTRAINT "telehealth_consents_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "telehealth_consents" ADD CONSTRAINT "telehealth_consents_text_fkey" FOREIGN KEY ("tenant_id","consent_text_id") REFERENCES "telehealth_consent_texts"("tenant_id","id");--> statement-breakpoint
ALTER TABLE "telehealth_consents" ADD CONSTRAINT "telehealth_consents_appointment_fkey" FOREIGN KEY ("tenant_id","appointment_id") REFERENCES "telehealth_appointments"("tenant_id","id");--> statement-breakpoint
-- ---------------------------------------------------------------- hand-written
ALTER TABLE "telehealth_consent_texts" ADD CONSTRAINT "telehealth_consent_texts_kind_check" CHECK ("kind" IN ('telehealth', 'recording'));
--> statement-breakpoint
ALTER TABLE "telehealth_consents" ADD CONSTRAINT "telehealth_consents_kind_check" CHECK ("kind" IN ('telehealth', 'recording'));
--> statement-breakpoint
-- the version a consent names is a published text of that kind
ALTER TABLE "telehealth_consents" ADD CONSTRAINT "telehealth_consents_version_fkey"
  FOREIGN KEY ("tenant_id", "kind", "version") REFERENCES "telehealth_consent_texts" ("tenant_id", "kind", "version");
--> statement-breakpoint
ALTER TABLE "telehealth_consents" ADD CONSTRAINT "telehealth_consents_patient_fkey"
  FOREIGN KEY ("tenant_id", "patient_id") REFERENCES "patients" ("tenant_id", "id");
--> statement-breakpoint
ALTER TABLE "telehealth_consents" ADD CONSTRAINT "telehealth_consents_user_fkey"
  FOREIGN KEY ("tenant_id", "user_id") REFERENCES "users" ("tenant_id", "id");
--> statement-breakpoint
-- one active consent per subject, kind, version and scope (recording the same consent twice returns the first)
CREATE UNIQUE INDEX "telehealth_consents_active_key" ON "telehealth_consents"
  ("tenant_id", "kind", "version", (coalesce("patient_id", "user_id")), (coalesce("appointment_id", '00000000-0000-0000-0000-000000000000'::uuid)))
  WHERE "withdrawn_at" IS NULL;
--> statement-breakpoint
-- texts are immutable (publish a new version); consents are withdrawn, never deleted
REVOKE UPDATE, DELETE ON "telehealth_consent_texts" FROM carebase_app;
--> statement-breakpoint
REVOKE DELETE ON "telehealth_consents" FROM carebase_app;
--> statement-breakpoint
SELECT carebase_enforce_tenant_rls();
