import { and, eq, inArray, isNotNull, lte, ne, sql } from 'drizzle-orm';
import type { Db } from '../../platform/db/index.js';
import { conflict } from '../../platform/errors.js';
import type { RequestScope } from '../../platform/scope/index.js';
import { DAY_MS, ensureAccount, instanceOf, loadSubscription, notifyAdmins, saveSubscription, tenantOf } from './common.js';
import { assertTransition, enqueueCollection, findInvoice, MIN_CHARGE } from './invoices.js';
import { billingAccounts, billingInvoices, type Invoice } from './tables.js';

/**
 * Collecting invoices and dunning. An open invoice is charged by the
 * billing.collect job (one off-session PaymentIntent per attempt, its
 * idempotency key the invoice and attempt). A failure leaves the invoice
 * open, puts the subscription past_due, tells the admins and schedules the
 * next attempt BILLING_DUNNING_RETRY_DAYS after the first failure; the
 * billing.advance job makes the subscription unpaid after
 * BILLING_UNPAID_AFTER_DAYS. A payment (a retry, or after a new card) makes
 * it active again. Webhooks apply the same transitions (idempotently).
 */

/** The billing.collect job: one attempt at an open invoice (`attempt`: the attempt the job was queued for). */
export async function collectInvoice(scope: RequestScope, invoiceId: string, attempt: number): Promise<'paid' | 'failed' | 'skipped'> {
  const tenantId = tenantOf(scope);
  const inst = instanceOf(scope);
  const db = await scope.db();
  const acct = await ensureAccount(db, tenantId, true);
  const [inv] = await db.select().from(billingInvoices).where(and(eq(billingInvoices.tenantId, tenantId), eq(billingInvoices.id, invoiceId))).for('update');
  // paid meanwhile (a webhook), voided, or this attempt already made by a redelivered job
  if (!inv || (inv.status !== 'open' && inv.status !== 'uncollectible') || inv.attemptCount + 1 !== attempt) return 'skipped';
  if (inv.amountDue === 0) {
    await markPaid(scope, db, inv, null, 0);
    return 'paid';
  }
  if (inv.amountDue < (MIN_CHARGE[inv.currency] ?? 0)) {
    // below the minimum card charge: settled by carrying the amount to the next invoice (Stripe's customer balance)
    await db
      .update(billingInvoices)
      .set({ status: 'paid', paidAt: inst.now(), amountCarried: inv.amountDue, amountDue: 0, nextPaymentAttempt: null })
      .where(and(eq(billingInvoices.tenantId, tenantId), eq(billingInvoices.id, inv.id)));
    await db.update(billingAccounts).set({ balance: sql`${billingAccounts.balance} + ${inv.amountDue}`, updatedAt: inst.now() }).where(eq(billingAccounts.tenantId, tenantId));
    return 'paid';
  }
  if (acct.paymentMethodStatus !== 'active' || !acct.paymentMethodId || !acct.customerId) {
    await markFailed(scope, db, inv, null, 'no_payment_method');
    return 'failed';
  }
  const result = await inst.payments.charge({
    tenantId,
    invoiceId: inv.id,
    invoiceNumber: inv.number,
    attempt,
    customerId: acct.customerId,
    paymentMethodId: acct.paymentMethodId,
    amount: inv.amountDue,
    currency: inv.currency,
  });
  if (result.status === 'succeeded') {
    await markPaid(scope, db, inv, result.paymentIntentId, result.amountReceived);
    return 'paid';
  }
  await markFailed(scope, db, inv, result.paymentIntentId, result.declineCode);
  return 'failed';
}

/** The invoice is paid: the subscription is active again when nothing else is owed. */
export async function markPaid(scope: RequestScope, db: Db, inv: Invoice, paymentIntentId: string | null, amount: number): Promise<void> {
  const now = instanceOf(scope).now();
  assertTransition(inv.status, 'paid');
  await db
    .update(billingInvoices)
    .set({ status: 'paid', paidAt: now, amountPaid: amount, attemptCount: inv.attemptCount + (paymentIntentId ? 1 : 0), amountDue: inv.amountDue - amount < 0 ? 0 : inv.amountDue - amount, nextPaymentAttempt: null, lastPaymentError: null, ...(paymentIntentId ? { paymentIntentId } : {}) })
    .where(and(eq(billingInvoices.tenantId, inv.tenantId), eq(billingInvoices.id, inv.id)));
  await recoverIfSettled(scope, db, inv.tenantId, inv.attemptCount > 0 ? inv.id : null);
}

async function recoverIfSettled(scope: RequestScope, db: Db, tenantId: string, recoveredInvoiceId: string | null): Promise<void> {
  const sub = await loadSubscription(db, tenantId, true);
  if (!sub || (sub.status !== 'past_due' && sub.status !== 'unpaid')) return;
  const owed = await db
    .select({ id: billingInvoices.id })
    .from(billingInvoices)
    .where(and(eq(billingInvoices.tenantId, tenantId), eq(billingInvoices.subscriptionId, sub.id), inArray(billingInvoices.status, ['open', 'uncollectible'])));
  if (owed.length) return;
  await saveSubscription(scope, db, sub, { status: 'active', pastDueSince: null }, 'payment_recovered');
  await notifyAdmins(db, tenantId, 'payment_recovered', recoveredInvoiceId, {}, instanceOf(scope).now());
}

/** A failed attempt: dunning (past_due, the admins told, the next attempt scheduled). */
export async function markFailed(scope: RequestScope, db: Db, inv: Invoice, paymentIntentId: string | null, declineCode: string): Promise<void> {
  const inst = instanceOf(scope);
  const now = inst.now();
  const attempts = inv.attemptCount + 1;
  const firstFailedAt = inv.firstFailedAt ?? now;
  const retryDay = inst.settings.retryDays[attempts - 1];
  const next = retryDay === undefined ? null : new Date(firstFailedAt.getTime() + retryDay * DAY_MS);
  await db
    .update(billingInvoices)
    .set({ attemptCount: attempts, firstFailedAt, nextPaymentAttempt: inv.status === 'open' ? next : null, lastPaymentError: code(declineCode), ...(paymentIntentId ? { paymentIntentId } : {}) })
    .where(and(eq(billingInvoices.tenantId, inv.tenantId), eq(billingInvoices.id, inv.id)));
  const sub = await loadSubscription(db, inv.tenantId, true);
  if (sub && (sub.status === 'active' || sub.status === 'trialing')) await saveSubscription(scope, db, sub, { status: 'past_due', pastDueSince: now }, 'payment_failed');
  await notifyAdmins(db, inv.tenantId, 'payment_failed', inv.id, { attempt: attempts, declineCode: code(declineCode), nextAttemptAt: next ? next.toISOString() : null }, now);
}

const code = (c: string) => (/^[a-z0-9_]{1,64}$/.test(c) ? c : 'payment_failed');

/** Open invoices whose next attempt is due: queued for collection (the schedule's advance job). */
export async function queueDueRetries(scope: RequestScope): Promise<number> {
  const tenantId = tenantOf(scope);
  const now = instanceOf(scope).now();
  const db = await scope.db();
  const due = await db
    .update(billingInvoices)
    .set({ nextPaymentAttempt: null })
    .where(and(eq(billingInvoices.tenantId, tenantId), eq(billingInvoices.status, 'open'), isNotNull(billingInvoices.nextPaymentAttempt), lte(billingInvoices.nextPaymentAttempt, now)))
    .returning();
  for (const inv of due) await enqueueCollection(db, inv);
  return due.length;
}

/** Billing staff ask for another attempt now (e.g. after updating the card); an uncollectible invoice may be paid too. */
export async function retryInvoicePayment(scope: RequestScope, invoiceId: unknown): Promise<Invoice> {
  const db = await scope.db();
  await ensureAccount(db, tenantOf(scope), true);
  const inv = await findInvoice(scope, invoiceId, true);
  if (inv.status !== 'open' && inv.status !== 'uncollectible') throw conflict(`An invoice that is ${inv.status} cannot be paid`);
  const [row] = await db
    .update(billingInvoices)
    .set({ nextPaymentAttempt: null })
    .where(and(eq(billingInvoices.tenantId, inv.tenantId), eq(billingInvoices.id, inv.id)))
    .returning();
  await enqueueCollection(db, row!);
  return row!;
}

/** Voids an open or uncollectible invoice (nothing is owed on it any more). */
export async function voidInvoice(scope: RequestScope, invoiceId: unknown): Promise<Invoice> {
  const db = await scope.db();
  await ensureAccount(db, tenantOf(scope), true);
  const inv = await findInvoice(scope, invoiceId, true);
  assertTransition(inv.status, 'void');
  const [row] = await db
    .update(billingInvoices)
    .set({ status: 'void', voidedAt: instanceOf(scope).now(), nextPaymentAttempt: null, amountDue: 0 })
    .where(and(eq(billingInvoices.tenantId, inv.tenantId), eq(billingInvoices.id, inv.id)))
    .returning();
  await recoverIfSettled(scope, db, inv.tenantId, null);
  return row!;
}

/** After a new card: invoices that failed (open or uncollectible) are tried again at once. */
export async function retryFailedNow(db: Db, tenantId: string): Promise<number> {
  const rows = await db
    .update(billingInvoices)
    .set({ nextPaymentAttempt: null })
    .where(and(eq(billingInvoices.tenantId, tenantId), inArray(billingInvoices.status, ['open', 'uncollectible']), ne(billingInvoices.attemptCount, 0)))
    .returning();
  for (const inv of rows) await enqueueCollection(db, inv);
  return rows.length;
}
