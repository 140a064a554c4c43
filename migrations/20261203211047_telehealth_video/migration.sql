CREATE TABLE "telehealth_recordings" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"appointment_id" uuid NOT NULL,
	"egress_id" text NOT NULL,
	"status" text NOT NULL,
	"location" bytea,
	"started_by" uuid,
	"stopped_by" uuid,
	"started_at" timestamp with time zone NOT NULL,
	"ended_at" timestamp with time zone,
	"size_bytes" bigint,
	"duration_ms" bigint,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "telehealth_room_participants" (
	"tenant_id" uuid DEFAULT carebase_current_tenant(),
	"appointment_id" uuid,
	"participant_sid" text,
	"identity" text NOT NULL,
	"user_id" uuid,
	"role" text NOT NULL,
	"joined_at" timestamp with time zone,
	"left_at" timestamp with time zone,
	CONSTRAINT "telehealth_room_participants_pkey" PRIMARY KEY("tenant_id","appointment_id","participant_sid")
);
--> statement-breakpoint
CREATE TABLE "telehealth_video_rooms" (
	"tenant_id" uuid DEFAULT carebase_current_tenant(),
	"appointment_id" uuid,
	"room_name" text NOT NULL,
	"provider" text NOT NULL,
	"opened_at" timestamp with time zone DEFAULT now() NOT NULL,
	"room_started_at" timestamp with time zone,
	"room_finished_at" timestamp with time zone,
	"actual_start_at" timestamp with time zone,
	"actual_end_at" timestamp with time zone,
	"duration_seconds" integer,
	"last_event_at" timestamp with time zone,
	CONSTRAINT "telehealth_video_rooms_pkey" PRIMARY KEY("tenant_id","appointment_id")
);
--> statement-breakpoint
CREATE TABLE "telehealth_webhook_events" (
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"provider" text NOT NULL,
	"event_id" text NOT NULL,
	"event" text NOT NULL,
	"room_name" text,
	"appointment_id" uuid,
	"occurred_at" timestamp with time zone NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX "telehealth_recordings_egress_key" ON "telehealth_recordings" ("egress_id");--> statement-breakpoint
CREATE INDEX "telehealth_recordings_appointment_idx" ON "telehealth_recordings" ("tenant_id","appointment_id","started_at");--> statement-breakpoint
CREATE UNIQUE INDEX "telehealth_video_rooms_room_key" ON "telehealth_video_rooms" ("room_name");--> statement-breakpoint
CREATE UNIQUE INDEX "telehealth_webhook_events_event_key" ON "telehealth_webhook_events" ("provider","event_id");--> statement-breakpoint
CREATE INDEX "telehealth_webhook_events_appointment_idx" ON "telehealth_webhook_events" ("tenant_id","appointment_id","occurred_at");--> statement-breakpoint
ALTER TABLE "telehealth_recordings" ADD CONSTRAINT "telehealth_recordings_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "telehealth_recordings" ADD CONSTRAINT "telehealth_recordings_appointment_fkey" FOREIGN KEY ("tenant_id","appointment_id") REFERENCES "telehealth_appointments"("tenant_id","id");--> statement-breakpoint
ALTER TABLE "telehealth_room_participants" ADD CONSTRAINT "telehealth_room_participants_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "telehealth_room_participants" ADD CONSTRAINT "telehealth_room_participants_appointment_fkey" FOREIGN KEY ("tenant_id","appointment_id") REFERENCES "telehealth_appointments"("tenant_id","id");--> statement-breakpoint
ALTER TABLE "telehealth_video_rooms" ADD CONSTRAINT "telehealth_video_rooms_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "telehealth_video_rooms" ADD CONSTRAINT "telehealth_video_rooms_appointment_fkey" FOREIGN KEY ("tenant_id","appointment_id") REFERENCES "telehealth_appointments"("tenant_id","id");--> statement-breakpoint
ALTER TABLE "telehealth_webhook_events" ADD CONSTRAINT "telehealth_webhook_events_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
-- ---------------------------------------------------------------- hand-written
ALTER TABLE "telehealth_recordings" ADD CONSTRAINT "telehealth_recordings_status_check"
  CHECK ("status" IN ('starting', 'active', 'ending', 'complete', 'failed', 'aborted'));
--> statement-breakpoint
ALTER TABLE "telehealth_room_participants" ADD CONSTRAINT "telehealth_room_participants_role_check" CHECK ("role" IN ('provider', 'patient', 'other'));
--> statement-breakpoint
ALTER TABLE "telehealth_video_rooms" ADD CONSTRAINT "telehealth_video_rooms_provider_check" CHECK ("provider" IN ('livekit', 'development'));
--> statement-breakpoint
-- the webhook's only cross-tenant read: which tenant and visit a provider room belongs to (a webhook arrives without
-- a tenant). The owner reads appointments through its own SELECT policy; the app role only through this function.
CREATE POLICY telehealth_appointments_owner_lookup ON "telehealth_appointments" FOR SELECT TO CURRENT_USER USING (true);
--> statement-breakpoint
CREATE OR REPLACE FUNCTION telehealth_room_lookup(p_room text) RETURNS TABLE (tenant_id uuid, appointment_id uuid)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$ SELECT a.tenant_id, a.id FROM telehealth_appointments a WHERE a.room_name = p_room $$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION telehealth_room_lookup(text) FROM PUBLIC;
--> statement-breakpoint
GRANT EXECUTE ON FUNCTION telehealth_room_lookup(text) TO carebase_app;
--> statement-breakpoint
-- received webhooks are a log: never changed or deleted by the app; recordings and rooms are kept
REVOKE UPDATE, DELETE ON "telehealth_webhook_events" FROM carebase_app;
--> statement-breakpoint
REVOKE DELETE ON "telehealth_recordings", "telehealth_video_rooms", "telehealth_room_participants" FROM carebase_app;
--> statement-breakpoint
SELECT carebase_enforce_tenant_rls();
