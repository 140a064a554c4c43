CREATE TABLE "telehealth_annotations" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"document_id" uuid NOT NULL,
	"appointment_id" uuid NOT NULL,
	"patient_id" uuid NOT NULL,
	"author_id" uuid NOT NULL,
	"shapes" jsonb NOT NULL,
	"note" bytea,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"removed_at" timestamp with time zone,
	"removed_by" uuid
);
--> statement-breakpoint
CREATE TABLE "telehealth_documents" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"appointment_id" uuid NOT NULL,
	"patient_id" uuid NOT NULL,
	"uploaded_by" uuid NOT NULL,
	"uploader_role" text NOT NULL,
	"file_name" bytea NOT NULL,
	"description" bytea,
	"content_type" text NOT NULL,
	"size_bytes" integer NOT NULL,
	"sha256" text NOT NULL,
	"blob_key" text NOT NULL,
	"width" integer,
	"height" integer,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "telehealth_documents_tenant_id_id_key" UNIQUE("tenant_id","id"),
	CONSTRAINT "telehealth_documents_size_check" CHECK ("size_bytes" > 0)
);
--> statement-breakpoint
CREATE TABLE "telehealth_visit_summaries" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"appointment_id" uuid NOT NULL,
	"patient_id" uuid NOT NULL,
	"body" bytea NOT NULL,
	"follow_up" bytea,
	"author_id" uuid NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "telehealth_visit_summaries_visit_key" UNIQUE("tenant_id","appointment_id")
);
--> statement-breakpoint
CREATE INDEX "telehealth_annotations_document_idx" ON "telehealth_annotations" ("tenant_id","document_id","created_at");--> statement-breakpoint
CREATE INDEX "telehealth_documents_visit_idx" ON "telehealth_documents" ("tenant_id","appointment_id","created_at");--> statement-breakpoint
ALTER TABLE "telehealth_annotations" ADD CONSTRAINT "telehealth_annotations_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "telehealth_annotations" ADD CONSTRAINT "telehealth_annotations_document_fkey" FOREIGN KEY ("tenant_id","document_id") REFERENCES "telehealth_documents"("tenant_id","id");--> statement-breakpoint
ALTER TABLE "telehealth_documents" ADD CONSTRAINT "telehealth_documents_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "telehealth_documents" ADD CONSTRAINT "telehealth_documents_appointment_fkey" FOREIGN KEY ("tenant_id","appointment_id") REFERENCES "telehealth_appointments"("tenant_id","id");--> statement-breakpoint
ALTER TABLE "telehealth_visit_summaries" ADD CONSTRAINT "telehealth_visit_summaries_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "telehealth_visit_summaries" ADD CONSTRAINT "telehealth_visit_summaries_appointment_fkey" FOREIGN KEY ("tenant_id","appointment_id") REFERENCES "telehealth_appointments"("tenant_id","id");--> statement-breakpoint
ALTER TABLE "telehealth_annotations" ADD CONSTRAINT "telehealth_annotations_shapes_check" CHECK (jsonb_typeof("shapes") = 'array');
--> statement-breakpoint
SELECT carebase_enforce_tenant_rls();
