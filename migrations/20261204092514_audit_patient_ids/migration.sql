ALTER TABLE "audit_events" ADD COLUMN "patient_ids" uuid[] DEFAULT '{}'::uuid[] NOT NULL;--> statement-breakpoint
CREATE INDEX "audit_events_patients_idx" ON "audit_events" USING gin ("patient_ids") WHERE cardinality("patient_ids") > 0;--> statement-breakpoint
-- ---------------------------------------------------------------- hand-written
-- An event about several patients (a search page: the same fields of each
-- patient's record) is one row naming all of them in patient_ids, patient_id
-- null (src/platform/audit/request.ts mergeAcrossPatients); its canonical form
-- is carebase-audit-v2 (canonical.ts). carebase_audit_append and the staged
-- chaining take the column from the event's JSON like every other
-- (jsonb_populate_record over the audit_events row type). Reports by patient
-- read the GIN index above next to audit_events_patient_idx.
SELECT carebase_enforce_tenant_rls();
