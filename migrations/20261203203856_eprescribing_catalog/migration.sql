CREATE TABLE "rx_alert_overrides" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"patient_id" uuid NOT NULL,
	"drug_rxcui" text NOT NULL,
	"prescription_id" uuid,
	"alert_key" text NOT NULL,
	"kind" text NOT NULL,
	"severity" text NOT NULL,
	"reason" text,
	"actor_id" uuid,
	"request_id" text,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rx_alert_overrides_reason_check" CHECK ("severity" not in ('major', 'contraindicated') or length(btrim("reason")) > 0)
);
--> statement-breakpoint
CREATE TABLE "rx_catalog_sources" (
	"name" text PRIMARY KEY,
	"content_hash" text NOT NULL,
	"counts" jsonb DEFAULT '{}' NOT NULL,
	"loaded_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "rx_drug_classes" (
	"id" text PRIMARY KEY,
	"name" text NOT NULL,
	"parent_id" text,
	"system" text DEFAULT 'carebase' NOT NULL,
	"therapeutic" boolean DEFAULT false NOT NULL,
	"source" text DEFAULT 'seed' NOT NULL,
	CONSTRAINT "rx_drug_classes_id_check" CHECK ("id" ~ '^[a-z0-9][a-z0-9._:-]{0,99}$')
);
--> statement-breakpoint
CREATE TABLE "rx_drug_ingredients" (
	"drug_rxcui" text,
	"ingredient_rxcui" text,
	"strength" text,
	"strength_value" numeric,
	"strength_unit" text,
	CONSTRAINT "rx_drug_ingredients_pkey" PRIMARY KEY("drug_rxcui","ingredient_rxcui")
);
--> statement-breakpoint
CREATE TABLE "rx_drug_ndcs" (
	"ndc" text PRIMARY KEY,
	"drug_rxcui" text NOT NULL,
	"labeler" text,
	"package_description" text,
	"source" text DEFAULT 'seed' NOT NULL,
	CONSTRAINT "rx_drug_ndcs_ndc_check" CHECK ("ndc" ~ '^[0-9]{11}$')
);
--> statement-breakpoint
CREATE TABLE "rx_drugs" (
	"rxcui" text PRIMARY KEY,
	"name" text NOT NULL,
	"tty" text NOT NULL,
	"strength" text,
	"dose_form" text NOT NULL,
	"route" text NOT NULL,
	"brand_name" text,
	"generic_rxcui" text,
	"dea_schedule" text,
	"active" boolean DEFAULT true NOT NULL,
	"search_name" text COLLATE "C" GENERATED ALWAYS AS (carebase_search_norm(name)) STORED,
	"search_brand" text COLLATE "C" GENERATED ALWAYS AS (carebase_search_norm(brand_name)) STORED,
	"source" text DEFAULT 'seed' NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rx_drugs_rxcui_check" CHECK ("rxcui" ~ '^[0-9]{1,10}$')
);
--> statement-breakpoint
CREATE TABLE "rx_ingredient_classes" (
	"ingredient_rxcui" text,
	"class_id" text,
	CONSTRAINT "rx_ingredient_classes_pkey" PRIMARY KEY("ingredient_rxcui","class_id")
);
--> statement-breakpoint
CREATE TABLE "rx_ingredients" (
	"rxcui" text PRIMARY KEY,
	"name" text NOT NULL,
	"search_name" text COLLATE "C" GENERATED ALWAYS AS (carebase_search_norm(name)) STORED,
	"tty" text DEFAULT 'IN' NOT NULL,
	"source" text DEFAULT 'seed' NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rx_ingredients_rxcui_check" CHECK ("rxcui" ~ '^[0-9]{1,10}$')
);
--> statement-breakpoint
CREATE TABLE "rx_interactions" (
	"ingredient_a" text,
	"ingredient_b" text,
	"severity" text NOT NULL,
	"mechanism" text NOT NULL,
	"management" text NOT NULL,
	"reference" text,
	"source" text DEFAULT 'seed' NOT NULL,
	CONSTRAINT "rx_interactions_pkey" PRIMARY KEY("ingredient_a","ingredient_b"),
	CONSTRAINT "rx_interactions_order_check" CHECK ("ingredient_a" < "ingredient_b")
);
--> statement-breakpoint
CREATE TABLE "rx_patient_allergies" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"patient_id" uuid NOT NULL,
	"allergen_kind" text NOT NULL,
	"allergen_code" text NOT NULL,
	"allergen_name" text NOT NULL,
	"type" text DEFAULT 'allergy' NOT NULL,
	"reaction" text,
	"severity" text NOT NULL,
	"status" text DEFAULT 'active' NOT NULL,
	"onset_on" date,
	"note" text,
	"recorded_by" uuid,
	"updated_by" uuid,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rx_patient_allergies_tenant_id_id_key" UNIQUE("tenant_id","id"),
	CONSTRAINT "rx_patient_allergies_version_check" CHECK ("version" > 0)
);
--> statement-breakpoint
CREATE TABLE "rx_patient_medications" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"patient_id" uuid NOT NULL,
	"drug_rxcui" text NOT NULL,
	"status" text DEFAULT 'active' NOT NULL,
	"source" text DEFAULT 'reported' NOT NULL,
	"sig" text,
	"dose_amount" numeric,
	"dose_unit" text,
	"frequency_per_day" integer,
	"started_on" date,
	"stopped_on" date,
	"prescription_id" uuid,
	"note" text,
	"recorded_by" uuid,
	"updated_by" uuid,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rx_patient_medications_tenant_id_id_key" UNIQUE("tenant_id","id"),
	CONSTRAINT "rx_patient_medications_version_check" CHECK ("version" > 0),
	CONSTRAINT "rx_patient_medications_freq_check" CHECK ("frequency_per_day" is null or "frequency_per_day" between 1 and 48),
	CONSTRAINT "rx_patient_medications_dates_check" CHECK ("stopped_on" is null or "started_on" is null or "stopped_on" >= "started_on")
);
--> statement-breakpoint
CREATE INDEX "rx_alert_overrides_patient_idx" ON "rx_alert_overrides" ("tenant_id","patient_id","at");--> statement-breakpoint
CREATE INDEX "rx_alert_overrides_prescription_idx" ON "rx_alert_overrides" ("tenant_id","prescription_id") WHERE "prescription_id" is not null;--> statement-breakpoint
CREATE INDEX "rx_drug_ingredients_ingredient_idx" ON "rx_drug_ingredients" ("ingredient_rxcui");--> statement-breakpoint
CREATE INDEX "rx_drug_ndcs_drug_idx" ON "rx_drug_ndcs" ("drug_rxcui");--> statement-breakpoint
CREATE INDEX "rx_drugs_search_name_idx" ON "rx_drugs" ("search_name");--> statement-breakpoint
CREATE INDEX "rx_drugs_search_brand_idx" ON "rx_drugs" ("search_brand") WHERE "brand_name" is not null;--> statement-breakpoint
CREATE INDEX "rx_drugs_generic_idx" ON "rx_drugs" ("generic_rxcui") WHERE "generic_rxcui" is not null;--> statement-breakpoint
CREATE INDEX "rx_ingredient_classes_class_idx" ON "rx_ingredient_classes" ("class_id");--> statement-breakpoint
CREATE INDEX "rx_ingredients_search_idx" ON "rx_ingredients" ("search_name");--> statement-breakpoint
CREATE INDEX "rx_interactions_b_idx" ON "rx_interactions" ("ingredient_b","ingredient_a");--> statement-breakpoint
CREATE INDEX "rx_patient_allergies_patient_idx" ON "rx_patient_allergies" ("tenant_id","patient_id","status");--> statement-breakpoint
CREATE INDEX "rx_patient_medications_patient_idx" ON "rx_patient_medications" ("tenant_id","patient_id","status");--> statement-breakpoint
ALTER TABLE "rx_alert_overrides" ADD CONSTRAINT "rx_alert_overrides_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "rx_alert_overrides" ADD CONSTRAINT "rx_alert_overrides_drug_rxcui_rx_drugs_rxcui_fkey" FOREIGN KEY ("drug_rxcui") REFERENCES "rx_drugs"("rxcui");--> statement-breakpoint
ALTER TABLE "rx_drug_classes" ADD CONSTRAINT "rx_drug_classes_parent_fkey" FOREIGN KEY ("parent_id") REFERENCES "rx_drug_classes"("id");--> statement-breakpoint
ALTER TABLE "rx_drug_ingredients" ADD CONSTRAINT "rx_drug_ingredients_drug_rxcui_rx_drugs_rxcui_fkey" FOREIGN KEY ("drug_rxcui") REFERENCES "rx_drugs"("rxcui") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "rx_drug_ingredients" ADD CONSTRAINT "rx_drug_ingredients_ingredient_rxcui_rx_ingredients_rxcui_fkey" FOREIGN KEY ("ingredient_rxcui") REFERENCES "rx_ingredients"("rxcui");--> statement-breakpoint
ALTER TABLE "rx_drug_ndcs" ADD CONSTRAINT "rx_drug_ndcs_drug_rxcui_rx_drugs_rxcui_fkey" FOREIGN KEY ("drug_rxcui") REFERENCES "rx_drugs"("rxcui") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "rx_ingredient_classes" ADD CONSTRAINT "rx_ingredient_classes_ZMA2File9myx_fkey" FOREIGN KEY ("ingredient_rxcui") REFERENCES "rx_ingredients"("rxcui") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "rx_ingredient_classes" ADD CONSTRAINT "rx_ingredient_classes_class_id_rx_drug_classes_id_fkey" FOREIGN KEY ("class_id") REFERENCES "rx_drug_classes"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "rx_interactions" ADD CONSTRAINT "rx_interactions_ingredient_a_rx_ingredients_rxcui_fkey" FOREIGN KEY ("ingredient_a") REFERENCES "rx_ingredients"("rxcui") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "rx_interactions" ADD CONSTRAINT "rx_interactions_ingredient_b_rx_ingredients_rxcui_fkey" FOREIGN KEY ("ingredient_b") REFERENCES "rx_ingredients"("rxcui") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "rx_patient_allergies" ADD CONSTRAINT "rx_patient_allergies_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "rx_patient_medications" ADD CONSTRAINT "rx_patient_medications_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "rx_patient_medications" ADD CONSTRAINT "rx_patient_medications_drug_rxcui_rx_drugs_rxcui_fkey" FOREIGN KEY ("drug_rxcui") REFERENCES "rx_drugs"("rxcui");--> statement-breakpoint
-- hand-written: the medication catalog (rx_drugs, rx_ingredients, rx_drug_ingredients, rx_drug_classes,
-- rx_ingredient_classes, rx_drug_ndcs, rx_interactions, rx_catalog_sources) is GLOBAL reference data (RxNorm, FDA):
-- no tenant_id, so no RLS; the same rows for every clinic, no PHI. The app role may only read it: the seed loader
-- (at boot) and the RxNorm / NDC importer CLI write it as the database owner.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON "rx_drugs", "rx_ingredients", "rx_drug_ingredients", "rx_drug_classes", "rx_ingredient_classes", "rx_drug_ndcs", "rx_interactions", "rx_catalog_sources" FROM carebase_app;
--> statement-breakpoint
GRANT SELECT ON "rx_drugs", "rx_ingredients", "rx_drug_ingredients", "rx_drug_classes", "rx_ingredient_classes", "rx_drug_ndcs", "rx_interactions", "rx_catalog_sources" TO carebase_app;
--> statement-breakpoint
-- hand-written: the tenant's patient (a module's tables.ts imports no other module, so the keys are declared here)
ALTER TABLE "rx_patient_medications" ADD CONSTRAINT "rx_patient_medications_patient_fkey" FOREIGN KEY ("tenant_id","patient_id") REFERENCES "patients"("tenant_id","id");
--> statement-breakpoint
ALTER TABLE "rx_patient_allergies" ADD CONSTRAINT "rx_patient_allergies_patient_fkey" FOREIGN KEY ("tenant_id","patient_id") REFERENCES "patients"("tenant_id","id");
--> statement-breakpoint
ALTER TABLE "rx_alert_overrides" ADD CONSTRAINT "rx_alert_overrides_patient_fkey" FOREIGN KEY ("tenant_id","patient_id") REFERENCES "patients"("tenant_id","id");
--> statement-breakpoint
-- medication list and allergy entries are never deleted (status entered_in_error instead); overrides are append-only evidence
REVOKE DELETE, TRUNCATE ON "rx_patient_medications", "rx_patient_allergies" FROM carebase_app;
--> statement-breakpoint
REVOKE UPDATE, DELETE, TRUNCATE ON "rx_alert_overrides" FROM carebase_app;
--> statement-breakpoint
-- ENABLE + FORCE row level security and the tenant_isolation policy on every table with tenant_id
SELECT carebase_enforce_tenant_rls();
