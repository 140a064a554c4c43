import { eq } from 'drizzle-orm';
import type Stripe from 'stripe';
import type { Db } from '../../platform/db/index.js';
import { tenants } from '../../platform/db/tables.js';
import { badInput, notFound } from '../../platform/errors.js';
import { emitEvent } from '../../platform/jobs/index.js';
import type { RequestScope } from '../../platform/scope/index.js';
import { BILLING_ROOM, ensureAccount, instanceOf, tenantOf } from './common.js';
import { retryFailedNow } from './collection.js';
import { providerUnavailable } from './payments.js';
import { billingAccounts, type BillingAccount } from './tables.js';

/**
 * Payment methods are collected with a SetupIntent: Carebase creates it
 * (and the tenant's Stripe customer), the frontend confirms it with
 * Stripe.js and the client secret, and the setup_intent.succeeded webhook
 * (or `confirmPaymentMethodSetup`, which reads the SetupIntent back) makes
 * its card the default for off-session charges. Only the card's brand, last
 * four digits and expiry are stored.
 */

export type Outcome = 'applied' | 'stale' | 'ignored' | 'already_applied';

/** The tenant's provider customer (created once; the idempotency key keeps it one even across retries). */
async function ensureCustomer(scope: RequestScope, db: Db, acct: BillingAccount): Promise<string> {
  if (acct.customerId) return acct.customerId;
  const [tenant] = await db.select({ name: tenants.name }).from(tenants).where(eq(tenants.id, acct.tenantId));
  const customerId = await instanceOf(scope).payments.createCustomer(acct.tenantId, tenant?.name ?? 'Carebase customer');
  await db.update(billingAccounts).set({ customerId, updatedAt: instanceOf(scope).now() }).where(eq(billingAccounts.tenantId, acct.tenantId));
  return customerId;
}

export async function startPaymentMethodSetup(scope: RequestScope): Promise<{ setupIntentId: string; clientSecret: string; status: string }> {
  const tenantId = tenantOf(scope);
  const db = await scope.db();
  const acct = await ensureAccount(db, tenantId, true);
  const customerId = await ensureCustomer(scope, db, acct);
  const si = await instanceOf(scope).payments.createSetupIntent(customerId, tenantId, `carebase-setup-${tenantId}-${scope.requestId}`);
  await db
    .update(billingAccounts)
    .set({ setupIntentId: si.id, paymentMethodStatus: acct.paymentMethodStatus === 'active' ? 'active' : 'pending', updatedAt: instanceOf(scope).now() })
    .where(eq(billingAccounts.tenantId, tenantId));
  return { setupIntentId: si.id, clientSecret: si.clientSecret, status: si.status };
}

/** Reads a SetupIntent of the tenant back from the provider and applies it (when the webhook is late or lost). */
export async function confirmPaymentMethodSetup(scope: RequestScope, setupIntentId: unknown): Promise<BillingAccount> {
  const tenantId = tenantOf(scope);
  if (typeof setupIntentId !== 'string' || !/^seti_[A-Za-z0-9]{1,64}$/.test(setupIntentId)) throw badInput('Not a SetupIntent id', 'setupIntentId');
  const db = await scope.db();
  const acct = await ensureAccount(db, tenantId, true);
  const si = await instanceOf(scope)
    .payments.stripe.setupIntents.retrieve(setupIntentId)
    .catch((e: { statusCode?: number }) => {
      if (e.statusCode === 404) return null;
      throw providerUnavailable(e, scope.env.log, 'setupIntents.retrieve');
    });
  if (!si || !acct.customerId || si.customer !== acct.customerId) throw notFound('SetupIntent');
  if (si.status === 'succeeded') await applySetupSucceeded(scope, db, acct, si);
  else if (si.last_setup_error) await applySetupFailed(scope, db, acct, si);
  return (await db.select().from(billingAccounts).where(eq(billingAccounts.tenantId, tenantId)))[0]!;
}

/** setup_intent.succeeded: the card becomes the default, unless a newer setup already gave another one. */
export async function applySetupSucceeded(scope: RequestScope, db: Db, acct: BillingAccount, si: Stripe.SetupIntent): Promise<Outcome> {
  const pm = typeof si.payment_method === 'string' ? si.payment_method : si.payment_method?.id;
  if (!pm || !acct.customerId || si.customer !== acct.customerId) return 'ignored';
  if (acct.paymentMethodId === pm && acct.paymentMethodStatus === 'active') return 'already_applied';
  // out of order: with a card on file, only the setup started last (setupIntentId) or a newer one replaces it;
  // an earlier setup's success arriving late is stale (Stripe's `created` has a resolution of one second, so the
  // setup Carebase started last decides between two of the same second)
  if (acct.paymentMethodStatus === 'active' && si.id !== acct.setupIntentId && acct.setupEventCreated !== null && si.created <= acct.setupEventCreated) return 'stale';
  const inst = instanceOf(scope);
  const card = await inst.payments.card(pm);
  await inst.payments.setDefaultPaymentMethod(acct.customerId, pm);
  await db
    .update(billingAccounts)
    .set({
      paymentMethodStatus: 'active',
      paymentMethodId: card.id,
      paymentMethodBrand: card.brand.slice(0, 32),
      paymentMethodLast4: card.last4.slice(0, 4),
      paymentMethodExpires: card.expires.slice(0, 8),
      // the setup started last stays the reference (startPaymentMethodSetup sets it)
      setupIntentId: acct.setupIntentId ?? si.id,
      setupEventCreated: Math.max(si.created, acct.setupEventCreated ?? 0),
      updatedAt: inst.now(),
    })
    .where(eq(billingAccounts.tenantId, acct.tenantId));
  await retryFailedNow(db, acct.tenantId);
  await emitEvent(db, {
    type: 'billing.paymentMethodChanged',
    tenantId: acct.tenantId,
    aggregateId: acct.tenantId,
    payload: { status: 'active' },
    rooms: [`${BILLING_ROOM}:${acct.tenantId}`],
  });
  return 'applied';
}

/** setup_intent.setup_failed: the pending setup failed (a card already on file stays). */
export async function applySetupFailed(scope: RequestScope, db: Db, acct: BillingAccount, si: Stripe.SetupIntent): Promise<Outcome> {
  if (si.customer !== acct.customerId) return 'ignored';
  if (acct.paymentMethodStatus === 'active') return 'stale';
  if (acct.setupIntentId !== si.id) return 'stale';
  await db.update(billingAccounts).set({ paymentMethodStatus: 'failed', updatedAt: instanceOf(scope).now() }).where(eq(billingAccounts.tenantId, acct.tenantId));
  await emitEvent(db, {
    type: 'billing.paymentMethodChanged',
    tenantId: acct.tenantId,
    aggregateId: acct.tenantId,
    payload: { status: 'failed' },
    rooms: [`${BILLING_ROOM}:${acct.tenantId}`],
  });
  return 'applied';
}

export async function paymentMethodOf(scope: RequestScope): Promise<BillingAccount> {
  const tenantId = tenantOf(scope);
  const db = await scope.db();
  const [row] = await db.select().from(billingAccounts).where(eq(billingAccounts.tenantId, tenantId));
  return row ?? ({ tenantId, paymentMethodStatus: 'none', paymentMethodId: null, paymentMethodBrand: null, paymentMethodLast4: null, paymentMethodExpires: null, setupIntentId: null } as BillingAccount);
}
