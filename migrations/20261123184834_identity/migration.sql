CREATE TABLE "auth_lockouts" (
	"key" text PRIMARY KEY,
	"scope" text NOT NULL,
	"failures" integer DEFAULT 0 NOT NULL,
	"last_failure_at" timestamp with time zone NOT NULL,
	"locked_until" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "invitations" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"user_id" uuid NOT NULL,
	"token_hash" bytea NOT NULL,
	"created_by" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"accepted_at" timestamp with time zone,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "mfa_challenges" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"user_id" uuid NOT NULL,
	"token_hash" bytea NOT NULL,
	"purpose" text NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"consumed_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "recovery_codes" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"user_id" uuid NOT NULL,
	"code_hash" bytea NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"used_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "refresh_tokens" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"session_id" uuid NOT NULL,
	"token_hash" bytea NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"used_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "security_events" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"type" text NOT NULL,
	"user_id" uuid,
	"actor_id" uuid,
	"session_id" uuid,
	"ip" text,
	"details" jsonb DEFAULT '{}' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "sessions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"user_id" uuid NOT NULL,
	"amr" text[] DEFAULT '{}'::text[] NOT NULL,
	"ip" text,
	"user_agent" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"revoked_at" timestamp with time zone,
	"revoked_reason" text,
	CONSTRAINT "sessions_tenant_id_id_key" UNIQUE("tenant_id","id")
);
--> statement-breakpoint
CREATE TABLE "auth_signing_keys" (
	"kid" text PRIMARY KEY,
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"alg" text NOT NULL,
	"public_jwk" jsonb NOT NULL,
	"private_key" bytea NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"retires_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "user_totp" (
	"user_id" uuid PRIMARY KEY,
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"secret" bytea NOT NULL,
	"confirmed_at" timestamp with time zone,
	"last_used_step" bigint,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "users" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"email" text NOT NULL,
	"display_name" text NOT NULL,
	"roles" text[] DEFAULT '{}'::text[] NOT NULL,
	"status" text DEFAULT 'invited' NOT NULL,
	"password_hash" text,
	"password_changed_at" timestamp with time zone,
	"last_login_at" timestamp with time zone,
	"invited_by" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "users_tenant_id_id_key" UNIQUE("tenant_id","id")
);
--> statement-breakpoint
CREATE UNIQUE INDEX "invitations_token_hash_key" ON "invitations" ("token_hash");--> statement-breakpoint
CREATE INDEX "invitations_user_idx" ON "invitations" ("tenant_id","user_id");--> statement-breakpoint
CREATE UNIQUE INDEX "mfa_challenges_token_hash_key" ON "mfa_challenges" ("token_hash");--> statement-breakpoint
CREATE INDEX "recovery_codes_user_idx" ON "recovery_codes" ("tenant_id","user_id");--> statement-breakpoint
CREATE UNIQUE INDEX "refresh_tokens_token_hash_key" ON "refresh_tokens" ("token_hash");--> statement-breakpoint
CREATE INDEX "refresh_tokens_session_idx" ON "refresh_tokens" ("tenant_id","session_id");--> statement-breakpoint
CREATE INDEX "security_events_tenant_created_idx" ON "security_events" ("tenant_id","created_at");--> statement-breakpoint
CREATE INDEX "security_events_user_idx" ON "security_events" ("tenant_id","user_id");--> statement-breakpoint
CREATE INDEX "sessions_user_idx" ON "sessions" ("tenant_id","user_id");--> statement-breakpoint
CREATE INDEX "auth_signing_keys_expires_idx" ON "auth_signing_keys" ("expires_at");--> statement-breakpoint
CREATE UNIQUE INDEX "users_tenant_email_key" ON "users" ("tenant_id",lower("email"));--> statement-breakpoint
ALTER TABLE "invitations" ADD CONSTRAINT "invitations_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "invitations" ADD CONSTRAINT "invitations_user_fkey" FOREIGN KEY ("tenant_id","user_id") REFERENCES "users"("tenant_id","id");--> statement-breakpoint
ALTER TABLE "mfa_challenges" ADD CONSTRAINT "mfa_challenges_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "mfa_challenges" ADD CONSTRAINT "mfa_challenges_user_fkey" FOREIGN KEY ("tenant_id","user_id") REFERENCES "users"("tenant_id","id");--> statement-breakpoint
ALTER TABLE "recovery_codes" ADD CONSTRAINT "recovery_codes_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "recovery_codes" ADD CONSTRAINT "recovery_codes_user_fkey" FOREIGN KEY ("tenant_id","user_id") REFERENCES "users"("tenant_id","id");--> statement-breakpoint
ALTER TABLE "refresh_tokens" ADD CONSTRAINT "refresh_tokens_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "refresh_tokens" ADD CONSTRAINT "refresh_tokens_session_fkey" FOREIGN KEY ("tenant_id","session_id") REFERENCES "sessions"("tenant_id","id");--> statement-breakpoint
ALTER TABLE "security_events" ADD CONSTRAINT "security_events_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "sessions" ADD CONSTRAINT "sessions_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "sessions" ADD CONSTRAINT "sessions_user_fkey" FOREIGN KEY ("tenant_id","user_id") REFERENCES "users"("tenant_id","id");--> statement-breakpoint
ALTER TABLE "auth_signing_keys" ADD CONSTRAINT "auth_signing_keys_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "user_totp" ADD CONSTRAINT "user_totp_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "user_totp" ADD CONSTRAINT "user_totp_user_fkey" FOREIGN KEY ("tenant_id","user_id") REFERENCES "users"("tenant_id","id");--> statement-breakpoint
ALTER TABLE "users" ADD CONSTRAINT "users_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
-- ---- Identity: hand-written part.
-- The platform tenant: holds platform administrators (role PLATFORM_ADMIN),
-- the JWT signing keys and platform-level security events (key rotation).
SELECT set_config('app.tenant_id', '00000000-0000-4000-8000-000000000001', false);
--> statement-breakpoint
INSERT INTO "tenants" ("id", "slug", "name", "plan") VALUES ('00000000-0000-4000-8000-000000000001', 'platform', 'Carebase platform', 'platform') ON CONFLICT DO NOTHING;
--> statement-breakpoint
SELECT set_config('app.tenant_id', '', false);
--> statement-breakpoint
-- Login resolves a tenant slug before it has a tenant context. The app role
-- sees only its own tenant row (tenant_self), so the lookup runs as the
-- owner, which gets read access to every tenant row through this policy
-- (the owner is subject to FORCE RLS too), and only through the function.
CREATE POLICY tenant_owner_lookup ON "tenants" FOR SELECT TO CURRENT_USER USING (true);
--> statement-breakpoint
CREATE OR REPLACE FUNCTION carebase_tenant_by_slug(p_slug text) RETURNS TABLE (id uuid, status text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$ SELECT t.id, t.status FROM tenants t WHERE t.slug = lower(p_slug) $$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION carebase_tenant_by_slug(text) FROM PUBLIC;
--> statement-breakpoint
GRANT EXECUTE ON FUNCTION carebase_tenant_by_slug(text) TO carebase_app;
--> statement-breakpoint
-- Access-token verification checks its session in one round trip, without a
-- request transaction: reads the session, its user and the tenant settings
-- in the given tenant (set locally, restored afterwards), and records
-- activity (last_seen_at = p_now) when the stored value is older than
-- p_touch_before, unless the session is revoked, expired or already idle.
CREATE OR REPLACE FUNCTION carebase_session_state(p_tenant uuid, p_session uuid, p_now timestamptz, p_touch_before timestamptz, p_default_idle_minutes integer)
  RETURNS TABLE (user_id uuid, user_status text, revoked boolean, last_seen_at timestamptz, expires_at timestamptz, idle_seconds integer, tenant_status text)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
DECLARE
  v_prev text := coalesce(current_setting('app.tenant_id', true), '');
  r record;
BEGIN
  PERFORM set_config('app.tenant_id', p_tenant::text, true);
  SELECT s.user_id AS uid, u.status AS ustatus, s.revoked_at IS NOT NULL AS revoked, s.last_seen_at AS seen, s.expires_at AS exp,
         coalesce((t.settings->'auth'->>'idleTimeoutMinutes')::integer, p_default_idle_minutes) * 60 AS idle, t.status AS tstatus
    INTO r
    FROM sessions s
    JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id
    JOIN tenants t ON t.id = s.tenant_id
   WHERE s.tenant_id = p_tenant AND s.id = p_session;
  IF FOUND THEN
    IF NOT r.revoked AND r.exp > p_now AND r.seen >= p_now - make_interval(secs => r.idle) AND r.seen < p_touch_before THEN
      UPDATE sessions s SET last_seen_at = p_now WHERE s.tenant_id = p_tenant AND s.id = p_session AND s.last_seen_at < p_now;
      r.seen := p_now;
    END IF;
    user_id := r.uid; user_status := r.ustatus; revoked := r.revoked; last_seen_at := r.seen; expires_at := r.exp;
    idle_seconds := r.idle; tenant_status := r.tstatus;
    RETURN NEXT;
  END IF;
  PERFORM set_config('app.tenant_id', v_prev, true);
END $$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION carebase_session_state(uuid, uuid, timestamptz, timestamptz, integer) FROM PUBLIC;
--> statement-breakpoint
GRANT EXECUTE ON FUNCTION carebase_session_state(uuid, uuid, timestamptz, timestamptz, integer) TO carebase_app;
--> statement-breakpoint
-- Security events are append-only for the app; users and signing keys are
-- deactivated / retired, never deleted.
REVOKE UPDATE, DELETE ON "security_events" FROM carebase_app;
--> statement-breakpoint
REVOKE DELETE ON "users", "auth_signing_keys" FROM carebase_app;
--> statement-breakpoint
SELECT carebase_enforce_tenant_rls();
