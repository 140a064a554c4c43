CREATE TABLE "audit_chain_heads" (
	"tenant_id" uuid PRIMARY KEY DEFAULT carebase_current_tenant(),
	"seq" bigint DEFAULT 0 NOT NULL,
	"hash" bytea NOT NULL,
	"anchor_seq" bigint DEFAULT 0 NOT NULL,
	"anchor_hash" bytea NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
-- audit_events is partitioned by month on "at" (PARTITION BY added by hand below drizzle-kit's output).
CREATE TABLE "audit_events" (
	"id" uuid,
	"tenant_id" uuid DEFAULT carebase_current_tenant(),
	"at" timestamp with time zone,
	"seq" bigint NOT NULL,
	"prev_hash" bytea NOT NULL,
	"hash" bytea NOT NULL,
	"event_type" text NOT NULL,
	"actor_type" text NOT NULL,
	"actor_id" text,
	"actor_roles" text[] DEFAULT '{}'::text[] NOT NULL,
	"session_id" text,
	"patient_id" uuid,
	"resource_type" text,
	"resource_id" text,
	"fields" text[] DEFAULT '{}'::text[] NOT NULL,
	"categories" text[] DEFAULT '{}'::text[] NOT NULL,
	"action" text NOT NULL,
	"outcome" text NOT NULL,
	"purpose_of_use" text,
	"request_id" text,
	"ip" text,
	"user_agent" text,
	"operation_name" text,
	"detail" jsonb DEFAULT '{}' NOT NULL,
	CONSTRAINT "audit_events_pkey" PRIMARY KEY("tenant_id","at","id")
) PARTITION BY RANGE ("at");
--> statement-breakpoint
CREATE TABLE "audit_alerts" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"rule" text NOT NULL,
	"severity" text NOT NULL,
	"actor_id" text,
	"patient_id" uuid,
	"window_start" timestamp with time zone NOT NULL,
	"window_end" timestamp with time zone NOT NULL,
	"event_count" integer NOT NULL,
	"detail" jsonb DEFAULT '{}' NOT NULL,
	"status" text DEFAULT 'open' NOT NULL,
	"acknowledged_by" text,
	"acknowledged_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "audit_alerts_window_key" UNIQUE NULLS NOT DISTINCT("tenant_id","rule","actor_id","patient_id","window_start")
);
--> statement-breakpoint
CREATE TABLE "audit_anomaly_state" (
	"tenant_id" uuid PRIMARY KEY DEFAULT carebase_current_tenant(),
	"checked_until" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "audit_inbox" (
	"security_event_id" uuid PRIMARY KEY,
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "audit_patient_flags" (
	"tenant_id" uuid DEFAULT carebase_current_tenant(),
	"patient_id" uuid,
	"flag" text NOT NULL,
	"set_by" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "audit_patient_flags_pkey" PRIMARY KEY("tenant_id","patient_id")
);
--> statement-breakpoint
CREATE INDEX "audit_events_patient_idx" ON "audit_events" ("tenant_id","patient_id","at","id") WHERE "patient_id" is not null;--> statement-breakpoint
CREATE INDEX "audit_events_actor_idx" ON "audit_events" ("tenant_id","actor_id","at","id");--> statement-breakpoint
CREATE INDEX "audit_events_action_idx" ON "audit_events" ("tenant_id","action","at","id");--> statement-breakpoint
CREATE INDEX "audit_events_purpose_idx" ON "audit_events" ("tenant_id","purpose_of_use","at","id");--> statement-breakpoint
CREATE INDEX "audit_events_denied_idx" ON "audit_events" ("tenant_id","at","id") WHERE "outcome" = 'denied';--> statement-breakpoint
CREATE INDEX "audit_events_break_glass_idx" ON "audit_events" ("tenant_id","at","id") WHERE "action" = 'break-glass' or "purpose_of_use" = 'ETREAT';--> statement-breakpoint
CREATE INDEX "audit_events_chain_idx" ON "audit_events" ("tenant_id","seq");--> statement-breakpoint
CREATE INDEX "audit_alerts_list_idx" ON "audit_alerts" ("tenant_id","status","created_at","id");--> statement-breakpoint
CREATE INDEX "audit_inbox_tenant_idx" ON "audit_inbox" ("tenant_id","created_at");--> statement-breakpoint
ALTER TABLE "audit_chain_heads" ADD CONSTRAINT "audit_chain_heads_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "audit_events" ADD CONSTRAINT "audit_events_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "audit_alerts" ADD CONSTRAINT "audit_alerts_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "audit_anomaly_state" ADD CONSTRAINT "audit_anomaly_state_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "audit_inbox" ADD CONSTRAINT "audit_inbox_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "audit_patient_flags" ADD CONSTRAINT "audit_patient_flags_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
-- ======================================================================
-- Hand-written: audit log partitions, tamper resistance, chain access.
-- ======================================================================
-- Monthly partitions live in their own schema: the app role has no USAGE on
-- it, so the only way to the rows is the parent, where RLS and the grants
-- below apply (a partition would otherwise get the public schema's default
-- grants and bypass the parent's RLS).
CREATE SCHEMA IF NOT EXISTS audit_partitions;
--> statement-breakpoint
REVOKE ALL ON SCHEMA audit_partitions FROM PUBLIC;
--> statement-breakpoint
-- Refuses any change to an audit row, for every role (the owner included;
-- only disabling the trigger, an owner-only DDL, gets past it).
CREATE OR REPLACE FUNCTION carebase_audit_append_only() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
--> statement-breakpoint
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON "audit_events"
  FOR EACH ROW EXECUTE FUNCTION carebase_audit_append_only();
--> statement-breakpoint
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON "audit_events"
  FOR EACH STATEMENT EXECUTE FUNCTION carebase_audit_append_only();
--> statement-breakpoint
-- Creates the monthly partitions from last month to p_months_ahead months
-- ahead (UTC months) that do not exist yet; returns how many it created.
-- Called by this migration, at boot, daily by the audit module, and on an
-- insert that found no partition. Each partition gets RLS (not forced: the
-- owner's retention function must read it), no grants, and the TRUNCATE
-- guard (row triggers are cloned from the parent automatically).
CREATE OR REPLACE FUNCTION carebase_audit_ensure_partitions(p_months_ahead integer) RETURNS integer
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
DECLARE
  base timestamp := date_trunc('month', now() AT TIME ZONE 'UTC');
  m timestamp;
  part text;
  created integer := 0;
BEGIN
  IF p_months_ahead < 0 OR p_months_ahead > 24 THEN
    RAISE EXCEPTION 'months ahead must be between 0 and 24';
  END IF;
  PERFORM pg_advisory_xact_lock(7264011301);
  FOR i IN -1 .. p_months_ahead LOOP
    m := base + make_interval(months => i);
    part := 'audit_events_' || to_char(m, 'YYYYMM');
    IF to_regclass(format('audit_partitions.%I', part)) IS NULL THEN
      EXECUTE format('CREATE TABLE audit_partitions.%I PARTITION OF public.audit_events FOR VALUES FROM (%L) TO (%L)',
        part, to_char(m, 'YYYY-MM-DD') || ' 00:00:00+00', to_char(m + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00');
      EXECUTE format('REVOKE ALL ON audit_partitions.%I FROM PUBLIC, carebase_app', part);
      EXECUTE format('ALTER TABLE audit_partitions.%I ENABLE ROW LEVEL SECURITY', part);
      EXECUTE format('CREATE POLICY tenant_isolation ON audit_partitions.%I USING (tenant_id = carebase_current_tenant()) WITH CHECK (tenant_id = carebase_current_tenant())', part);
      EXECUTE format('CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_partitions.%I FOR EACH STATEMENT EXECUTE FUNCTION public.carebase_audit_append_only()', part);
      created := created + 1;
    END IF;
  END LOOP;
  RETURN created;
END $$;
--> statement-breakpoint
-- Retention (6 years, HIPAA 164.316(b)(2)): drops whole monthly partitions
-- that end before p_before, which must be at least six years ago. Before a
-- partition goes, each tenant's chain anchor moves to the last dropped row so
-- verification starts where the retained log starts. Owner only (not granted
-- to the app role); see docs/compliance.md.
CREATE OR REPLACE FUNCTION carebase_audit_drop_partitions_before(p_before timestamptz) RETURNS integer
  LANGUAGE plpgsql VOLATILE SET search_path = public, pg_temp
  AS $$
DECLARE
  p record;
  dropped integer := 0;
BEGIN
  IF p_before > now() - interval '6 years' THEN
    RAISE EXCEPTION 'audit events are retained for six years: refusing to drop partitions before %', p_before;
  END IF;
  PERFORM pg_advisory_xact_lock(7264011301);
  FOR p IN
    SELECT c.oid::regclass AS rel, (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper_bound
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'public.audit_events'::regclass
     ORDER BY 2
  LOOP
    CONTINUE WHEN p.upper_bound IS NULL OR p.upper_bound > p_before;
    EXECUTE format(
      'UPDATE audit_chain_heads h SET anchor_seq = d.seq, anchor_hash = d.hash
         FROM (SELECT DISTINCT ON (tenant_id) tenant_id, seq, hash FROM %s ORDER BY tenant_id, seq DESC) d
        WHERE h.tenant_id = d.tenant_id AND d.seq > h.anchor_seq', p.rel);
    EXECUTE format('ALTER TABLE public.audit_events DETACH PARTITION %s', p.rel);
    EXECUTE format('DROP TABLE %s', p.rel);
    dropped := dropped + 1;
  END LOOP;
  RETURN dropped;
END $$;
--> statement-breakpoint
-- Tenants whose audit log changed since p_since (the anomaly check and the
-- verifier walk tenants; the app role cannot list them through RLS).
CREATE OR REPLACE FUNCTION carebase_audit_active_tenants(p_since timestamptz) RETURNS SETOF uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$ SELECT tenant_id FROM audit_chain_heads WHERE updated_at >= p_since ORDER BY tenant_id $$;
--> statement-breakpoint
-- Tenants with security events waiting in the inbox.
CREATE OR REPLACE FUNCTION carebase_audit_inbox_tenants() RETURNS SETOF uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$ SELECT DISTINCT tenant_id FROM audit_inbox ORDER BY tenant_id $$;
--> statement-breakpoint
-- Cross-tenant reads only for the owner (the functions above and the
-- audit:verify CLI), never for the app role.
CREATE POLICY audit_chain_heads_owner ON "audit_chain_heads" TO CURRENT_USER USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY audit_inbox_owner ON "audit_inbox" TO CURRENT_USER USING (true) WITH CHECK (true);
--> statement-breakpoint
REVOKE ALL ON FUNCTION carebase_audit_ensure_partitions(integer), carebase_audit_drop_partitions_before(timestamptz),
  carebase_audit_active_tenants(timestamptz), carebase_audit_inbox_tenants() FROM PUBLIC;
--> statement-breakpoint
GRANT EXECUTE ON FUNCTION carebase_audit_ensure_partitions(integer), carebase_audit_active_tenants(timestamptz), carebase_audit_inbox_tenants() TO carebase_app;
--> statement-breakpoint
-- The app role appends and reads audit events; it never changes them.
REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON "audit_events" FROM carebase_app;
--> statement-breakpoint
GRANT SELECT, INSERT ON "audit_events" TO carebase_app;
--> statement-breakpoint
REVOKE DELETE, TRUNCATE ON "audit_chain_heads" FROM carebase_app;
--> statement-breakpoint
REVOKE UPDATE, DELETE, TRUNCATE ON "audit_patient_flags" FROM carebase_app;
--> statement-breakpoint
GRANT DELETE ON "audit_patient_flags" TO carebase_app;
--> statement-breakpoint
REVOKE DELETE, TRUNCATE ON "audit_alerts" FROM carebase_app;
--> statement-breakpoint
REVOKE UPDATE ON "audit_inbox" FROM carebase_app;
--> statement-breakpoint
-- Identity's security events flow into the audit log: each insert queues its
-- id in the same transaction; the audit module drains the queue into the
-- hash chain (see src/modules/audit/security-events.ts).
CREATE OR REPLACE FUNCTION carebase_audit_queue_security_event() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit_inbox (security_event_id, tenant_id) VALUES (NEW.id, NEW.tenant_id);
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER security_events_to_audit AFTER INSERT ON "security_events"
  FOR EACH ROW EXECUTE FUNCTION carebase_audit_queue_security_event();
--> statement-breakpoint
SELECT carebase_audit_ensure_partitions(3);
--> statement-breakpoint
SELECT carebase_enforce_tenant_rls();
