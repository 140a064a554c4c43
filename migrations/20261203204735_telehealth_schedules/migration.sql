CREATE TABLE "telehealth_appointment_transitions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"appointment_id" uuid NOT NULL,
	"from_status" text,
	"to_status" text NOT NULL,
	"action" text NOT NULL,
	"actor" text NOT NULL,
	"previous_starts_at" timestamp with time zone,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "telehealth_appointments" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"patient_id" uuid NOT NULL,
	"provider_id" uuid NOT NULL,
	"visit_type_id" uuid NOT NULL,
	"modality" text NOT NULL,
	"starts_at" timestamp with time zone NOT NULL,
	"ends_at" timestamp with time zone NOT NULL,
	"blocked_until" timestamp with time zone NOT NULL,
	"status" text DEFAULT 'scheduled' NOT NULL,
	"reason" text,
	"room_name" text,
	"booked_by" uuid,
	"booked_time_zone" text,
	"checked_in_at" timestamp with time zone,
	"waiting_since" timestamp with time zone,
	"admitted_at" timestamp with time zone,
	"completed_at" timestamp with time zone,
	"cancelled_at" timestamp with time zone,
	"cancelled_by" uuid,
	"cancel_reason" text,
	"no_show_at" timestamp with time zone,
	"late_by_minutes" integer,
	"late_notice_at" timestamp with time zone,
	"reschedule_count" integer DEFAULT 0 NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "telehealth_appointments_tenant_id_id_key" UNIQUE("tenant_id","id"),
	CONSTRAINT "telehealth_appointments_range_check" CHECK ("starts_at" < "ends_at" and "ends_at" <= "blocked_until"),
	CONSTRAINT "telehealth_appointments_cancel_check" CHECK (("status" = 'cancelled') = ("cancelled_at" is not null))
);
--> statement-breakpoint
CREATE TABLE "telehealth_availability_exceptions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"provider_id" uuid,
	"date" date NOT NULL,
	"kind" text NOT NULL,
	"start_time" time,
	"end_time" time,
	"label" text,
	"created_by" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "telehealth_exceptions_times_check" CHECK (("start_time" is null) = ("end_time" is null) and ("start_time" is null or "start_time" < "end_time")),
	CONSTRAINT "telehealth_exceptions_available_check" CHECK ("kind" = 'unavailable' or ("start_time" is not null and "provider_id" is not null))
);
--> statement-breakpoint
CREATE TABLE "telehealth_provider_schedules" (
	"tenant_id" uuid DEFAULT carebase_current_tenant(),
	"provider_id" uuid,
	"time_zone" text NOT NULL,
	"updated_by" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "telehealth_provider_schedules_pkey" PRIMARY KEY("tenant_id","provider_id")
);
--> statement-breakpoint
CREATE TABLE "telehealth_visit_types" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"code" text NOT NULL,
	"name" text NOT NULL,
	"duration_minutes" integer NOT NULL,
	"modality" text NOT NULL,
	"buffer_minutes" integer DEFAULT 0 NOT NULL,
	"active" boolean DEFAULT true NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "telehealth_visit_types_tenant_code_key" UNIQUE("tenant_id","code"),
	CONSTRAINT "telehealth_visit_types_tenant_id_id_key" UNIQUE("tenant_id","id"),
	CONSTRAINT "telehealth_visit_types_duration_check" CHECK ("duration_minutes" between 5 and 480),
	CONSTRAINT "telehealth_visit_types_buffer_check" CHECK ("buffer_minutes" between 0 and 240)
);
--> statement-breakpoint
CREATE TABLE "telehealth_weekly_hours" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"provider_id" uuid NOT NULL,
	"weekday" smallint NOT NULL,
	"start_time" time NOT NULL,
	"end_time" time NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "telehealth_weekly_hours_weekday_check" CHECK ("weekday" between 1 and 7),
	CONSTRAINT "telehealth_weekly_hours_range_check" CHECK ("start_time" < "end_time")
);
--> statement-breakpoint
CREATE INDEX "telehealth_transitions_appointment_idx" ON "telehealth_appointment_transitions" ("tenant_id","appointment_id","at");--> statement-breakpoint
CREATE UNIQUE INDEX "telehealth_appointments_room_key" ON "telehealth_appointments" ("room_name") WHERE "room_name" is not null;--> statement-breakpoint
CREATE INDEX "telehealth_appointments_provider_idx" ON "telehealth_appointments" ("tenant_id","provider_id","starts_at");--> statement-breakpoint
CREATE INDEX "telehealth_appointments_patient_idx" ON "telehealth_appointments" ("tenant_id","patient_id","starts_at");--> statement-breakpoint
CREATE INDEX "telehealth_appointments_queue_idx" ON "telehealth_appointments" ("tenant_id","provider_id","status","waiting_since");--> statement-breakpoint
CREATE INDEX "telehealth_exceptions_date_idx" ON "telehealth_availability_exceptions" ("tenant_id","date");--> statement-breakpoint
CREATE INDEX "telehealth_weekly_hours_provider_idx" ON "telehealth_weekly_hours" ("tenant_id","provider_id","weekday");--> statement-breakpoint
ALTER TABLE "telehealth_appointment_transitions" ADD CONSTRAINT "telehealth_appointment_transitions_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "telehealth_appointment_transitions" ADD CONSTRAINT "telehealth_transitions_appointment_fkey" FOREIGN KEY ("tenant_id","appointment_id") REFERENCES "telehealth_appointments"("tenant_id","id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "telehealth_appointments" ADD CONSTRAINT "telehealth_appointments_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "telehealth_appointments" ADD CONSTRAINT "telehealth_appointments_visit_type_fkey" FOREIGN KEY ("tenant_id","visit_type_id") REFERENCES "telehealth_visit_types"("tenant_id","id");--> statement-breakpoint
ALTER TABLE "telehealth_availability_exceptions" ADD CONSTRAINT "telehealth_availability_exceptions_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "telehealth_provider_schedules" ADD CONSTRAINT "telehealth_provider_schedules_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "telehealth_visit_types" ADD CONSTRAINT "telehealth_visit_types_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "telehealth_weekly_hours" ADD CONSTRAINT "telehealth_weekly_hours_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "telehealth_weekly_hours" ADD CONSTRAINT "telehealth_weekly_hours_schedule_fkey" FOREIGN KEY ("tenant_id","provider_id") REFERENCES "telehealth_provider_schedules"("tenant_id","provider_id") ON DELETE CASCADE;--> statement-breakpoint
-- ---------------------------------------------------------------- hand-written
-- no double booking: the provider's time taken by an appointment is [starts_at, blocked_until) (the visit and its
-- buffer); two such ranges of one provider may not overlap, whatever the concurrency. Cancelled and no-show
-- appointments free their time. btree_gist lets the gist index compare tenant_id and provider_id with =.
CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;
--> statement-breakpoint
ALTER TABLE "telehealth_appointments" ADD CONSTRAINT "telehealth_appointments_no_overlap"
  EXCLUDE USING gist ("tenant_id" WITH =, "provider_id" WITH =, tstzrange("starts_at", "blocked_until", '[)') WITH &&)
  WHERE ("status" NOT IN ('cancelled', 'no_show'));
--> statement-breakpoint
ALTER TABLE "telehealth_appointments" ADD CONSTRAINT "telehealth_appointments_status_check"
  CHECK ("status" IN ('scheduled', 'checked_in', 'waiting', 'in_progress', 'completed', 'cancelled', 'no_show'));
--> statement-breakpoint
ALTER TABLE "telehealth_appointments" ADD CONSTRAINT "telehealth_appointments_modality_check" CHECK ("modality" IN ('video', 'in_person'));
--> statement-breakpoint
ALTER TABLE "telehealth_visit_types" ADD CONSTRAINT "telehealth_visit_types_modality_check" CHECK ("modality" IN ('video', 'in_person'));
--> statement-breakpoint
ALTER TABLE "telehealth_availability_exceptions" ADD CONSTRAINT "telehealth_exceptions_kind_check" CHECK ("kind" IN ('unavailable', 'available'));
--> statement-breakpoint
-- the tenant's own patient and provider (composite keys: another tenant's id cannot be referenced)
ALTER TABLE "telehealth_appointments" ADD CONSTRAINT "telehealth_appointments_patient_fkey"
  FOREIGN KEY ("tenant_id", "patient_id") REFERENCES "patients" ("tenant_id", "id");
--> statement-breakpoint
ALTER TABLE "telehealth_appointments" ADD CONSTRAINT "telehealth_appointments_provider_fkey"
  FOREIGN KEY ("tenant_id", "provider_id") REFERENCES "users" ("tenant_id", "id");
--> statement-breakpoint
ALTER TABLE "telehealth_provider_schedules" ADD CONSTRAINT "telehealth_provider_schedules_provider_fkey"
  FOREIGN KEY ("tenant_id", "provider_id") REFERENCES "users" ("tenant_id", "id");
--> statement-breakpoint
ALTER TABLE "telehealth_availability_exceptions" ADD CONSTRAINT "telehealth_exceptions_provider_fkey"
  FOREIGN KEY ("tenant_id", "provider_id") REFERENCES "users" ("tenant_id", "id");
--> statement-breakpoint
-- what the app role may not do (default privileges grant SELECT/INSERT/UPDATE/DELETE): appointments, visit types and
-- the history are never deleted (cancel, retire); the history is append-only
REVOKE DELETE ON "telehealth_appointments", "telehealth_visit_types", "telehealth_appointment_transitions" FROM carebase_app;
--> statement-breakpoint
REVOKE UPDATE ON "telehealth_appointment_transitions" FROM carebase_app;
--> statement-breakpoint
-- ENABLE + FORCE row level security and the tenant_isolation policy on every table with tenant_id
SELECT carebase_enforce_tenant_rls();
