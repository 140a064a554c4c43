CREATE TABLE "telehealth_chat_messages" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"appointment_id" uuid NOT NULL,
	"sender_user_id" uuid NOT NULL,
	"sender_role" text NOT NULL,
	"client_message_id" text NOT NULL,
	"body" bytea NOT NULL,
	"sent_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "telehealth_chat_messages_client_key" UNIQUE("tenant_id","appointment_id","sender_user_id","client_message_id")
);
--> statement-breakpoint
CREATE TABLE "telehealth_chat_reads" (
	"tenant_id" uuid DEFAULT carebase_current_tenant(),
	"appointment_id" uuid,
	"user_id" uuid,
	"last_read_at" timestamp with time zone NOT NULL,
	CONSTRAINT "telehealth_chat_reads_pkey" PRIMARY KEY("tenant_id","appointment_id","user_id")
);
--> statement-breakpoint
CREATE TABLE "telehealth_vitals" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"appointment_id" uuid NOT NULL,
	"patient_id" uuid NOT NULL,
	"kind" text NOT NULL,
	"loinc" text NOT NULL,
	"value" numeric NOT NULL,
	"value2" numeric,
	"unit" text NOT NULL,
	"recorded_by" uuid,
	"recorded_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "telehealth_chat_messages_visit_idx" ON "telehealth_chat_messages" ("tenant_id","appointment_id","sent_at");--> statement-breakpoint
CREATE INDEX "telehealth_vitals_visit_idx" ON "telehealth_vitals" ("tenant_id","appointment_id","recorded_at");--> statement-breakpoint
ALTER TABLE "telehealth_chat_messages" ADD CONSTRAINT "telehealth_chat_messages_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "telehealth_chat_messages" ADD CONSTRAINT "telehealth_chat_messages_appointment_fkey" FOREIGN KEY ("tenant_id","appointment_id") REFERENCES "telehealth_appointments"("tenant_id","id");--> statement-breakpoint
ALTER TABLE "telehealth_chat_reads" ADD CONSTRAINT "telehealth_chat_reads_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "telehealth_chat_reads" ADD CONSTRAINT "telehealth_chat_reads_appointment_fkey" FOREIGN KEY ("tenant_id","appointment_id") REFERENCES "telehealth_appointments"("tenant_id","id");--> statement-breakpoint
ALTER TABLE "telehealth_vitals" ADD CONSTRAINT "telehealth_vitals_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "telehealth_vitals" ADD CONSTRAINT "telehealth_vitals_appointment_fkey" FOREIGN KEY ("tenant_id","appointment_id") REFERENCES "telehealth_appointments"("tenant_id","id");--> statement-breakpoint
-- ---------------------------------------------------------------- hand-written
-- a visit's chat and vitals are clinical record: never changed or deleted by the app (read receipts move forward)
REVOKE UPDATE, DELETE ON "telehealth_chat_messages", "telehealth_vitals" FROM carebase_app;
--> statement-breakpoint
REVOKE DELETE ON "telehealth_chat_reads" FROM carebase_app;
--> statement-breakpoint
ALTER TABLE "telehealth_vitals" ADD CONSTRAINT "telehealth_vitals_kind_check"
  CHECK ("kind" IN ('blood_pressure', 'heart_rate', 'temperature', 'spo2', 'respiratory_rate', 'weight', 'height'));
--> statement-breakpoint
SELECT carebase_enforce_tenant_rls();
