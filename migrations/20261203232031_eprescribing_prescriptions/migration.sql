CREATE TABLE "rx_change_requests" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"prescription_id" uuid NOT NULL,
	"patient_id" uuid NOT NULL,
	"prescriber_id" uuid NOT NULL,
	"request_message_id" text NOT NULL,
	"request_code" text NOT NULL,
	"requested" jsonb DEFAULT '[]' NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"chosen_index" integer,
	"denial_code" text,
	"denial_reason" text,
	"decided_by" uuid,
	"decided_at" timestamp with time zone,
	"response_message_id" text,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rx_change_requests_tenant_id_id_key" UNIQUE("tenant_id","id"),
	CONSTRAINT "rx_change_requests_message_key" UNIQUE("tenant_id","request_message_id")
);
--> statement-breakpoint
CREATE TABLE "rx_dea_registrations" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"prescriber_id" uuid NOT NULL,
	"dea_number" text NOT NULL,
	"schedules" text[] NOT NULL,
	"state" text NOT NULL,
	"expires_on" date NOT NULL,
	"recorded_by" uuid NOT NULL,
	"revoked_at" timestamp with time zone,
	"revoked_by" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rx_dea_registrations_tenant_id_id_key" UNIQUE("tenant_id","id"),
	CONSTRAINT "rx_dea_registrations_number_check" CHECK ("dea_number" ~ '^[A-Z][A-Z9][0-9]{7}$'),
	CONSTRAINT "rx_dea_registrations_schedules_check" CHECK (cardinality("schedules") > 0 and "schedules" <@ array['CII','CIII','CIV','CV']::text[])
);
--> statement-breakpoint
CREATE TABLE "rx_epcs_access" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"prescriber_id" uuid NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"first_approver_id" uuid NOT NULL,
	"first_approved_at" timestamp with time zone NOT NULL,
	"second_approver_id" uuid,
	"second_approved_at" timestamp with time zone,
	"revoked_by" uuid,
	"revoked_at" timestamp with time zone,
	"version" integer DEFAULT 1 NOT NULL,
	CONSTRAINT "rx_epcs_access_tenant_id_id_key" UNIQUE("tenant_id","id"),
	CONSTRAINT "rx_epcs_access_two_people_check" CHECK ("second_approver_id" is null or "second_approver_id" <> "first_approver_id"),
	CONSTRAINT "rx_epcs_access_active_check" CHECK ("status" <> 'active' or "second_approver_id" is not null)
);
--> statement-breakpoint
CREATE TABLE "rx_epcs_log" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"event" text NOT NULL,
	"outcome" text NOT NULL,
	"prescriber_id" uuid,
	"actor_id" uuid,
	"prescription_id" uuid,
	"detail" jsonb DEFAULT '{}' NOT NULL
);
--> statement-breakpoint
CREATE TABLE "rx_pharmacies" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"ncpdp_id" text NOT NULL,
	"npi" text,
	"name" text NOT NULL,
	"address_line1" text NOT NULL,
	"address_line2" text,
	"city" text NOT NULL,
	"state" text NOT NULL,
	"postal_code" text NOT NULL,
	"phone" text NOT NULL,
	"fax" text,
	"epcs_enabled" boolean DEFAULT true NOT NULL,
	"active" boolean DEFAULT true NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rx_pharmacies_tenant_id_id_key" UNIQUE("tenant_id","id"),
	CONSTRAINT "rx_pharmacies_tenant_ncpdp_key" UNIQUE("tenant_id","ncpdp_id"),
	CONSTRAINT "rx_pharmacies_ncpdp_check" CHECK ("ncpdp_id" ~ '^[0-9]{7}$'),
	CONSTRAINT "rx_pharmacies_npi_check" CHECK ("npi" is null or "npi" ~ '^[0-9]{10}$')
);
--> statement-breakpoint
CREATE TABLE "rx_prescribers" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"user_id" uuid NOT NULL,
	"npi" text NOT NULL,
	"state_license_number" text,
	"first_name" text NOT NULL,
	"last_name" text NOT NULL,
	"suffix" text,
	"address_line1" text NOT NULL,
	"address_line2" text,
	"city" text NOT NULL,
	"state" text NOT NULL,
	"postal_code" text NOT NULL,
	"phone" text NOT NULL,
	"fax" text,
	"active" boolean DEFAULT true NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rx_prescribers_tenant_id_id_key" UNIQUE("tenant_id","id"),
	CONSTRAINT "rx_prescribers_tenant_user_key" UNIQUE("tenant_id","user_id"),
	CONSTRAINT "rx_prescribers_npi_check" CHECK ("npi" ~ '^[0-9]{10}$')
);
--> statement-breakpoint
CREATE TABLE "rx_prescription_events" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"prescription_id" uuid NOT NULL,
	"from_status" text,
	"to_status" text NOT NULL,
	"action" text NOT NULL,
	"actor" text NOT NULL,
	"detail" jsonb DEFAULT '{}' NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "rx_prescriptions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"patient_id" uuid NOT NULL,
	"prescriber_id" uuid NOT NULL,
	"pharmacy_id" uuid,
	"drug_rxcui" text NOT NULL,
	"drug_description" text NOT NULL,
	"drug_tty" text NOT NULL,
	"ndc" text,
	"dea_schedule" text,
	"quantity" text NOT NULL,
	"quantity_unit" text NOT NULL,
	"days_supply" integer,
	"refills" integer DEFAULT 0 NOT NULL,
	"refills_remaining" integer DEFAULT 0 NOT NULL,
	"sig" text NOT NULL,
	"substitution_allowed" boolean DEFAULT true NOT NULL,
	"note" text,
	"dose_amount" text,
	"frequency_per_day" integer,
	"status" text DEFAULT 'draft' NOT NULL,
	"status_before_cancel" text,
	"written_on" date NOT NULL,
	"order_number" text NOT NULL,
	"new_rx_message_id" text,
	"pharmacy_rx_number" text,
	"check_result" jsonb,
	"checked_at" timestamp with time zone,
	"signed_at" timestamp with time zone,
	"signed_by" uuid,
	"epcs" boolean DEFAULT false NOT NULL,
	"signature" text,
	"signed_digest" text,
	"signing_key_id" uuid,
	"attestation_sha256" text,
	"transmitted_at" timestamp with time zone,
	"accepted_at" timestamp with time zone,
	"error_code" text,
	"error_description_code" text,
	"dispensed_at" timestamp with time zone,
	"fills" integer DEFAULT 0 NOT NULL,
	"cancelled_at" timestamp with time zone,
	"cancel_reason" text,
	"renewal_of" uuid,
	"encounter_id" uuid,
	"created_by" uuid NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rx_prescriptions_tenant_id_id_key" UNIQUE("tenant_id","id"),
	CONSTRAINT "rx_prescriptions_refills_check" CHECK ("refills" between 0 and 99 and "refills_remaining" between 0 and "refills"),
	CONSTRAINT "rx_prescriptions_cii_refills_check" CHECK ("dea_schedule" is distinct from 'CII' or "refills" = 0),
	CONSTRAINT "rx_prescriptions_quantity_check" CHECK ("quantity" ~ '^[0-9]{1,11}(\.[0-9]{1,5})?$' and "quantity"::numeric > 0),
	CONSTRAINT "rx_prescriptions_order_check" CHECK ("order_number" ~ '^[0-9a-f]{32}$'),
	CONSTRAINT "rx_prescriptions_epcs_check" CHECK ("dea_schedule" is null or "status" in ('draft', 'checked') or ("epcs" and "signature" is not null))
);
--> statement-breakpoint
CREATE TABLE "rx_prior_auths" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"prescription_id" uuid NOT NULL,
	"patient_id" uuid NOT NULL,
	"status" text DEFAULT 'required' NOT NULL,
	"case_id" text,
	"question_sets" jsonb DEFAULT '[]' NOT NULL,
	"answers" jsonb DEFAULT '{}' NOT NULL,
	"attachments" jsonb DEFAULT '[]' NOT NULL,
	"determination_reason" text,
	"approved_until" date,
	"appeal_reason" text,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rx_prior_auths_tenant_id_id_key" UNIQUE("tenant_id","id")
);
--> statement-breakpoint
CREATE TABLE "rx_renewal_requests" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"prescription_id" uuid NOT NULL,
	"patient_id" uuid NOT NULL,
	"prescriber_id" uuid NOT NULL,
	"request_message_id" text NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"refills_approved" integer,
	"denial_code" text,
	"denial_reason" text,
	"decided_by" uuid,
	"decided_at" timestamp with time zone,
	"response_message_id" text,
	"new_prescription_id" uuid,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rx_renewal_requests_tenant_id_id_key" UNIQUE("tenant_id","id"),
	CONSTRAINT "rx_renewal_requests_message_key" UNIQUE("tenant_id","request_message_id")
);
--> statement-breakpoint
CREATE TABLE "rx_script_messages" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"prescription_id" uuid,
	"direction" text NOT NULL,
	"message_type" text NOT NULL,
	"message_id" text NOT NULL,
	"relates_to_message_id" text,
	"prescriber_order_number" text,
	"rx_reference_number" text,
	"xml" bytea NOT NULL,
	"answer_type" text,
	"answer_code" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rx_script_messages_tenant_id_id_key" UNIQUE("tenant_id","id"),
	CONSTRAINT "rx_script_messages_message_key" UNIQUE("tenant_id","direction","message_id")
);
--> statement-breakpoint
CREATE TABLE "rx_signing_keys" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"tenant_id" uuid DEFAULT carebase_current_tenant() NOT NULL,
	"prescriber_id" uuid NOT NULL,
	"algorithm" text DEFAULT 'Ed25519' NOT NULL,
	"public_key" text NOT NULL,
	"private_key" bytea NOT NULL,
	"fingerprint" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"retired_at" timestamp with time zone,
	CONSTRAINT "rx_signing_keys_tenant_id_id_key" UNIQUE("tenant_id","id")
);
--> statement-breakpoint
CREATE INDEX "rx_change_requests_prescriber_idx" ON "rx_change_requests" ("tenant_id","prescriber_id","status");--> statement-breakpoint
CREATE UNIQUE INDEX "rx_dea_registrations_live_key" ON "rx_dea_registrations" ("tenant_id","prescriber_id","dea_number") WHERE "revoked_at" is null;--> statement-breakpoint
CREATE UNIQUE INDEX "rx_epcs_access_live_key" ON "rx_epcs_access" ("tenant_id","prescriber_id") WHERE "status" <> 'revoked';--> statement-breakpoint
CREATE INDEX "rx_epcs_log_at_idx" ON "rx_epcs_log" ("tenant_id","at");--> statement-breakpoint
CREATE INDEX "rx_prescription_events_prescription_idx" ON "rx_prescription_events" ("tenant_id","prescription_id","at");--> statement-breakpoint
CREATE UNIQUE INDEX "rx_prescriptions_order_number_key" ON "rx_prescriptions" ("order_number");--> statement-breakpoint
CREATE INDEX "rx_prescriptions_patient_idx" ON "rx_prescriptions" ("tenant_id","patient_id","created_at");--> statement-breakpoint
CREATE INDEX "rx_prescriptions_prescriber_idx" ON "rx_prescriptions" ("tenant_id","prescriber_id","status");--> statement-breakpoint
CREATE INDEX "rx_prior_auths_prescription_idx" ON "rx_prior_auths" ("tenant_id","prescription_id");--> statement-breakpoint
CREATE INDEX "rx_renewal_requests_prescriber_idx" ON "rx_renewal_requests" ("tenant_id","prescriber_id","status");--> statement-breakpoint
CREATE INDEX "rx_script_messages_prescription_idx" ON "rx_script_messages" ("tenant_id","prescription_id","created_at");--> statement-breakpoint
CREATE INDEX "rx_script_messages_message_id_idx" ON "rx_script_messages" ("message_id");--> statement-breakpoint
CREATE UNIQUE INDEX "rx_signing_keys_current_key" ON "rx_signing_keys" ("tenant_id","prescriber_id") WHERE "retired_at" is null;--> statement-breakpoint
ALTER TABLE "rx_change_requests" ADD CONSTRAINT "rx_change_requests_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "rx_dea_registrations" ADD CONSTRAINT "rx_dea_registrations_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "rx_epcs_access" ADD CONSTRAINT "rx_epcs_access_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "rx_epcs_log" ADD CONSTRAINT "rx_epcs_log_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "rx_pharmacies" ADD CONSTRAINT "rx_pharmacies_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "rx_prescribers" ADD CONSTRAINT "rx_prescribers_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "rx_prescription_events" ADD CONSTRAINT "rx_prescription_events_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "rx_prescriptions" ADD CONSTRAINT "rx_prescriptions_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "rx_prior_auths" ADD CONSTRAINT "rx_prior_auths_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "rx_renewal_requests" ADD CONSTRAINT "rx_renewal_requests_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "rx_script_messages" ADD CONSTRAINT "rx_script_messages_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
ALTER TABLE "rx_signing_keys" ADD CONSTRAINT "rx_signing_keys_tenant_id_tenants_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id");--> statement-breakpoint
-- hand-written: keys to the tenant's patients, users, drugs and this module's own rows (a module's tables.ts imports no other module)
ALTER TABLE "rx_prescribers" ADD CONSTRAINT "rx_prescribers_user_fkey" FOREIGN KEY ("tenant_id", "user_id") REFERENCES "users"("tenant_id", "id");
--> statement-breakpoint
ALTER TABLE "rx_dea_registrations" ADD CONSTRAINT "rx_dea_registrations_prescriber_fkey" FOREIGN KEY ("tenant_id", "prescriber_id") REFERENCES "rx_prescribers"("tenant_id", "id");
--> statement-breakpoint
ALTER TABLE "rx_epcs_access" ADD CONSTRAINT "rx_epcs_access_prescriber_fkey" FOREIGN KEY ("tenant_id", "prescriber_id") REFERENCES "rx_prescribers"("tenant_id", "id");
--> statement-breakpoint
ALTER TABLE "rx_signing_keys" ADD CONSTRAINT "rx_signing_keys_prescriber_fkey" FOREIGN KEY ("tenant_id", "prescriber_id") REFERENCES "rx_prescribers"("tenant_id", "id");
--> statement-breakpoint
ALTER TABLE "rx_prescriptions" ADD CONSTRAINT "rx_prescriptions_patient_fkey" FOREIGN KEY ("tenant_id", "patient_id") REFERENCES "patients"("tenant_id", "id");
--> statement-breakpoint
ALTER TABLE "rx_prescriptions" ADD CONSTRAINT "rx_prescriptions_prescriber_fkey" FOREIGN KEY ("tenant_id", "prescriber_id") REFERENCES "rx_prescribers"("tenant_id", "id");
--> statement-breakpoint
ALTER TABLE "rx_prescriptions" ADD CONSTRAINT "rx_prescriptions_pharmacy_fkey" FOREIGN KEY ("tenant_id", "pharmacy_id") REFERENCES "rx_pharmacies"("tenant_id", "id");
--> statement-breakpoint
ALTER TABLE "rx_prescriptions" ADD CONSTRAINT "rx_prescriptions_drug_fkey" FOREIGN KEY ("drug_rxcui") REFERENCES "rx_drugs"("rxcui");
--> statement-breakpoint
ALTER TABLE "rx_prescriptions" ADD CONSTRAINT "rx_prescriptions_signing_key_fkey" FOREIGN KEY ("tenant_id", "signing_key_id") REFERENCES "rx_signing_keys"("tenant_id", "id");
--> statement-breakpoint
ALTER TABLE "rx_prescriptions" ADD CONSTRAINT "rx_prescriptions_renewal_of_fkey" FOREIGN KEY ("tenant_id", "renewal_of") REFERENCES "rx_prescriptions"("tenant_id", "id");
--> statement-breakpoint
ALTER TABLE "rx_prescription_events" ADD CONSTRAINT "rx_prescription_events_prescription_fkey" FOREIGN KEY ("tenant_id", "prescription_id") REFERENCES "rx_prescriptions"("tenant_id", "id");
--> statement-breakpoint
ALTER TABLE "rx_script_messages" ADD CONSTRAINT "rx_script_messages_prescription_fkey" FOREIGN KEY ("tenant_id", "prescription_id") REFERENCES "rx_prescriptions"("tenant_id", "id");
--> statement-breakpoint
ALTER TABLE "rx_renewal_requests" ADD CONSTRAINT "rx_renewal_requests_prescription_fkey" FOREIGN KEY ("tenant_id", "prescription_id") REFERENCES "rx_prescriptions"("tenant_id", "id");
--> statement-breakpoint
ALTER TABLE "rx_renewal_requests" ADD CONSTRAINT "rx_renewal_requests_patient_fkey" FOREIGN KEY ("tenant_id", "patient_id") REFERENCES "patients"("tenant_id", "id");
--> statement-breakpoint
ALTER TABLE "rx_change_requests" ADD CONSTRAINT "rx_change_requests_prescription_fkey" FOREIGN KEY ("tenant_id", "prescription_id") REFERENCES "rx_prescriptions"("tenant_id", "id");
--> statement-breakpoint
ALTER TABLE "rx_change_requests" ADD CONSTRAINT "rx_change_requests_patient_fkey" FOREIGN KEY ("tenant_id", "patient_id") REFERENCES "patients"("tenant_id", "id");
--> statement-breakpoint
ALTER TABLE "rx_prior_auths" ADD CONSTRAINT "rx_prior_auths_prescription_fkey" FOREIGN KEY ("tenant_id", "prescription_id") REFERENCES "rx_prescriptions"("tenant_id", "id");
--> statement-breakpoint
ALTER TABLE "rx_prior_auths" ADD CONSTRAINT "rx_prior_auths_patient_fkey" FOREIGN KEY ("tenant_id", "patient_id") REFERENCES "patients"("tenant_id", "id");
--> statement-breakpoint
-- prescriptions and their traffic are records: never deleted by the app; history, SCRIPT traffic and the EPCS log are append-only evidence
REVOKE DELETE, TRUNCATE ON "rx_pharmacies", "rx_prescribers", "rx_dea_registrations", "rx_epcs_access", "rx_signing_keys", "rx_prescriptions", "rx_renewal_requests", "rx_change_requests", "rx_prior_auths", "rx_script_messages" FROM carebase_app;
--> statement-breakpoint
REVOKE UPDATE, DELETE, TRUNCATE ON "rx_prescription_events", "rx_epcs_log" FROM carebase_app;
--> statement-breakpoint
-- inbound SCRIPT arrives without a tenant: the tenant of the prescription (PrescriberOrderNumber) or of the outbound
-- message it answers (RelatesToMessageID). Returns no row for an unknown one; the caller refuses more than one.
CREATE OR REPLACE FUNCTION rx_route_inbound(p_order text, p_relates text)
  RETURNS TABLE (tenant_id uuid) LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  select p.tenant_id from rx_prescriptions p where p_order is not null and p.order_number = p_order
  union
  select m.tenant_id from rx_script_messages m where p_relates is not null and m.direction = 'outbound' and m.message_id = p_relates
$$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION rx_route_inbound(text, text) FROM PUBLIC;
--> statement-breakpoint
GRANT EXECUTE ON FUNCTION rx_route_inbound(text, text) TO carebase_app;
--> statement-breakpoint
-- the daily EPCS report's fan-out: tenants with EPCS activity in [p_from, p_to)
CREATE OR REPLACE FUNCTION rx_epcs_active_tenants(p_from timestamptz, p_to timestamptz)
  RETURNS TABLE (tenant_id uuid) LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  select distinct l.tenant_id from rx_epcs_log l where l.at >= p_from and l.at < p_to
$$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION rx_epcs_active_tenants(timestamptz, timestamptz) FROM PUBLIC;
--> statement-breakpoint
GRANT EXECUTE ON FUNCTION rx_epcs_active_tenants(timestamptz, timestamptz) TO carebase_app;
--> statement-breakpoint
-- ENABLE + FORCE row level security and the tenant_isolation policy on every table with tenant_id
SELECT carebase_enforce_tenant_rls();
