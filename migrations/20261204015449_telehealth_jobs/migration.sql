CREATE TABLE "telehealth_reminders" (
	"tenant_id" uuid DEFAULT carebase_current_tenant(),
	"appointment_id" uuid,
	"offset_minutes" integer,
	"channel" text NOT NULL,
	"sent_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "telehealth_reminders_pkey" PRIMARY KEY("tenant_id","appointment_id","offset_minutes")
);
--> statement-breakpoint
ALTER TABLE "telehealth_video_rooms" ADD COLUMN "closed_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "telehealth_reminders" ADD CONSTRAINT "telehealth_reminders_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "telehealth_reminders" ADD CONSTRAINT "telehealth_reminders_appointment_fkey" FOREIGN KEY ("tenant_id","appointment_id") REFERENCES "telehealth_appointments"("tenant_id","id");--> statement-breakpoint
-- ---------------------------------------------------------------- hand-written
-- the telehealth sweep's only cross-tenant read: which tenants have reminders due, visits past the no-show grace, or
-- video rooms of finished visits still open (the owner reads through its own SELECT policies; the app role only
-- through this function, which returns tenant ids and nothing else)
CREATE POLICY telehealth_reminders_owner_lookup ON "telehealth_reminders" FOR SELECT TO CURRENT_USER USING (true);
--> statement-breakpoint
CREATE POLICY telehealth_video_rooms_owner_lookup ON "telehealth_video_rooms" FOR SELECT TO CURRENT_USER USING (true);
--> statement-breakpoint
CREATE OR REPLACE FUNCTION telehealth_due_tenants(p_now timestamptz, p_offsets integer[], p_noshow_before timestamptz, p_limit integer)
  RETURNS TABLE (tenant_id uuid)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    SELECT a.tenant_id FROM telehealth_appointments a
     WHERE a.status = 'scheduled' AND a.starts_at > p_now
       AND EXISTS (SELECT 1 FROM unnest(p_offsets) o
                    WHERE a.starts_at - make_interval(mins => o) <= p_now
                      AND NOT EXISTS (SELECT 1 FROM telehealth_reminders r
                                       WHERE r.tenant_id = a.tenant_id AND r.appointment_id = a.id AND r.offset_minutes = o))
    UNION
    SELECT a.tenant_id FROM telehealth_appointments a
     WHERE a.status IN ('scheduled', 'checked_in', 'waiting') AND a.starts_at <= p_noshow_before
    UNION
    SELECT v.tenant_id FROM telehealth_video_rooms v
      JOIN telehealth_appointments a ON a.tenant_id = v.tenant_id AND a.id = v.appointment_id
     WHERE v.closed_at IS NULL AND a.status IN ('completed', 'cancelled', 'no_show')
    LIMIT p_limit
  $$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION telehealth_due_tenants(timestamptz, integer[], timestamptz, integer) FROM PUBLIC;
--> statement-breakpoint
GRANT EXECUTE ON FUNCTION telehealth_due_tenants(timestamptz, integer[], timestamptz, integer) TO carebase_app;
--> statement-breakpoint
-- reminders sent are a log: never changed or deleted by the app
REVOKE UPDATE, DELETE ON "telehealth_reminders" FROM carebase_app;
--> statement-breakpoint
SELECT carebase_enforce_tenant_rls();
