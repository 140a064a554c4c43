-- Patients. Name search keys are generated columns over carebase_search_norm():
-- lower case, accents removed (unaccent, a trusted extension: the database
-- owner may create it), everything but letters and digits dropped.
CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public;
--> statement-breakpoint
-- IMMUTABLE so that generated columns and indexes may use it: the dictionary is
-- named explicitly (schema-qualified), so the result does not depend on search_path.
CREATE OR REPLACE FUNCTION carebase_search_norm(value text) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
  RETURN regexp_replace(lower(public.unaccent('public.unaccent'::regdictionary, value)), '[^[:alnum:]]+', '', 'g');
--> statement-breakpoint
CREATE TABLE "patient_care_team" (
	"tenant_id" uuid DEFAULT carebase_current_tenant(),
	"patient_id" uuid,
	"user_id" uuid,
	"role" text NOT NULL,
	"added_by" uuid,
	"added_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "patient_care_team_pkey" PRIMARY KEY("tenant_id","patient_id","user_id")
);
--> statement-breakpoint
CREATE TABLE "patient_imports" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"file_sha256" text NOT NULL,
	"file_name" text NOT NULL,
	"status" text DEFAULT 'running' NOT NULL,
	"checkpoint_line" integer DEFAULT 0 NOT NULL,
	"imported" integer DEFAULT 0 NOT NULL,
	"rejected" integer DEFAULT 0 NOT NULL,
	"errors" jsonb DEFAULT '[]' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "patient_imports_tenant_file_key" UNIQUE("tenant_id","file_sha256")
);
--> statement-breakpoint
CREATE TABLE "patient_merges" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"source_id" uuid NOT NULL,
	"target_id" uuid NOT NULL,
	"actor_id" uuid,
	"moved" jsonb DEFAULT '{}' NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "patient_mrn_counters" (
	"tenant_id" uuid PRIMARY KEY DEFAULT carebase_current_tenant(),
	"last_value" bigint DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "patient_ssn_reveals" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"patient_id" uuid NOT NULL,
	"actor_id" uuid NOT NULL,
	"purpose_of_use" text NOT NULL,
	"reason" text NOT NULL,
	"request_id" text,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "patients" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"mrn" text NOT NULL,
	"given_name" text NOT NULL,
	"family_name" text NOT NULL,
	"preferred_name" text,
	"given_norm" text COLLATE "C" GENERATED ALWAYS AS (carebase_search_norm(given_name)) STORED,
	"family_norm" text COLLATE "C" GENERATED ALWAYS AS (carebase_search_norm(family_name)) STORED,
	"date_of_birth" date NOT NULL,
	"sex_at_birth" text,
	"gender_identity" text,
	"email" text,
	"phones" jsonb DEFAULT '[]' NOT NULL,
	"phone_digits" text[] DEFAULT '{}'::text[] NOT NULL,
	"address" jsonb,
	"language" text,
	"emergency_contact" jsonb,
	"insurance" jsonb,
	"ssn" bytea,
	"ssn_last4" bytea,
	"ssn_index" bytea,
	"status" text DEFAULT 'active' NOT NULL,
	"deceased_date" date,
	"merged_into" uuid,
	"merged_at" timestamp with time zone,
	"user_id" uuid,
	"version" integer DEFAULT 1 NOT NULL,
	"created_by" uuid,
	"updated_by" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "patients_tenant_id_id_key" UNIQUE("tenant_id","id"),
	CONSTRAINT "patients_tenant_mrn_key" UNIQUE("tenant_id","mrn"),
	CONSTRAINT "patients_version_check" CHECK ("version" > 0),
	CONSTRAINT "patients_merged_check" CHECK (("status" = 'merged') = ("merged_into" is not null)),
	CONSTRAINT "patients_deceased_check" CHECK ("deceased_date" is null or "status" in ('deceased', 'merged')),
	CONSTRAINT "patients_ssn_check" CHECK (("ssn" is null) = ("ssn_index" is null) and ("ssn" is null) = ("ssn_last4" is null))
);
--> statement-breakpoint
CREATE INDEX "patient_care_team_user_idx" ON "patient_care_team" ("tenant_id","user_id","patient_id");--> statement-breakpoint
CREATE INDEX "patient_merges_target_idx" ON "patient_merges" ("tenant_id","target_id");--> statement-breakpoint
CREATE INDEX "patient_merges_source_idx" ON "patient_merges" ("tenant_id","source_id");--> statement-breakpoint
CREATE INDEX "patient_ssn_reveals_patient_idx" ON "patient_ssn_reveals" ("tenant_id","patient_id","at");--> statement-breakpoint
CREATE UNIQUE INDEX "patients_tenant_user_key" ON "patients" ("tenant_id","user_id") WHERE "user_id" is not null;--> statement-breakpoint
CREATE INDEX "patients_name_idx" ON "patients" ("tenant_id","family_norm","given_norm","id");--> statement-breakpoint
CREATE INDEX "patients_given_name_idx" ON "patients" ("tenant_id","given_norm","family_norm","id");--> statement-breakpoint
CREATE INDEX "patients_dob_idx" ON "patients" ("tenant_id","date_of_birth","family_norm","given_norm","id");--> statement-breakpoint
CREATE INDEX "patients_ssn_index_idx" ON "patients" ("tenant_id","ssn_index") WHERE "ssn_index" is not null;--> statement-breakpoint
CREATE INDEX "patients_phone_digits_idx" ON "patients" USING gin ("phone_digits");--> statement-breakpoint
CREATE INDEX "patients_merged_into_idx" ON "patients" ("tenant_id","merged_into") WHERE "merged_into" is not null;--> statement-breakpoint
ALTER TABLE "patient_care_team" ADD CONSTRAINT "patient_care_team_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "patient_care_team" ADD CONSTRAINT "patient_care_team_patient_fkey" FOREIGN KEY ("tenant_id","patient_id") REFERENCES "patients"("tenant_id","id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "patient_imports" ADD CONSTRAINT "patient_imports_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "patient_merges" ADD CONSTRAINT "patient_merges_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "patient_mrn_counters" ADD CONSTRAINT "patient_mrn_counters_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "patient_ssn_reveals" ADD CONSTRAINT "patient_ssn_reveals_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "patient_ssn_reveals" ADD CONSTRAINT "patient_ssn_reveals_patient_fkey" FOREIGN KEY ("tenant_id","patient_id") REFERENCES "patients"("tenant_id","id");--> statement-breakpoint
ALTER TABLE "patients" ADD CONSTRAINT "patients_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "patients" ADD CONSTRAINT "patients_merged_into_fkey" FOREIGN KEY ("tenant_id","merged_into") REFERENCES "patients"("tenant_id","id");
--> statement-breakpoint
-- users are identity's table: the link to a PATIENT account and care team members must be users of the same tenant
ALTER TABLE "patients" ADD CONSTRAINT "patients_user_fkey" FOREIGN KEY ("tenant_id","user_id") REFERENCES "users"("tenant_id","id");
--> statement-breakpoint
ALTER TABLE "patient_care_team" ADD CONSTRAINT "patient_care_team_user_fkey" FOREIGN KEY ("tenant_id","user_id") REFERENCES "users"("tenant_id","id");
--> statement-breakpoint
-- reveal and merge records are append-only for the app
REVOKE UPDATE, DELETE, TRUNCATE ON "patient_ssn_reveals", "patient_merges" FROM carebase_app;
--> statement-breakpoint
-- patients are never deleted by the app (merge or status inactive instead); the import log is not deleted either
REVOKE DELETE, TRUNCATE ON "patients", "patient_imports", "patient_mrn_counters" FROM carebase_app;
--> statement-breakpoint
SELECT carebase_enforce_tenant_rls();
