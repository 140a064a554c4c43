CREATE TABLE "outbox" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"seq" bigint GENERATED ALWAYS AS IDENTITY (sequence name "outbox_seq_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"type" text NOT NULL,
	"aggregate_id" text NOT NULL,
	"payload" jsonb DEFAULT '{}' NOT NULL,
	"rooms" text[] DEFAULT '{}'::text[] NOT NULL,
	"jobs" text[] DEFAULT '{}'::text[] NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"published_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "processed_jobs" (
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"queue" text,
	"job_id" text,
	"processed_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "processed_jobs_pkey" PRIMARY KEY("queue","job_id")
);
--> statement-breakpoint
CREATE INDEX "outbox_unpublished_idx" ON "outbox" ("seq") WHERE "published_at" is null;--> statement-breakpoint
CREATE INDEX "outbox_published_at_idx" ON "outbox" ("published_at") WHERE "published_at" is not null;--> statement-breakpoint
CREATE INDEX "processed_jobs_processed_at_idx" ON "processed_jobs" ("processed_at");--> statement-breakpoint
ALTER TABLE "outbox" ADD CONSTRAINT "outbox_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "processed_jobs" ADD CONSTRAINT "processed_jobs_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
-- ---- Outbox: the app role writes rows in its own tenant and never rewrites them.
REVOKE UPDATE, DELETE ON "outbox" FROM carebase_app;
--> statement-breakpoint
REVOKE UPDATE, DELETE ON "processed_jobs" FROM carebase_app;
--> statement-breakpoint
-- The relay must read every tenant's unpublished rows, but the app role is
-- subject to FORCE RLS (tenant_isolation). Rather than a setting any session
-- could flip (app.relay = on), cross-tenant access is granted only to the
-- owner (the role running this migration) through a policy, and the app role
-- reaches it only through the three SECURITY DEFINER functions below: claim a
-- batch of unpublished rows (ids only, locked FOR UPDATE SKIP LOCKED until the
-- caller's transaction ends), mark rows published, and purge old rows.
CREATE POLICY outbox_relay ON "outbox" TO CURRENT_USER USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY processed_jobs_retention ON "processed_jobs" TO CURRENT_USER USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE OR REPLACE FUNCTION carebase_outbox_claim(p_limit integer)
  RETURNS TABLE (id uuid, seq bigint, tenant_id uuid, type text, aggregate_id text, payload jsonb, rooms text[], jobs text[], created_at timestamptz)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    SELECT o.id, o.seq, o.tenant_id, o.type, o.aggregate_id, o.payload, o.rooms, o.jobs, o.created_at
      FROM outbox o
     WHERE o.published_at IS NULL
     ORDER BY o.seq
     LIMIT least(greatest(p_limit, 1), 5000)
       FOR UPDATE SKIP LOCKED
  $$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION carebase_outbox_ack(p_ids uuid[]) RETURNS integer
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    WITH done AS (
      UPDATE outbox SET published_at = now() WHERE id = ANY(p_ids) AND published_at IS NULL RETURNING 1
    ) SELECT count(*)::int FROM done
  $$;
--> statement-breakpoint
-- Deletes published outbox rows and processed-job markers older than the
-- retention (at most p_limit of each per call); returns rows deleted.
CREATE OR REPLACE FUNCTION carebase_outbox_purge(p_older_than interval, p_limit integer) RETURNS integer
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
  DECLARE n integer; m integer;
  BEGIN
    IF p_older_than < interval '1 hour' THEN
      RAISE EXCEPTION 'retention must be at least one hour';
    END IF;
    DELETE FROM outbox WHERE id IN (
      SELECT id FROM outbox WHERE published_at < now() - p_older_than ORDER BY published_at LIMIT p_limit);
    GET DIAGNOSTICS n = ROW_COUNT;
    DELETE FROM processed_jobs WHERE (queue, job_id) IN (
      SELECT queue, job_id FROM processed_jobs WHERE processed_at < now() - p_older_than ORDER BY processed_at LIMIT p_limit);
    GET DIAGNOSTICS m = ROW_COUNT;
    RETURN n + m;
  END $$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION carebase_outbox_claim(integer), carebase_outbox_ack(uuid[]), carebase_outbox_purge(interval, integer) FROM PUBLIC;
--> statement-breakpoint
GRANT EXECUTE ON FUNCTION carebase_outbox_claim(integer), carebase_outbox_ack(uuid[]), carebase_outbox_purge(interval, integer) TO carebase_app;
--> statement-breakpoint
-- ---- BullMQ's PostgreSQL backend (jobs without REDIS_URL) lives in schema
-- bullmq. Its own migrator creates the objects at boot, run as the owner; the
-- app role (which runs queues and workers) gets data access only.
CREATE SCHEMA IF NOT EXISTS bullmq;
--> statement-breakpoint
GRANT USAGE ON SCHEMA bullmq TO carebase_app;
--> statement-breakpoint
ALTER DEFAULT PRIVILEGES IN SCHEMA bullmq GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO carebase_app;
--> statement-breakpoint
ALTER DEFAULT PRIVILEGES IN SCHEMA bullmq GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO carebase_app;
--> statement-breakpoint
SELECT carebase_enforce_tenant_rls();
