import { and, asc, desc, eq, inArray, sql } from 'drizzle-orm';
import type { Db } from '../../platform/db/index.js';
import { AppError, ErrorCode, conflict, notFound } from '../../platform/errors.js';
import { enqueueJob } from '../../platform/jobs/index.js';
import type { RequestScope } from '../../platform/scope/index.js';
import { instanceOf, tenantOf, uuidArg } from './common.js';
import { formatMoney, minorUnits } from './money.js';
import { PLANS, usageCharge, type BillingInterval, type PlanId } from './plans.js';
import { countUsersWithRole } from '../identity/index.js';
import { callsBetween } from './usage.js';
import { billingAccounts, billingInvoiceLines, billingInvoices, INVOICE_STATUSES, type Invoice, type InvoiceLine, type InvoiceStatus, type LineKind, type Subscription } from './tables.js';

export const COLLECT_JOB = 'billing.collect';
export const PROVIDER_ROLE = 'PROVIDER';
/** the placeholder tax rate (basis points) until a tax provider is connected: a tax line of 0 on every invoice */
export const TAX_RATE_BPS = 0;
/** the smallest amount a card network charges (Stripe's minimum per currency); less is carried to the next invoice */
export const MIN_CHARGE: Readonly<Record<string, number>> = { usd: 50 };

export interface LineInput {
  kind: LineKind;
  description: string;
  quantity: number;
  unitAmount: number;
  amount: number;
  periodStart?: Date | null;
  periodEnd?: Date | null;
  planId?: string | null;
}

/** Legal status changes of an invoice (Stripe's): draft -> open -> paid | void | uncollectible; uncollectible -> paid | void. */
const TRANSITIONS: Record<InvoiceStatus, readonly InvoiceStatus[]> = {
  draft: ['open', 'void'],
  open: ['paid', 'void', 'uncollectible'],
  uncollectible: ['paid', 'void'],
  paid: [],
  void: [],
};

export function assertTransition(from: InvoiceStatus, to: InvoiceStatus): void {
  if (!TRANSITIONS[from].includes(to)) throw conflict(`An invoice that is ${from} cannot become ${to}`);
}

const fmtDate = (d: Date) => d.toISOString().slice(0, 10);
const fmtMinute = (d: Date) => `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;

/** The plan line of a period (in advance). */
export function planLine(planId: string, interval: BillingInterval, start: Date, end: Date): LineInput {
  const plan = PLANS.get(planId as PlanId)!;
  const price = plan.prices[interval];
  return {
    kind: 'plan',
    description: `${plan.name} plan (${interval === 'month' ? 'monthly' : 'annual'}), ${fmtDate(start)} to ${fmtDate(end)}`,
    quantity: 1,
    unitAmount: price.amount,
    amount: price.amount,
    periodStart: start,
    periodEnd: end,
    planId,
  };
}

/** Provider seats: included in the plan's price, shown with the count in use. */
export async function seatsLine(db: Db, tenantId: string, planId: string): Promise<LineInput> {
  const plan = PLANS.get(planId as PlanId)!;
  const inUse = await countUsersWithRole(db, tenantId, PROVIDER_ROLE);
  return {
    kind: 'seats',
    description: `Provider seats: ${inUse} in use of ${plan.providerSeats ?? 'unlimited'} included`,
    quantity: inUse,
    unitAmount: 0,
    amount: 0,
    planId,
  };
}

/** Metered API usage of a period (in arrears), at the plan of that period's end. */
export async function usageLine(db: Db, tenantId: string, planId: string, interval: BillingInterval, start: Date, end: Date): Promise<LineInput & { calls: number }> {
  const plan = PLANS.get(planId as PlanId)!;
  const calls = await callsBetween(db, tenantId, start, end);
  const u = usageCharge(plan, interval, calls);
  return {
    kind: 'usage',
    description: `API calls ${fmtDate(start)} to ${fmtDate(end)}: ${calls.toLocaleString('en-US')} (${u.included.toLocaleString('en-US')} included; ${u.units} \u00d7 1,000 over at ${formatMoney({ amount: plan.usage.overageUnitAmount, currency: plan.prices.month.currency })})`,
    quantity: u.units,
    unitAmount: plan.usage.overageUnitAmount,
    amount: u.amount,
    periodStart: start,
    periodEnd: end,
    planId,
    calls,
  };
}

export { fmtMinute };

/**
 * Creates an invoice with its lines and the tax placeholder, numbered per
 * tenant, finalized at once (open) and queued for collection; an invoice of
 * nothing is paid at once. Every amount is checked to be an integer of minor
 * units.
 */
export async function issueInvoice(
  scope: RequestScope,
  db: Db,
  sub: Subscription,
  input: { reason: string; periodStart: Date; periodEnd: Date; lines: LineInput[] },
): Promise<Invoice> {
  const now = instanceOf(scope).now();
  const tenantId = sub.tenantId;
  const currency = PLANS.get(sub.planId as PlanId)!.prices.month.currency;
  // the number, and the balance carried from invoices below the minimum charge (taken into this one)
  const [prev] = await db.select({ balance: billingAccounts.balance }).from(billingAccounts).where(eq(billingAccounts.tenantId, tenantId)).for('update');
  if (!prev) throw new Error('billing account missing');
  const [acct] = await db
    .update(billingAccounts)
    .set({ invoiceSeq: sql`${billingAccounts.invoiceSeq} + 1`, balance: 0, updatedAt: now })
    .where(eq(billingAccounts.tenantId, tenantId))
    .returning({ seq: billingAccounts.invoiceSeq });
  const seq = acct!.seq;
  if (prev.balance > 0) {
    input = { ...input, lines: [...input.lines, { kind: 'balance', description: 'Balance carried from earlier invoices (below the minimum card charge)', quantity: 1, unitAmount: prev.balance, amount: prev.balance }] };
  }
  const number = `CB-${tenantId.slice(0, 8).toUpperCase()}-${String(seq).padStart(5, '0')}`;
  const subtotal = input.lines.reduce((s, l) => s + minorUnits(l.amount, 'lines.amount'), 0);
  const tax = Math.round((Math.max(0, subtotal) * TAX_RATE_BPS) / 10_000);
  const total = minorUnits(subtotal + tax, 'total');
  if (total < 0) throw new AppError(ErrorCode.BAD_USER_INPUT, 'An invoice cannot total less than zero');
  const [inv] = await db
    .insert(billingInvoices)
    .values({ tenantId, subscriptionId: sub.id, seq, number, status: 'draft', reason: input.reason, currency, periodStart: input.periodStart, periodEnd: input.periodEnd, subtotal, tax, total, amountDue: total, createdAt: now })
    .returning();
  const lines: LineInput[] = [...input.lines, { kind: 'tax', description: 'Tax (not calculated yet: placeholder)', quantity: 1, unitAmount: tax, amount: tax }];
  await db.insert(billingInvoiceLines).values(
    lines.map((l, i) => ({
      tenantId,
      invoiceId: inv!.id,
      position: i + 1,
      kind: l.kind,
      description: l.description,
      quantity: l.quantity,
      unitAmount: minorUnits(l.unitAmount, 'lines.unitAmount'),
      amount: minorUnits(l.amount, 'lines.amount'),
      currency,
      periodStart: l.periodStart ?? null,
      periodEnd: l.periodEnd ?? null,
      planId: l.planId ?? null,
    })),
  );
  // finalize: open and due now (a zero invoice is paid as it is finalized)
  const paid = total === 0;
  const [open] = await db
    .update(billingInvoices)
    .set({ status: paid ? 'paid' : 'open', finalizedAt: now, paidAt: paid ? now : null, nextPaymentAttempt: null })
    .where(and(eq(billingInvoices.tenantId, tenantId), eq(billingInvoices.id, inv!.id)))
    .returning();
  if (!paid) await enqueueCollection(db, open!);
  return open!;
}

/** Queues one collection attempt of an open invoice (job payload: ids and the attempt number only). */
export async function enqueueCollection(db: Db, inv: Invoice): Promise<void> {
  await enqueueJob(db, { job: COLLECT_JOB, tenantId: inv.tenantId, aggregateId: inv.id, payload: { invoiceId: inv.id, attempt: inv.attemptCount + 1 } });
}

export async function linesOf(db: Db, tenantId: string, invoiceIds: readonly string[]): Promise<Map<string, InvoiceLine[]>> {
  const out = new Map<string, InvoiceLine[]>();
  if (!invoiceIds.length) return out;
  const rows = await db
    .select()
    .from(billingInvoiceLines)
    .where(and(eq(billingInvoiceLines.tenantId, tenantId), inArray(billingInvoiceLines.invoiceId, [...invoiceIds])))
    .orderBy(asc(billingInvoiceLines.invoiceId), asc(billingInvoiceLines.position));
  for (const r of rows) out.set(r.invoiceId, [...(out.get(r.invoiceId) ?? []), r]);
  return out;
}

/** The caller's tenant's invoice, or NOT_FOUND (another tenant's invoice is simply not found). */
export async function findInvoice(scope: RequestScope, id: unknown, lock = false): Promise<Invoice> {
  const tenantId = tenantOf(scope);
  const invoiceId = uuidArg(id, 'invoiceId');
  const db = await scope.db();
  const q = db.select().from(billingInvoices).where(and(eq(billingInvoices.tenantId, tenantId), eq(billingInvoices.id, invoiceId)));
  const [row] = lock ? await q.for('update') : await q;
  if (!row) throw notFound('Invoice');
  return row;
}

export async function listInvoices(scope: RequestScope, input: { status?: string | null; first: number; offset: number }): Promise<Invoice[]> {
  const tenantId = tenantOf(scope);
  const db = await scope.db();
  const conds = [eq(billingInvoices.tenantId, tenantId)];
  if (input.status) {
    if (!(INVOICE_STATUSES as readonly string[]).includes(input.status)) throw new AppError(ErrorCode.BAD_USER_INPUT, 'Unknown invoice status', { field: 'status' });
    conds.push(eq(billingInvoices.status, input.status as InvoiceStatus));
  }
  return db
    .select()
    .from(billingInvoices)
    .where(and(...conds))
    .orderBy(desc(billingInvoices.seq))
    .limit(input.first)
    .offset(input.offset);
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** The invoice as a self-contained HTML document (print to PDF from a browser). */
export function renderInvoiceHtml(inv: Invoice, lines: readonly InvoiceLine[], tenant: { name: string }): string {
  const m = (amount: number) => esc(formatMoney({ amount, currency: inv.currency }));
  const rows = lines
    .map(
      (l) =>
        `<tr><td>${esc(l.description)}</td><td class="n">${l.quantity}</td><td class="n">${m(l.unitAmount)}</td><td class="n">${m(l.amount)}</td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Invoice ${esc(inv.number)}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;width:100%}th,td{padding:.4rem;border-bottom:1px solid #ddd;text-align:left}.n{text-align:right}.status{text-transform:uppercase;font-weight:600}</style>
</head><body>
<h1>Invoice ${esc(inv.number)}</h1>
<p>Billed to: ${esc(tenant.name)}<br>Status: <span class="status">${esc(inv.status)}</span><br>
Period: ${fmtDate(inv.periodStart)} to ${fmtDate(inv.periodEnd)}<br>Issued: ${fmtDate(inv.finalizedAt ?? inv.createdAt)}${inv.paidAt ? `<br>Paid: ${fmtDate(inv.paidAt)}` : ''}</p>
<table><thead><tr><th>Description</th><th class="n">Qty</th><th class="n">Unit price</th><th class="n">Amount</th></tr></thead>
<tbody>
${rows}
</tbody>
<tfoot>
<tr><td colspan="3">Subtotal</td><td class="n">${m(inv.subtotal)}</td></tr>
<tr><td colspan="3">Tax</td><td class="n">${m(inv.tax)}</td></tr>
<tr><th colspan="3">Total (${esc(inv.currency.toUpperCase())})</th><th class="n">${m(inv.total)}</th></tr>
<tr><td colspan="3">Amount paid</td><td class="n">${m(inv.amountPaid)}</td></tr>${inv.amountCarried ? `
<tr><td colspan="3">Carried to the next invoice (below the minimum card charge)</td><td class="n">${m(inv.amountCarried)}</td></tr>` : ''}
<tr><th colspan="3">Amount due</th><th class="n">${m(inv.status === 'paid' || inv.status === 'void' ? 0 : inv.amountDue)}</th></tr>
</tfoot></table>
</body></html>`;
}
