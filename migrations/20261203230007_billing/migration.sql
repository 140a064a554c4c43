CREATE TABLE "billing_accounts" (
	"tenant_id" uuid PRIMARY KEY DEFAULT carebase_current_tenant(),
	"currency" text DEFAULT 'usd' NOT NULL,
	"customer_id" text UNIQUE,
	"payment_method_status" text DEFAULT 'none' NOT NULL,
	"payment_method_id" text,
	"payment_method_brand" text,
	"payment_method_last4" text,
	"payment_method_expires" text,
	"setup_intent_id" text,
	"setup_event_created" bigint,
	"invoice_seq" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "billing_accounts_currency_check" CHECK ("currency" ~ '^[a-z]{3}$')
);
--> statement-breakpoint
CREATE TABLE "billing_invoice_lines" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"invoice_id" uuid NOT NULL,
	"position" integer NOT NULL,
	"kind" text NOT NULL,
	"description" text NOT NULL,
	"quantity" bigint NOT NULL,
	"unit_amount" bigint NOT NULL,
	"amount" bigint NOT NULL,
	"currency" text NOT NULL,
	"period_start" timestamp with time zone,
	"period_end" timestamp with time zone,
	"plan_id" text,
	CONSTRAINT "billing_invoice_lines_position_key" UNIQUE("tenant_id","invoice_id","position"),
	CONSTRAINT "billing_invoice_lines_kind_check" CHECK ("kind" in ('plan', 'seats', 'proration', 'usage', 'tax'))
);
--> statement-breakpoint
CREATE TABLE "billing_invoices" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"subscription_id" uuid NOT NULL,
	"seq" integer NOT NULL,
	"number" text NOT NULL,
	"status" text DEFAULT 'draft' NOT NULL,
	"reason" text NOT NULL,
	"currency" text NOT NULL,
	"period_start" timestamp with time zone NOT NULL,
	"period_end" timestamp with time zone NOT NULL,
	"subtotal" bigint DEFAULT 0 NOT NULL,
	"tax" bigint DEFAULT 0 NOT NULL,
	"total" bigint DEFAULT 0 NOT NULL,
	"amount_paid" bigint DEFAULT 0 NOT NULL,
	"amount_due" bigint DEFAULT 0 NOT NULL,
	"attempt_count" integer DEFAULT 0 NOT NULL,
	"next_payment_attempt" timestamp with time zone,
	"first_failed_at" timestamp with time zone,
	"payment_intent_id" text UNIQUE,
	"last_payment_error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finalized_at" timestamp with time zone,
	"paid_at" timestamp with time zone,
	"voided_at" timestamp with time zone,
	"marked_uncollectible_at" timestamp with time zone,
	CONSTRAINT "billing_invoices_tenant_seq_key" UNIQUE("tenant_id","seq"),
	CONSTRAINT "billing_invoices_tenant_id_id_key" UNIQUE("tenant_id","id"),
	CONSTRAINT "billing_invoices_status_check" CHECK ("status" in ('draft', 'open', 'paid', 'void', 'uncollectible')),
	CONSTRAINT "billing_invoices_amounts_check" CHECK ("total" = "subtotal" + "tax" and "amount_due" >= 0 and "amount_paid" >= 0)
);
--> statement-breakpoint
CREATE TABLE "billing_notifications" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"kind" text NOT NULL,
	"invoice_id" uuid,
	"detail" jsonb DEFAULT '{}' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "billing_subscriptions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL UNIQUE,
	"plan_id" text NOT NULL,
	"interval" text NOT NULL,
	"status" text NOT NULL,
	"anchor" timestamp with time zone NOT NULL,
	"current_period_start" timestamp with time zone NOT NULL,
	"current_period_end" timestamp with time zone NOT NULL,
	"trial_start" timestamp with time zone,
	"trial_end" timestamp with time zone,
	"cancel_at_period_end" boolean DEFAULT false NOT NULL,
	"cancelled_at" timestamp with time zone,
	"ended_at" timestamp with time zone,
	"end_reason" text,
	"pending_plan_id" text,
	"pending_interval" text,
	"past_due_since" timestamp with time zone,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "billing_subscriptions_status_check" CHECK ("status" in ('trialing', 'active', 'past_due', 'unpaid', 'cancelled')),
	CONSTRAINT "billing_subscriptions_period_check" CHECK ("current_period_end" > "current_period_start")
);
--> statement-breakpoint
CREATE TABLE "billing_usage_hourly" (
	"tenant_id" uuid DEFAULT carebase_current_tenant(),
	"hour" timestamp with time zone,
	"api_key_id" uuid,
	"calls" bigint NOT NULL,
	CONSTRAINT "billing_usage_hourly_pkey" PRIMARY KEY("tenant_id","hour","api_key_id"),
	CONSTRAINT "billing_usage_hourly_hour_check" CHECK ("hour" = date_trunc('hour', "hour"))
);
--> statement-breakpoint
CREATE TABLE "billing_usage_requests" (
	"tenant_id" uuid DEFAULT carebase_current_tenant(),
	"request_id" text,
	"api_key_id" uuid NOT NULL,
	"hour" timestamp with time zone NOT NULL,
	CONSTRAINT "billing_usage_requests_pkey" PRIMARY KEY("tenant_id","request_id")
);
--> statement-breakpoint
CREATE TABLE "billing_webhook_events" (
	"id" text PRIMARY KEY,
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"type" text NOT NULL,
	"object_id" text NOT NULL,
	"event_created" bigint NOT NULL,
	"payload" jsonb NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	"processed_at" timestamp with time zone,
	"outcome" text
);
--> statement-breakpoint
CREATE INDEX "billing_invoices_tenant_created_idx" ON "billing_invoices" ("tenant_id","created_at");--> statement-breakpoint
CREATE INDEX "billing_invoices_next_attempt_idx" ON "billing_invoices" ("next_payment_attempt");--> statement-breakpoint
CREATE INDEX "billing_notifications_tenant_created_idx" ON "billing_notifications" ("tenant_id","created_at");--> statement-breakpoint
CREATE INDEX "billing_subscriptions_due_idx" ON "billing_subscriptions" ("current_period_end");--> statement-breakpoint
CREATE INDEX "billing_usage_requests_hour_idx" ON "billing_usage_requests" ("hour");--> statement-breakpoint
CREATE INDEX "billing_webhook_events_object_idx" ON "billing_webhook_events" ("tenant_id","object_id");--> statement-breakpoint
ALTER TABLE "billing_accounts" ADD CONSTRAINT "billing_accounts_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "billing_invoice_lines" ADD CONSTRAINT "billing_invoice_lines_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "billing_invoices" ADD CONSTRAINT "billing_invoices_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "billing_notifications" ADD CONSTRAINT "billing_notifications_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "billing_subscriptions" ADD CONSTRAINT "billing_subscriptions_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "billing_usage_hourly" ADD CONSTRAINT "billing_usage_hourly_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "billing_usage_requests" ADD CONSTRAINT "billing_usage_requests_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "billing_webhook_events" ADD CONSTRAINT "billing_webhook_events_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
-- hand-written: invoice lines belong to an invoice of the same tenant
ALTER TABLE "billing_invoice_lines" ADD CONSTRAINT "billing_invoice_lines_invoice_fkey" FOREIGN KEY ("tenant_id", "invoice_id") REFERENCES "billing_invoices"("tenant_id", "id");
--> statement-breakpoint
-- hand-written: the app role never deletes billing records (invoices are voided, subscriptions end); only the
-- narrow definer below purges request ids that are past the dedup window
REVOKE DELETE ON "billing_accounts", "billing_subscriptions", "billing_invoices", "billing_invoice_lines", "billing_usage_hourly", "billing_usage_requests", "billing_webhook_events", "billing_notifications" FROM carebase_app;
--> statement-breakpoint
REVOKE UPDATE ON "billing_invoice_lines", "billing_usage_requests", "billing_notifications" FROM carebase_app;
--> statement-breakpoint
-- hand-written: the owner's cross-tenant reads, for the definer functions below only (the app role keeps tenant RLS)
CREATE POLICY billing_owner_read ON "billing_accounts" FOR SELECT TO CURRENT_USER USING (true);
--> statement-breakpoint
CREATE POLICY billing_owner_read ON "billing_subscriptions" FOR SELECT TO CURRENT_USER USING (true);
--> statement-breakpoint
CREATE POLICY billing_owner_read ON "billing_invoices" FOR SELECT TO CURRENT_USER USING (true);
--> statement-breakpoint
CREATE POLICY billing_owner_purge ON "billing_usage_requests" FOR ALL TO CURRENT_USER USING (true);
--> statement-breakpoint
-- The plan drives the tenant's entitlements: tenant_entitlements is read-only for the app role, so the billing
-- module writes the current tenant's row (only that one) through this definer.
CREATE OR REPLACE FUNCTION billing_set_entitlements(p_modules text[]) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
DECLARE t uuid := carebase_current_tenant();
BEGIN
  IF t IS NULL THEN RAISE EXCEPTION 'billing_set_entitlements needs app.tenant_id'; END IF;
  INSERT INTO tenant_entitlements (tenant_id, modules, updated_at) VALUES (t, p_modules, now())
    ON CONFLICT (tenant_id) DO UPDATE SET modules = excluded.modules, updated_at = now();
END $$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION billing_set_entitlements(text[]) FROM PUBLIC;
--> statement-breakpoint
GRANT EXECUTE ON FUNCTION billing_set_entitlements(text[]) TO carebase_app;
--> statement-breakpoint
-- A verified webhook names a customer, not a tenant: the tenant of a provider customer id.
CREATE OR REPLACE FUNCTION billing_tenant_of_customer(p_customer text) RETURNS uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$ SELECT tenant_id FROM billing_accounts WHERE customer_id = p_customer $$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION billing_tenant_of_customer(text) FROM PUBLIC;
--> statement-breakpoint
GRANT EXECUTE ON FUNCTION billing_tenant_of_customer(text) TO carebase_app;
--> statement-breakpoint
-- The billing schedule's only cross-tenant read: tenants with work due at p_now (a trial or period ending, a
-- payment retry due, a dunning run older than p_unpaid_before). Ids only.
CREATE OR REPLACE FUNCTION billing_due_tenants(p_now timestamptz, p_unpaid_before timestamptz, p_limit integer)
  RETURNS TABLE (tenant_id uuid)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$
    SELECT s.tenant_id FROM billing_subscriptions s
     WHERE (s.status = 'trialing' AND s.trial_end <= p_now)
        OR (s.status IN ('active', 'past_due') AND s.current_period_end <= p_now)
        OR (s.status = 'past_due' AND s.past_due_since <= p_unpaid_before)
    UNION
    SELECT i.tenant_id FROM billing_invoices i WHERE i.status = 'open' AND i.next_payment_attempt <= p_now
    LIMIT p_limit
  $$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION billing_due_tenants(timestamptz, timestamptz, integer) FROM PUBLIC;
--> statement-breakpoint
GRANT EXECUTE ON FUNCTION billing_due_tenants(timestamptz, timestamptz, integer) TO carebase_app;
--> statement-breakpoint
-- Request ids older than the dedup window are forgotten (the hourly counts stay).
CREATE OR REPLACE FUNCTION billing_purge_usage_requests(p_before timestamptz) RETURNS integer
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
  AS $$ WITH d AS (DELETE FROM billing_usage_requests WHERE hour < p_before RETURNING 1) SELECT count(*)::int FROM d $$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION billing_purge_usage_requests(timestamptz) FROM PUBLIC;
--> statement-breakpoint
GRANT EXECUTE ON FUNCTION billing_purge_usage_requests(timestamptz) TO carebase_app;
--> statement-breakpoint
SELECT carebase_enforce_tenant_rls();
