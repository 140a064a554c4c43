import type { Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../../helpers/app.js';
import { adminSession, createTenantWithAdmin, type AuthSession, type TestTenant } from '../../helpers/auth.js';
import { connect, next, request, until } from '../../helpers/realtime.js';
import { addCard, entitlementsOf, FakeClock, gqlOk, invoices, startBillingApp, subscription, type InvoiceView } from './helpers.js';

/**
 * Dunning on the module's fake clock, through the real schedule
 * (billing.sweep on BullMQ), the real collection jobs and the Stripe
 * simulator: a declined card puts the subscription past_due (the plan's
 * modules stay: grace), payment is retried 1, 3 and 5 days after the first
 * failure with a notice to the admins each time, and after 10 days the
 * subscription is unpaid (core modules only, the invoice uncollectible).
 * A new card pays what is owed at once and the subscription is active again.
 * D never fixes its card in time; E does on day 2.
 */
const T0 = Date.parse('2027-06-01T00:00:00Z');
const DAY = 86_400_000;
const clock = new FakeClock(T0);
let t: TestApp;
let D: TestTenant;
let E: TestTenant;
let d: AuthSession;
let e: AuthSession;
let invoiceD: string;
let socket: Socket;

const invoiceOf = async (s: AuthSession, id: string): Promise<InvoiceView> => (await invoices(t, s.headers)).find((i) => i.id === id)!;
const attempts = (s: AuthSession, id: string, n: number) => until(async () => ((await invoiceOf(s, id)).attemptCount === n ? invoiceOf(s, id) : null));
const notices = async (s: AuthSession) =>
  (await gqlOk<{ billingNotifications: { kind: string; invoiceId: string | null; detail: Record<string, unknown> }[] }>(t, '{ billingNotifications(first: 50) { kind invoiceId detail } }', {}, s.headers)).billingNotifications;
const at = (days: number, minutes = 1) => new Date(T0 + days * DAY + minutes * 60_000).toISOString();

beforeAll(async () => {
  t = await startBillingApp(clock);
  [D, E] = await Promise.all([createTenantWithAdmin(t), createTenantWithAdmin(t)]);
  [d, e] = await Promise.all([adminSession(t, D), adminSession(t, E)]);
  socket = await connect(t.url, d.token);
  expect((await request(socket, 'room:join', { room: `billing:${D.id}` })).ok).toBe(true);
}, 120_000);

afterAll(async () => {
  socket?.close();
  await t?.close();
});

describe('dunning timeline', () => {
  it('day 0: the first charge is declined: invoice open, subscription past_due with the plan kept (grace), admins told', async () => {
    const heard = next<{ type: string; payload: { kind: string } }>(socket, 'event', 15_000, (ev) => ev.type === 'billing.notification' && ev.payload.kind === 'payment_failed');
    for (const s of [d, e]) {
      await addCard(t, s.headers, 'pm_card_chargeCustomerFail');
      await gqlOk(t, 'mutation { subscribeBilling(priceId: "starter_monthly") { id } }', {}, s.headers);
    }
    invoiceD = (await invoices(t, d.headers))[0]!.id;
    const inv = await attempts(d, invoiceD, 1);
    expect(inv).toMatchObject({ status: 'OPEN', lastPaymentError: 'generic_decline', nextPaymentAttempt: '2027-06-02T00:00:00.000Z' });
    expect(await subscription(t, d.headers)).toMatchObject({ status: 'PAST_DUE', pastDueSince: '2027-06-01T00:00:00.000Z' });
    expect(await entitlementsOf(t, D.id)).toEqual(['patients', 'telehealth']);
    expect((await heard).payload.kind).toBe('payment_failed');
    expect((await notices(d))[0]).toMatchObject({ kind: 'payment_failed', invoiceId: invoiceD, detail: { attempt: 1, declineCode: 'generic_decline', nextAttemptAt: '2027-06-02T00:00:00.000Z' } });
  });

  it('retries on days 1, 3 and 5 after the first failure, telling the admins each time', async () => {
    const expected: [number, string | null][] = [
      [1, '2027-06-04T00:00:00.000Z'],
      [3, '2027-06-06T00:00:00.000Z'],
      [5, null],
    ];
    for (const [day, nextAttempt] of expected) {
      // nothing happens before the retry is due
      clock.set(at(day, -1));
      await new Promise((r) => setTimeout(r, 600)); // a couple of schedule runs at this clock (not a timing assertion)
      expect((await invoiceOf(d, invoiceD)).attemptCount).toBe(expected.findIndex((x) => x[0] === day) + 1);
      clock.set(at(day));
      const n = expected.findIndex((x) => x[0] === day) + 2;
      const inv = await attempts(d, invoiceD, n);
      expect(inv.nextPaymentAttempt).toBe(nextAttempt);
      expect((await subscription(t, d.headers))!.status).toBe('PAST_DUE');
      if (day === 1) {
        // E puts in a working card on day 2: the open invoice is retried at once and paid
        clock.set(at(2));
        await addCard(t, e.headers, 'pm_card_visa');
        await until(async () => ((await subscription(t, e.headers))!.status === 'ACTIVE' ? true : null));
        expect((await invoices(t, e.headers))[0]).toMatchObject({ status: 'PAID', attemptCount: 3 }); // failed on days 0 and 1, paid on day 2
        expect((await notices(e)).map((x) => x.kind)).toEqual(['payment_recovered', 'payment_failed', 'payment_failed']);
      }
    }
    expect((await notices(d)).filter((x) => x.kind === 'payment_failed').map((x) => x.detail.attempt)).toEqual([4, 3, 2, 1]);
  });

  it('day 10: unpaid: the invoice uncollectible, core modules only, admins told', async () => {
    clock.set(at(10));
    const s = await until(async () => {
      const v = await subscription(t, d.headers);
      return v?.status === 'UNPAID' ? v : null;
    });
    expect(s.plan.id).toBe('starter');
    expect((await invoiceOf(d, invoiceD)).status).toBe('UNCOLLECTIBLE');
    expect(await entitlementsOf(t, D.id)).toEqual([]);
    expect((await notices(d))[0]).toMatchObject({ kind: 'subscription_unpaid', detail: { days: 10 } });
    // a plan change is refused while unpaid, changing nothing
    const r = await t.gql('mutation { changeBillingPlan(priceId: "professional_monthly") { effective } }', {}, d.headers);
    expect(r.body.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    expect((await subscription(t, d.headers))!.version).toBe(s.version);
    // E, who paid on day 2, is untouched
    expect((await subscription(t, e.headers))!.status).toBe('ACTIVE');
  });

  it('a new card pays the uncollectible invoice at once: active again, the plan\u2019s modules back', async () => {
    clock.set(at(12));
    await addCard(t, d.headers, 'pm_card_visa');
    const s = await until(async () => {
      const v = await subscription(t, d.headers);
      return v?.status === 'ACTIVE' ? v : null;
    });
    expect(s.pastDueSince).toBeNull();
    expect(await invoiceOf(d, invoiceD)).toMatchObject({ status: 'PAID', attemptCount: 5, amountPaid: { amount: 49_900 } });
    expect(await entitlementsOf(t, D.id)).toEqual(['patients', 'telehealth']);
    expect((await notices(d))[0]!.kind).toBe('payment_recovered');
  });
});
