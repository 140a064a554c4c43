import { randomUUID } from 'node:crypto';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../../helpers/app.js';
import { adminSession, createTenantWithAdmin, type AuthSession, type TestTenant } from '../../helpers/auth.js';
import { until } from '../../helpers/realtime.js';
import { addCard, billingOf, FakeClock, gqlOk, invoices, startBillingApp, subscription, WEBHOOK_SECRET } from './helpers.js';

/**
 * POST /webhooks/stripe: signatures verified with the SDK on the raw body
 * (signatures built with stripe.webhooks.generateTestHeaderString), each
 * event stored once by id and processed exactly once by a job (retried by
 * the job system), out-of-order events ending in the right state.
 */
const clock = new FakeClock(Date.now());
let t: TestApp;
let W: TestTenant;
let V: TestTenant;
let w: AuthSession;
let v: AuthSession;
let customerW: string;
let openInvoiceId: string;
const sdk = new Stripe('sk_test_unused', { telemetry: false });

const sign = (payload: string, opts: { secret?: string; timestamp?: number } = {}) =>
  sdk.webhooks.generateTestHeaderString({ payload, secret: opts.secret ?? WEBHOOK_SECRET, timestamp: opts.timestamp });
const post = (payload: string, signature?: string) =>
  fetch(`${t.url}/webhooks/stripe`, { method: 'POST', headers: { 'content-type': 'application/json', ...(signature ? { 'stripe-signature': signature } : {}) }, body: payload });
const stored = async () => (await t.db.owner<{ n: number }[]>`select count(*)::int as n from billing_webhook_events`)[0]!.n;
const queued = async () => (await t.db.owner<{ n: number }[]>`select count(*)::int as n from outbox where 'billing.processWebhook' = any(jobs)`)[0]!.n;
const eventRow = async (id: string) =>
  (await t.db.owner<{ processed_at: Date | null; outcome: string | null }[]>`select processed_at, outcome from billing_webhook_events where id = ${id}`)[0];
const errorOf = async (res: Response) => ((await res.json()) as { errors: { extensions: Record<string, unknown> }[] }).errors[0]!.extensions;

function event(type: string, object: Record<string, unknown>, created = Math.floor(Date.now() / 1000)) {
  return { id: `evt_${randomUUID().replace(/-/g, '')}`, object: 'event', api_version: '2026-10-28.endive', created, livemode: false, pending_webhooks: 1, request: { id: null, idempotency_key: null }, type, data: { object } };
}

function paymentIntent(id: string, status: 'succeeded' | 'requires_payment_method', amount: number, created: number, invoiceId: string, tenantId: string, customer: string) {
  return {
    id,
    object: 'payment_intent',
    amount,
    amount_received: status === 'succeeded' ? amount : 0,
    currency: 'usd',
    customer,
    created,
    status,
    metadata: { invoice_id: invoiceId, tenant_id: tenantId, attempt: '9' },
    last_payment_error: status === 'succeeded' ? null : { type: 'card_error', code: 'card_declined', decline_code: 'insufficient_funds' },
  };
}

beforeAll(async () => {
  t = await startBillingApp(clock, { LOCK_TIMEOUT_MS: '300' });
  [W, V] = await Promise.all([createTenantWithAdmin(t), createTenantWithAdmin(t)]);
  [w, v] = await Promise.all([adminSession(t, W), adminSession(t, V)]);
  // W: a card every charge of which is declined -> its first invoice stays open, the subscription past_due
  await addCard(t, w.headers, 'pm_card_chargeCustomerFail');
  await gqlOk(t, 'mutation { subscribeBilling(priceId: "starter_monthly") { id } }', {}, w.headers);
  const inv = await until(async () => (await invoices(t, w.headers)).find((i) => i.attemptCount === 1));
  openInvoiceId = inv.id;
  customerW = (await t.db.owner<{ customer_id: string }[]>`select customer_id from billing_accounts where tenant_id = ${W.id}`)[0]!.customer_id;
}, 120_000);

afterAll(async () => {
  await t?.close();
});

describe('signature verification (nothing stored when refused)', () => {
  it('refuses a bad signature, a missing one, a stale timestamp and a tampered body with a 400', async () => {
    const before = [await stored(), await queued()];
    const payload = JSON.stringify(event('payment_intent.succeeded', paymentIntent('pi_x1', 'succeeded', 49_900, 1, openInvoiceId, W.id, customerW)), null, 2);
    const wrongSecret = await post(payload, sign(payload, { secret: 'whsec_notthesecret0123456789abc' }));
    expect([wrongSecret.status, await errorOf(wrongSecret)]).toEqual([400, expect.objectContaining({ code: 'BAD_REQUEST', reason: 'invalid_signature' })]);
    const missing = await post(payload);
    expect([missing.status, (await errorOf(missing)).reason]).toEqual([400, 'missing_signature']);
    const stale = await post(payload, sign(payload, { timestamp: Math.floor(Date.now() / 1000) - 600 }));
    expect([stale.status, (await errorOf(stale)).reason]).toEqual([400, 'stale_timestamp']);
    const tampered = await post(payload.replace('49900', '1'), sign(payload));
    expect([tampered.status, (await errorOf(tampered)).reason]).toEqual([400, 'invalid_signature']);
    const garbage = await post('{"not":"an event"', sign('{"not":"an event"'));
    expect(garbage.status).toBe(400);
    expect([await stored(), await queued()]).toEqual(before);
    expect((await invoices(t, w.headers)).find((i) => i.id === openInvoiceId)!.status).toBe('OPEN');
  });

  it('answers 404 for a customer Carebase did not create, and 400 for amounts that are not integers of minor units', async () => {
    const before = [await stored(), await queued()];
    const foreign = JSON.stringify(event('payment_intent.succeeded', paymentIntent('pi_x2', 'succeeded', 100, 1, openInvoiceId, W.id, 'cus_somebodyelse')));
    const r = await post(foreign, sign(foreign));
    expect([r.status, (await errorOf(r)).code]).toEqual([404, 'NOT_FOUND']);
    const fractional = JSON.stringify(event('payment_intent.succeeded', { ...paymentIntent('pi_x3', 'succeeded', 100, 1, openInvoiceId, W.id, customerW), amount: 499.5 }));
    const f = await post(fractional, sign(fractional));
    expect([f.status, await errorOf(f)]).toEqual([400, expect.objectContaining({ code: 'BAD_USER_INPUT', field: 'data.object.amount' })]);
    expect([await stored(), await queued()]).toEqual(before);
  });
});

describe('exactly once, in any order', () => {
  it('stores and processes a replayed event once', async () => {
    // an event Carebase does not act on: stored, processed (outcome ignored), once
    const e = event('customer.updated', { id: customerW, object: 'customer' });
    const payload = JSON.stringify(e);
    const before = await queued();
    const answers = await Promise.all([1, 2, 3, 4, 5].map(() => post(payload, sign(payload))));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
    const bodies = (await Promise.all(answers.map((a) => a.json()))) as { duplicate: boolean }[];
    expect(bodies.filter((b) => !b.duplicate)).toHaveLength(1);
    expect(await queued()).toBe(before + 1);
    const row = await until(async () => ((await eventRow(e.id))?.processed_at ? eventRow(e.id) : null));
    expect(row!.outcome).toBe('ignored');
    const again = await post(payload, sign(payload));
    expect(((await again.json()) as { duplicate: boolean }).duplicate).toBe(true);
    expect(await queued()).toBe(before + 1);
  });

  it('ends paid when a payment success arrives before an older failure of the same invoice', async () => {
    const now = Math.floor(Date.now() / 1000);
    const pi = `pi_ooo${randomUUID().slice(0, 8)}`;
    const success = event('payment_intent.succeeded', paymentIntent(pi, 'succeeded', 49_900, now, openInvoiceId, W.id, customerW), now + 20);
    const failure = event('payment_intent.payment_failed', paymentIntent(pi, 'requires_payment_method', 49_900, now, openInvoiceId, W.id, customerW), now + 10);
    const s = JSON.stringify(success);
    expect((await post(s, sign(s))).status).toBe(200);
    await until(async () => (await eventRow(success.id))?.processed_at);
    const f = JSON.stringify(failure);
    expect((await post(f, sign(f))).status).toBe(200);
    const row = await until(async () => ((await eventRow(failure.id))?.processed_at ? eventRow(failure.id) : null));
    expect([(await eventRow(success.id))!.outcome, row!.outcome]).toEqual(['applied', 'stale']);
    const inv = (await invoices(t, w.headers)).find((i) => i.id === openInvoiceId)!;
    expect([inv.status, inv.amountPaid.amount]).toEqual(['PAID', 49_900]);
    expect((await subscription(t, w.headers))!.status).toBe('ACTIVE');
  });

  it('keeps the card of the setup started last when the simulator delivers the setups\u2019 webhooks in reverse order', async () => {
    const start = () => gqlOk<{ startPaymentMethodSetup: { setupIntentId: string } }>(t, 'mutation { startPaymentMethodSetup { setupIntentId } }', {}, v.headers);
    const first = (await start()).startPaymentMethodSetup.setupIntentId;
    const second = (await start()).startPaymentMethodSetup.setupIntentId;
    const payments = billingOf(t).payments;
    payments.simulator!.holdWebhooks();
    await payments.stripe.setupIntents.confirm(second, { payment_method: 'pm_card_mastercard' });
    await payments.stripe.setupIntents.confirm(first, { payment_method: 'pm_card_visa' });
    payments.simulator!.releaseWebhooks('reverse'); // the first setup's events arrive first
    const outcomes = await until(async () => {
      const rows = await t.db.owner<{ object_id: string; outcome: string | null }[]>`
        select object_id, outcome from billing_webhook_events where tenant_id = ${V.id} and type = 'setup_intent.succeeded' and processed_at is not null`;
      return rows.length === 2 ? Object.fromEntries(rows.map((r) => [r.object_id, r.outcome])) : null;
    });
    expect(outcomes[second]).toBe('applied');
    const pm = await gqlOk<{ billingPaymentMethod: { status: string; brand: string; last4: string } }>(t, '{ billingPaymentMethod { status brand last4 } }', {}, v.headers);
    expect(pm.billingPaymentMethod).toEqual({ status: 'ACTIVE', brand: 'mastercard', last4: '4444' });
  });

  it('retries a failed processing through the job system until it applies', async () => {
    // the tenant's billing row is held by another transaction: the first attempt times out on the lock and fails
    const si = (await gqlOk<{ startPaymentMethodSetup: { setupIntentId: string } }>(t, 'mutation { startPaymentMethodSetup { setupIntentId } }', {}, w.headers)).startPaymentMethodSetup.setupIntentId;
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const holder = t.db.owner.begin(async (tx) => {
      await tx`select set_config('app.tenant_id', ${W.id}, true)`;
      await tx`select 1 from billing_accounts where tenant_id = ${W.id} for update`;
      await released;
    });
    const failedBefore = t.logs.filter((l) => l.msg === 'job attempt failed' && l.queue === 'billing.processWebhook').length;
    await billingOf(t).payments.stripe.setupIntents.confirm(si, { payment_method: 'pm_card_amex' });
    await until(() => t.logs.filter((l) => l.msg === 'job attempt failed' && l.queue === 'billing.processWebhook').length > failedBefore);
    release();
    await holder;
    const pm = await until(async () => {
      const d = await gqlOk<{ billingPaymentMethod: { brand: string } }>(t, '{ billingPaymentMethod { brand } }', {}, w.headers);
      return d.billingPaymentMethod.brand === 'amex' ? d.billingPaymentMethod : null;
    });
    expect(pm.brand).toBe('amex');
  });
});
