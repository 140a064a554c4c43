import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import type { Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { billingInvoices } from '../../../src/modules/billing/tables.js';
import { BILLING_PERMISSIONS } from '../../../src/modules/billing/index.js';
import { withTenant } from '../../../src/platform/db/index.js';
import { permissionCatalog } from '../../../src/schema/index.js';
import type { TestApp } from '../../helpers/app.js';
import { adminSession, createTenantWithAdmin, type AuthSession, type TestTenant } from '../../helpers/auth.js';
import { connect, next, request, until } from '../../helpers/realtime.js';
import {
  addCard,
  code,
  entitlementsOf,
  FakeClock,
  gqlOk,
  INVOICE_FIELDS,
  invoices,
  startBillingApp,
  SUB_FIELDS,
  subscription,
  type InvoiceView,
  type SubView,
} from './helpers.js';

/**
 * The billing module over GraphQL/HTTP with the real identity module, the
 * Stripe simulator through the stripe SDK, real BullMQ workers and a fake
 * module clock: trials, seats, upgrades with exact proration, downgrades,
 * cancellation, renewal, trial expiry and conversion, entitlement gating,
 * invoices (HTML route, audited), tenant isolation, realtime events.
 *
 * Timeline (the module clock): 2027-03-01 00:00 UTC: A subscribes to
 * Starter; B and C start trials. 2027-03-11 09:17:45: A upgrades to
 * Professional. 2027-04-01 00:00:30: A renews (its scheduled downgrade
 * applied); B's and C's trials ended on 2027-03-15.
 */
const clock = new FakeClock(Date.parse('2027-03-01T00:00:00Z'));
let t: TestApp;
let A: TestTenant;
let B: TestTenant;
let C: TestTenant;
let a: AuthSession;
let b: AuthSession;
let c: AuthSession;
const open: Socket[] = [];

const TRIAL = 'mutation ($planId: String) { startBillingTrial(planId: $planId) { ' + SUB_FIELDS + ' } }';
const SUBSCRIBE = 'mutation ($priceId: String!) { subscribeBilling(priceId: $priceId) { ' + SUB_FIELDS + ' } }';
const CHANGE = 'mutation ($priceId: String!) { changeBillingPlan(priceId: $priceId) { effective subscription { ' + SUB_FIELDS + ' } invoice { ' + INVOICE_FIELDS + ' } } }';
const INVITE = 'mutation ($input: InviteUserInput!) { inviteUser(input: $input) { user { id } } }';

const invite = (s: AuthSession, role: string) => t.gql<{ inviteUser: { user: { id: string } } }>(INVITE, { input: { email: `${role.toLowerCase()}-${randomUUID()}@example.test`, displayName: 'Dr Test', roles: [role] } }, s.headers);
const usersCount = async (tenantId: string) => (await t.db.owner<{ n: number }[]>`select count(*)::int as n from users where tenant_id = ${tenantId}`)[0]!.n;
const fixture = (s: AuthSession) => t.gql('{ populationHealthFixture }', {}, s.headers);
const paid = async (s: AuthSession, id: string) => until(async () => (await invoices(t, s.headers)).find((i) => i.id === id && i.status === 'PAID'));

beforeAll(async () => {
  t = await startBillingApp(clock);
  [A, B, C] = await Promise.all([createTenantWithAdmin(t), createTenantWithAdmin(t), createTenantWithAdmin(t)]);
  [a, b, c] = await Promise.all([adminSession(t, A), adminSession(t, B), adminSession(t, C)]);
}, 120_000);

afterAll(async () => {
  for (const s of open) s.close();
  await t?.close();
});

describe('plans, vocabulary and tables', () => {
  it('lists the plans with prices in minor units', async () => {
    const d = await gqlOk<{ billingPlans: { id: string; providerSeats: number | null; monthly: { id: string; price: { amount: number; currency: string; formatted: string } }; annual: { price: { amount: number } }; includedApiCallsPerMonth: number; apiOveragePer1000: { amount: number } }[] }>(
      t,
      '{ billingPlans { id providerSeats monthly { id price { amount currency formatted } } annual { price { amount } } includedApiCallsPerMonth apiOveragePer1000 { amount } } }',
      {},
      a.headers,
    );
    expect(d.billingPlans.map((p) => [p.id, p.providerSeats, p.monthly.price.amount, p.annual.price.amount, p.monthly.price.formatted])).toEqual([
      ['starter', 5, 49_900, 499_000, '$499.00'],
      ['professional', 20, 149_900, 1_499_000, '$1,499.00'],
      ['enterprise', null, 499_900, 4_999_000, '$4,999.00'],
    ]);
  });

  it('declares billing:read/billing:manage for ADMIN and BILLING, and every billing table has forced RLS', async () => {
    const catalog = permissionCatalog([{ name: 'billing', phase: 3, description: '', dependsOn: [], permissions: BILLING_PERMISSIONS }]);
    expect(catalog.forRoles(['BILLING']).has('billing:manage')).toBe(true);
    expect(catalog.forRoles(['ADMIN']).has('billing:read')).toBe(true);
    expect(catalog.forRoles(['PROVIDER']).has('billing:read')).toBe(false);
    const rls = await t.db.owner<{ relname: string; e: boolean; f: boolean }[]>`
      select relname, relrowsecurity as e, relforcerowsecurity as f from pg_class where relname like 'billing\\_%' and relkind = 'r' order by relname`;
    expect(rls.length).toBe(8);
    expect(rls.every((r) => r.e && r.f)).toBe(true);
  });

  it('refuses callers without billing:read (a provider) and anonymous ones', async () => {
    const anon = await t.gql(`{ billingSubscription { id } }`);
    expect(['UNAUTHENTICATED', 'FORBIDDEN']).toContain(code(anon.body));
  });
});

describe('trial (tenant B, no card)', () => {
  it('refuses an unknown plan, changing nothing', async () => {
    const r = await t.gql(TRIAL, { planId: 'platinum' }, b.headers);
    expect(code(r.body)).toBe('BAD_USER_INPUT');
    expect(r.body.errors?.[0]?.extensions?.field).toBe('planId');
    expect(await subscription(t, b.headers)).toBeNull();
    expect(await entitlementsOf(t, B.id)).toBeNull();
  });

  it('starts a 14-day trial without a card: trialing, the plan\u2019s modules entitled', async () => {
    const d = await gqlOk<{ startBillingTrial: SubView }>(t, TRIAL, { planId: 'starter' }, b.headers);
    expect(d.startBillingTrial).toMatchObject({ status: 'TRIALING', plan: { id: 'starter' }, trialEnd: '2027-03-15T00:00:00.000Z', providerSeatsUsed: 0 });
    expect(await entitlementsOf(t, B.id)).toEqual(['patients', 'telehealth']);
    // a module Starter lacks: FEATURE_NOT_ENTITLED
    const denied = await fixture(b);
    expect(code(denied.body)).toBe('FEATURE_NOT_ENTITLED');
    expect(denied.body.errors?.[0]?.extensions?.feature).toBe('population-health');
  });

  it('refuses a second trial with TRIAL_ALREADY_USED, changing nothing', async () => {
    const before = await subscription(t, b.headers);
    const r = await t.gql(TRIAL, { planId: 'enterprise' }, b.headers);
    expect(code(r.body)).toBe('TRIAL_ALREADY_USED');
    expect(await subscription(t, b.headers)).toEqual(before);
  });
});

describe('provider seats (tenant B: Starter trial, 5 seats)', () => {
  let nurseId: string;
  const providers: string[] = [];

  it('counts invited providers against the plan and refuses the sixth with SEAT_LIMIT_REACHED', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await invite(b, 'PROVIDER');
      expect(r.body.errors).toBeUndefined();
      providers.push(r.body.data!.inviteUser.user.id);
    }
    expect((await subscription(t, b.headers))!.providerSeatsUsed).toBe(5);
    const before = await usersCount(B.id);
    const sixth = await invite(b, 'PROVIDER');
    expect(code(sixth.body)).toBe('SEAT_LIMIT_REACHED');
    expect(sixth.body.errors?.[0]?.extensions).toMatchObject({ limit: 5, inUse: 6, planId: 'starter' });
    expect(await usersCount(B.id)).toBe(before);
  });

  it('refuses making another user a provider, and frees a seat when a provider is deactivated', async () => {
    const nurse = await invite(b, 'NURSE');
    nurseId = nurse.body.data!.inviteUser.user.id;
    const r = await t.gql('mutation ($u: UUID!) { setUserRoles(userId: $u, roles: [PROVIDER]) { roles } }', { u: nurseId }, b.headers);
    expect(code(r.body)).toBe('SEAT_LIMIT_REACHED');
    const [row] = await t.db.owner<{ roles: string[] }[]>`select roles from users where id = ${nurseId}`;
    expect(row!.roles).toEqual(['NURSE']);
    await gqlOk(t, 'mutation ($u: UUID!) { deactivateUser(userId: $u) { id } }', { u: providers[0] }, b.headers);
    await gqlOk(t, 'mutation ($u: UUID!) { setUserRoles(userId: $u, roles: [PROVIDER]) { roles } }', { u: nurseId }, b.headers);
    // reactivating the deactivated provider would be a sixth
    const back = await t.gql('mutation ($u: UUID!) { reactivateUser(userId: $u) { id } }', { u: providers[0] }, b.headers);
    expect(code(back.body)).toBe('SEAT_LIMIT_REACHED');
  });

  it('moves the trial to Enterprise: unlimited seats and population health entitled', async () => {
    const d = await gqlOk<{ changeBillingPlan: { effective: string; subscription: SubView; invoice: null } }>(t, CHANGE, { priceId: 'enterprise_monthly' }, b.headers);
    expect(d.changeBillingPlan).toMatchObject({ effective: 'NOW', invoice: null, subscription: { status: 'TRIALING', plan: { id: 'enterprise' } } });
    expect(await entitlementsOf(t, B.id)).toEqual(['eprescribing', 'patients', 'population-health', 'revenue-cycle', 'telehealth']);
    expect((await fixture(b)).body.data).toEqual({ populationHealthFixture: 'ok' });
    expect((await invite(b, 'PROVIDER')).body.errors).toBeUndefined();
  });
});

describe('trial with a card (tenant C)', () => {
  it('starts a Professional trial and adds a card through a SetupIntent (the webhook makes it active)', async () => {
    await gqlOk(t, TRIAL, {}, c.headers);
    const card = await addCard(t, c.headers);
    expect(card.last4).toBe('4242');
  });
});

describe('subscription, upgrade and downgrade (tenant A)', () => {
  let sub: SubView;

  it('refuses to subscribe without a card, or to an unknown price, changing nothing', async () => {
    const noCard = await t.gql(SUBSCRIBE, { priceId: 'starter_monthly' }, a.headers);
    expect(code(noCard.body)).toBe('CONFLICT');
    expect(noCard.body.errors?.[0]?.extensions?.reason).toBe('payment_method_required');
    const unknown = await t.gql(SUBSCRIBE, { priceId: 'starter_weekly' }, a.headers);
    expect([code(unknown.body), unknown.body.errors?.[0]?.extensions?.field]).toEqual(['BAD_USER_INPUT', 'priceId']);
    expect(await subscription(t, a.headers)).toBeNull();
    expect(await invoices(t, a.headers)).toEqual([]);
  });

  it('subscribes to Starter monthly: the first period is invoiced and collected from the card', async () => {
    await addCard(t, a.headers);
    sub = (await gqlOk<{ subscribeBilling: SubView }>(t, SUBSCRIBE, { priceId: 'starter_monthly' }, a.headers)).subscribeBilling;
    expect(sub).toMatchObject({ status: 'ACTIVE', interval: 'MONTH', currentPeriodStart: '2027-03-01T00:00:00.000Z', currentPeriodEnd: '2027-04-01T00:00:00.000Z' });
    const [first] = await invoices(t, a.headers);
    expect(first!.number).toBe(`CB-${A.id.slice(0, 8).toUpperCase()}-00001`);
    const inv = await paid(a, first!.id);
    expect(inv.total).toEqual({ amount: 49_900, currency: 'usd' });
    expect(inv.amountPaid.amount).toBe(49_900);
    expect(inv.lines.map((l) => [l.kind, l.quantity, l.amount.amount])).toEqual([
      ['PLAN', 1, 49_900],
      ['SEATS', 0, 0],
      ['TAX', 1, 0],
    ]);
    expect(await entitlementsOf(t, A.id)).toEqual(['patients', 'telehealth']);
  });

  it('upgrades to Professional at once, prorated to the minute (hand-computed cents)', async () => {
    clock.set('2027-03-11T09:17:45Z');
    // period 2027-03-01 .. 2027-04-01 = 31 days = 44,640 minutes; from 09:17:45 to the end: 20 d 14 h 42 min 15 s,
    // so 29,682 whole minutes are unused (the started minute counts as used).
    //   credit: 49,900 x 29,682 / 44,640 = 33,179.26 -> -33,179
    //   charge: 149,900 x 29,682 / 44,640 = 99,671.41 -> 99,671
    //   total: 66,492 ($664.92)
    const d = await gqlOk<{ changeBillingPlan: { effective: string; subscription: SubView; invoice: InvoiceView } }>(t, CHANGE, { priceId: 'professional_monthly' }, a.headers);
    expect(d.changeBillingPlan.effective).toBe('NOW');
    expect(d.changeBillingPlan.subscription).toMatchObject({ status: 'ACTIVE', plan: { id: 'professional' }, currentPeriodEnd: '2027-04-01T00:00:00.000Z' });
    const inv = d.changeBillingPlan.invoice;
    expect(inv.reason).toBe('subscription_update');
    expect(inv.lines.map((l) => [l.kind, l.amount.amount])).toEqual([
      ['PRORATION', -33_179],
      ['PRORATION', 99_671],
      ['TAX', 0],
    ]);
    expect(inv.lines[0]!.description).toContain('29682 of 44640 minutes');
    expect(inv.total.amount).toBe(66_492);
    expect((await paid(a, inv.id)).amountPaid.amount).toBe(66_492);
    expect(await entitlementsOf(t, A.id)).toEqual(['eprescribing', 'patients', 'revenue-cycle', 'telehealth']);
  });

  it('refuses a downgrade while more providers are in use than the smaller plan allows, changing nothing', async () => {
    for (let i = 0; i < 6; i++) expect((await invite(a, 'PROVIDER')).body.errors).toBeUndefined();
    const before = await subscription(t, a.headers);
    const r = await t.gql(CHANGE, { priceId: 'starter_monthly' }, a.headers);
    expect(code(r.body)).toBe('SEAT_LIMIT_REACHED');
    expect(r.body.errors?.[0]?.extensions).toMatchObject({ limit: 5, inUse: 6 });
    expect(await subscription(t, a.headers)).toEqual(before);
  });

  it('schedules a downgrade for the period end once the seats fit; the smaller limit holds meanwhile', async () => {
    const [u] = await t.db.owner<{ id: string }[]>`select id from users where tenant_id = ${A.id} and 'PROVIDER' = any(roles) limit 1`;
    await gqlOk(t, 'mutation ($u: UUID!) { deactivateUser(userId: $u) { id } }', { u: u!.id }, a.headers);
    const d = await gqlOk<{ changeBillingPlan: { effective: string; subscription: SubView } }>(t, CHANGE, { priceId: 'starter_monthly' }, a.headers);
    expect(d.changeBillingPlan.effective).toBe('PERIOD_END');
    expect(d.changeBillingPlan.subscription).toMatchObject({ plan: { id: 'professional' }, pendingPlan: { id: 'starter' } });
    expect(code((await invite(a, 'PROVIDER')).body)).toBe('SEAT_LIMIT_REACHED');
  });

  it('cancels at the period end and resumes, announcing each change in the billing room', async () => {
    const socket = await connect(t.url, a.token);
    open.push(socket);
    const join = await request(socket, 'room:join', { room: `billing:${A.id}` });
    expect(join.ok).toBe(true);
    // another tenant's billing room is refused
    expect((await request(socket, 'room:join', { room: `billing:${B.id}` })).ok).toBe(false);
    const heard = next<{ type: string; payload: { status: string; cancelAtPeriodEnd: boolean; version: number } }>(socket, 'event', 10_000, (e) => e.type === 'billing.subscriptionChanged');
    const cancelled = await gqlOk<{ cancelBillingSubscription: SubView }>(t, `mutation { cancelBillingSubscription { ${SUB_FIELDS} } }`, {}, a.headers);
    expect(cancelled.cancelBillingSubscription.cancelAtPeriodEnd).toBe(true);
    expect((await heard).payload).toMatchObject({ status: 'active', cancelAtPeriodEnd: true, version: cancelled.cancelBillingSubscription.version });
    const resumed = await gqlOk<{ resumeBillingSubscription: SubView }>(t, `mutation { resumeBillingSubscription { ${SUB_FIELDS} } }`, {}, a.headers);
    expect(resumed.resumeBillingSubscription.cancelAtPeriodEnd).toBe(false);
    expect(code((await t.gql(`mutation { resumeBillingSubscription { id } }`, {}, a.headers)).body)).toBe('CONFLICT');
  });
});

describe('invoices: HTML, audit and tenant isolation', () => {
  it('renders an invoice as HTML for billing staff, audited; another tenant gets 404', async () => {
    const [latest] = await invoices(t, a.headers);
    const requestId = randomUUID();
    const res = await fetch(`${t.url}/billing/invoices/${latest!.id}.html`, { headers: { ...a.headers, 'x-request-id': requestId } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/html');
    const html = await res.text();
    expect(html).toContain(latest!.number);
    expect(html).toContain('$664.92');
    const audit = await t.db.owner<{ resource_type: string; resource_id: string; action: string; event_type: string }[]>`
      select resource_type, resource_id, action, event_type from audit_events where request_id = ${requestId}`;
    expect(audit).toEqual([{ resource_type: 'Invoice', resource_id: latest!.id, action: 'read', event_type: 'security' }]);
    const other = await fetch(`${t.url}/billing/invoices/${latest!.id}.html`, { headers: b.headers });
    expect(other.status).toBe(404);
    expect((await fetch(`${t.url}/billing/invoices/${latest!.id}.html`)).status).toBe(401);
    const bad = await fetch(`${t.url}/billing/invoices/nope.html`, { headers: a.headers });
    expect(bad.status).toBe(400);
  });

  it("answers NOT_FOUND for another tenant's invoice, changing nothing; RLS alone hides it", async () => {
    const [latest] = await invoices(t, a.headers);
    for (const q of ['query ($id: UUID!) { billingInvoice(invoiceId: $id) { id } }', 'mutation ($id: UUID!) { voidBillingInvoice(invoiceId: $id) { id } }', 'mutation ($id: UUID!) { retryBillingInvoice(invoiceId: $id) { id } }']) {
      expect(code((await t.gql(q, { id: latest!.id }, b.headers)).body)).toBe('NOT_FOUND');
    }
    expect((await invoices(t, a.headers))[0]!.status).toBe('PAID');
    const seen = await withTenant(t.db.sql, B.id, (db) => db.select({ id: billingInvoices.id }).from(billingInvoices).where(eq(billingInvoices.id, latest!.id)));
    expect(seen).toEqual([]);
    // a paid invoice cannot be voided
    expect(code((await t.gql('mutation ($id: UUID!) { voidBillingInvoice(invoiceId: $id) { id } }', { id: latest!.id }, a.headers)).body)).toBe('CONFLICT');
  });
});

describe('period end (2027-04-01): renewal, trial expiry and conversion', () => {
  it('renews A on Starter (the scheduled downgrade applied): next period invoiced with seats, usage and tax lines', async () => {
    clock.set('2027-04-01T00:00:30Z');
    const s = await until(async () => {
      const v = await subscription(t, a.headers);
      return v?.currentPeriodStart === '2027-04-01T00:00:00.000Z' ? v : null;
    });
    expect(s).toMatchObject({ status: 'ACTIVE', plan: { id: 'starter' }, pendingPlan: null, currentPeriodEnd: '2027-05-01T00:00:00.000Z' });
    const [renewal] = await invoices(t, a.headers);
    expect(renewal!.reason).toBe('subscription_cycle');
    expect(renewal!.lines.map((l) => [l.kind, l.quantity, l.amount.amount])).toEqual([
      ['PLAN', 1, 49_900],
      ['SEATS', 5, 0],
      ['USAGE', 0, 0],
      ['TAX', 1, 0],
    ]);
    await paid(a, renewal!.id);
    expect(await entitlementsOf(t, A.id)).toEqual(['patients', 'telehealth']);
  });

  it('ends B\u2019s trial without a card: cancelled (trial_expired), core modules only', async () => {
    const s = await until(async () => {
      const v = await subscription(t, b.headers);
      return v?.status === 'CANCELLED' ? v : null;
    });
    expect(s.endReason).toBe('trial_expired');
    expect(await entitlementsOf(t, B.id)).toEqual([]);
    expect(code((await fixture(b)).body)).toBe('FEATURE_NOT_ENTITLED');
    // a real module the plan sold is gated too (patients), while A (subscribed) still reaches it
    const q = 'query ($id: UUID!) { patient(id: $id) { id } }';
    expect(code((await t.gql(q, { id: randomUUID() }, b.headers)).body)).toBe('FEATURE_NOT_ENTITLED');
    expect((await t.gql(q, { id: randomUUID() }, a.headers)).body.errors?.[0]?.extensions?.code).not.toBe('FEATURE_NOT_ENTITLED');
    // billing stays reachable (core) and the trial cannot be started again
    expect(code((await t.gql(TRIAL, {}, b.headers)).body)).toBe('TRIAL_ALREADY_USED');
  });

  it('converts C\u2019s trial (card on file) into a paid Professional subscription from the trial end', async () => {
    const s = await until(async () => {
      const v = await subscription(t, c.headers);
      return v?.status === 'ACTIVE' ? v : null;
    });
    expect(s).toMatchObject({ plan: { id: 'professional' }, currentPeriodStart: '2027-03-15T00:00:00.000Z', currentPeriodEnd: '2027-04-15T00:00:00.000Z' });
    const [inv] = await invoices(t, c.headers);
    expect(inv!.reason).toBe('trial_conversion');
    expect((await paid(c, inv!.id)).total.amount).toBe(149_900);
  });
});

describe('below the minimum card charge', () => {
  it('carries an upgrade invoice of a few cents to the next invoice instead of charging it', async () => {
    // A: Starter, period 2027-04-01 .. 2027-05-01 (30 days = 43,200 minutes); one minute left at 23:59:00
    //   credit: 49,900 x 1 / 43,200 = 1.16 -> -1; charge: 149,900 x 1 / 43,200 = 3.47 -> 3; total 2 cents (< $0.50)
    clock.set('2027-04-30T23:59:00Z');
    const d = await gqlOk<{ changeBillingPlan: { invoice: InvoiceView } }>(t, CHANGE, { priceId: 'professional_monthly' }, a.headers);
    expect(d.changeBillingPlan.invoice.total.amount).toBe(2);
    const carried = await paid(a, d.changeBillingPlan.invoice.id);
    expect([carried.amountPaid.amount, carried.amountCarried.amount, carried.amountDue.amount]).toEqual([0, 2, 0]);
    clock.set('2027-05-01T00:00:30Z');
    const renewal = await until(async () => (await invoices(t, a.headers)).find((i) => i.reason === 'subscription_cycle' && i.lines.some((l) => l.kind === 'BALANCE')));
    expect(renewal.lines.map((l) => [l.kind, l.amount.amount])).toEqual([
      ['PLAN', 149_900],
      ['SEATS', 0],
      ['USAGE', 0],
      ['BALANCE', 2],
      ['TAX', 0],
    ]);
    expect((await paid(a, renewal.id)).amountPaid.amount).toBe(149_902);
  });
});

describe('logs', () => {
  it('logged no error, no secret and no card data', () => {
    const errors = t.logs.filter((l) => Number(l.level) >= 50);
    expect(errors).toEqual([]);
    const text = t.logText();
    for (const secret of ['whsec_', 'sk_test_', 'seti_', '_secret_']) expect(text).not.toContain(secret);
  });
});
