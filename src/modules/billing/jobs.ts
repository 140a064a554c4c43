import { badInput } from '../../platform/errors.js';
import { enqueueForTenants, type JobDefinition } from '../../platform/jobs/index.js';
import { defineRoute } from '../../platform/scope/index.js';
import { tenants } from '../../platform/db/tables.js';
import { eq } from 'drizzle-orm';
import { collectInvoice, queueDueRetries } from './collection.js';
import { BILLING, DAY_MS, isUuid, type BillingInstance } from './common.js';
import { findInvoice, linesOf, renderInvoiceHtml } from './invoices.js';
import { advance } from './subscriptions.js';
import { processWebhookEvent } from './webhooks.js';

export const SWEEP_JOB = 'billing.sweep';
export const ADVANCE_JOB = 'billing.advance';

/**
 * The billing schedule (a BullMQ job scheduler: one run per period whatever the number of processes): asks the
 * narrow definer billing_due_tenants for tenants with work due (trial or period end, payment retry, dunning
 * past BILLING_UNPAID_AFTER_DAYS) at the module's clock, and queues one billing.advance job per tenant in that
 * tenant's transaction. Also forgets request ids older than the usage dedup window.
 */
export const sweepSchedule: JobDefinition = {
  every: 5 * 60_000, // JOB_SCHEDULE_INTERVALS=billing.sweep=<ms> overrides it
  attempts: 3,
  backoffMs: 5_000,
  handler: async (_payload, ctx) => {
    const inst = ctx.scope.module<BillingInstance>(BILLING);
    const now = inst.now();
    const unpaidBefore = new Date(now.getTime() - inst.settings.unpaidAfterDays * DAY_MS);
    const due = await ctx.database.sql<{ tenant_id: string }[]>`select tenant_id from billing_due_tenants(${now}, ${unpaidBefore}, 1000)`;
    await enqueueForTenants(ctx.database.sql, due.map((d) => d.tenant_id), ADVANCE_JOB);
    const purged = await ctx.database.sql<{ n: number }[]>`select billing_purge_usage_requests(${new Date(now.getTime() - inst.settings.usageDedupDays * DAY_MS)}) as n`;
    if (due.length || purged[0]?.n) ctx.log.info({ tenants: due.length, purgedRequestIds: purged[0]?.n ?? 0 }, 'billing: sweep');
  },
};

/** One tenant's due work, as system:billing.advance: trial end, renewals, unpaid, retries due. */
export const advanceJob: JobDefinition = {
  attempts: 5,
  backoffMs: 2_000,
  concurrency: 4,
  handler: async (_payload, ctx) => {
    await advance(ctx.scope);
    await queueDueRetries(ctx.scope);
  },
};

/** One collection attempt of an invoice (payload: invoiceId, attempt). Network errors are retried with the same idempotency key. */
export const collectJob: JobDefinition = {
  attempts: 6,
  backoffMs: 2_000,
  concurrency: 4,
  handler: async (payload, ctx) => {
    const { invoiceId, attempt } = payload as { invoiceId?: unknown; attempt?: unknown };
    if (!isUuid(invoiceId) || typeof attempt !== 'number' || !Number.isSafeInteger(attempt) || attempt < 1) throw badInput('invoiceId and attempt are required', 'payload');
    await collectInvoice(ctx.scope, invoiceId, attempt);
  },
};

/** Applies one stored Stripe event exactly once; retried by the job system when it fails. */
export const processWebhookJob: JobDefinition = {
  attempts: 8,
  backoffMs: 1_000,
  concurrency: 4,
  handler: async (payload, ctx) => {
    const outcome = await processWebhookEvent(ctx.scope, (payload as { eventId?: unknown }).eventId, ctx.log);
    ctx.log.info({ eventId: (payload as { eventId?: unknown }).eventId, outcome }, 'billing: webhook processed');
  },
};

/** GET /billing/invoices/:id.html: the invoice rendered as HTML (billing:read), its reading audited. */
export const invoiceHtmlRoute = defineRoute({
  method: 'GET',
  url: '/billing/invoices/:file',
  permission: 'billing:read',
  operationName: 'GET /billing/invoices/:id.html',
  handler: async (scope, req, reply) => {
    const file = (req.params as { file?: unknown }).file;
    const id = typeof file === 'string' && file.endsWith('.html') ? file.slice(0, -'.html'.length) : file;
    const inv = await findInvoice(scope, id);
    const db = await scope.db();
    const lines = (await linesOf(db, inv.tenantId, [inv.id])).get(inv.id) ?? [];
    const [tenant] = await db.select({ name: tenants.name }).from(tenants).where(eq(tenants.id, inv.tenantId));
    // an invoice holds no PHI: its reading is recorded as a security event of the audit log (who read which invoice)
    scope.recordPhiAccess({ eventType: 'security', patientIds: [], resourceType: 'Invoice', resourceId: inv.id, fields: [], action: 'read', outcome: 'allowed', detail: { number: inv.number } });
    reply.type('text/html; charset=utf-8').header('cache-control', 'private, no-store').header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'");
    return renderInvoiceHtml(inv, lines, { name: tenant?.name ?? '' });
  },
});
