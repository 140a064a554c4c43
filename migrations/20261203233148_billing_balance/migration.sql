ALTER TABLE "billing_accounts" ADD COLUMN "balance" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "billing_invoices" ADD COLUMN "amount_carried" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "billing_invoice_lines" DROP CONSTRAINT "billing_invoice_lines_kind_check", ADD CONSTRAINT "billing_invoice_lines_kind_check" CHECK ("kind" in ('plan', 'seats', 'proration', 'usage', 'balance', 'tax'));--> statement-breakpoint
-- hand-written: the balance carried is never negative (credits are not carried: an invoice never totals less than zero)
ALTER TABLE "billing_accounts" ADD CONSTRAINT "billing_accounts_balance_check" CHECK ("balance" >= 0);
--> statement-breakpoint
SELECT carebase_enforce_tenant_rls();
