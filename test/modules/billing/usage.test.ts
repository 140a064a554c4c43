import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hourOf } from '../../../src/modules/billing/usage.js';
import { billingUsageHourly } from '../../../src/modules/billing/tables.js';
import { withTenant } from '../../../src/platform/db/index.js';
import type { TestApp } from '../../helpers/app.js';
import { adminSession, createTenantWithAdmin, type AuthSession, type TestTenant } from '../../helpers/auth.js';
import { until } from '../../helpers/realtime.js';
import { addCard, FakeClock, gqlOk, invoices, startBillingApp, subscription } from './helpers.js';

/**
 * Metered API usage: every call authenticated with an API key is counted
 * once per request id (a retry with the same X-Request-Id is the same call),
 * into per-hour counters in PostgreSQL; reported per billing period; billed
 * on the period's renewal invoice as a usage line: nothing at exactly the
 * included calls, one block of 1,000 at one call over.
 */
const clock = new FakeClock(Date.now());
let t: TestApp;
let U: TestTenant;
let X: TestTenant;
let Y: TestTenant;
let u: AuthSession;
let x: AuthSession;
let y: AuthSession;
let apiKey: string;

const USAGE = '{ billingUsage(period: $period) { periodStart periodEnd calls includedCalls overageCalls overageUnits amount { amount currency } hours { hour calls } } }';
type Usage = { calls: number; includedCalls: number; overageCalls: number; overageUnits: number; amount: { amount: number; currency: string }; hours: { hour: string; calls: number }[] };
const usage = async (s: AuthSession, period: 'CURRENT' | 'PREVIOUS' = 'CURRENT') =>
  (await gqlOk<{ billingUsage: Usage }>(t, `query ($period: BillingUsagePeriod) ${USAGE}`, { period }, s.headers)).billingUsage;
const call = (requestId: string) => fetch(`${t.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': apiKey, 'x-request-id': requestId }, body: JSON.stringify({ query: '{ myPermissions }' }) });

beforeAll(async () => {
  t = await startBillingApp(clock);
  [U, X, Y] = await Promise.all([createTenantWithAdmin(t), createTenantWithAdmin(t), createTenantWithAdmin(t)]);
  [u, x, y] = await Promise.all([adminSession(t, U), adminSession(t, X), adminSession(t, Y)]);
  for (const s of [u, x, y]) {
    await addCard(t, s.headers);
    await gqlOk(t, 'mutation { subscribeBilling(priceId: "starter_monthly") { id } }', {}, s.headers);
  }
  const created = await gqlOk<{ createApiKey: { key: string } }>(t, 'mutation { createApiKey(input: { name: "partner", permissions: ["patient:read"] }) { key } }', {}, u.headers);
  apiKey = created.createApiKey.key;
}, 120_000);

afterAll(async () => {
  await t?.close();
});

describe('metering API-key calls', () => {
  it('counts each request id once, per hour and key, durable when the call is answered', async () => {
    const retried = `req-${randomUUID()}`;
    const hourBefore = hourOf(new Date()).toISOString();
    for (const id of [`req-${randomUUID()}`, `req-${randomUUID()}`, retried, retried, retried]) {
      const r = await call(id);
      expect(r.status).toBe(200);
    }
    const rows = await t.db.owner<{ hour: Date; calls: string }[]>`select hour, calls::text from billing_usage_hourly where tenant_id = ${U.id}`;
    // one row per hour and key (two only if the calls straddled an hour)
    const hours = [hourBefore, hourOf(new Date()).toISOString()];
    expect(rows.every((r) => hours.includes(r.hour.toISOString()))).toBe(true);
    expect(rows.reduce((n, r) => n + Number(r.calls), 0)).toBe(3);
    // calls arriving together are written together, each counted
    const answers = await Promise.all(Array.from({ length: 20 }, () => call(`req-${randomUUID()}`)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const [sum] = await t.db.owner<{ n: number }[]>`select sum(calls)::int as n from billing_usage_hourly where tenant_id = ${U.id}`;
    expect(sum!.n).toBe(23);
    // a user's calls are not metered
    await gqlOk(t, '{ myPermissions }', {}, u.headers);
    const [after] = await t.db.owner<{ n: number }[]>`select sum(calls)::int as n from billing_usage_hourly where tenant_id = ${U.id}`;
    expect(after!.n).toBe(23);
  });

  it('reports the usage of the current billing period with its hours', async () => {
    const r = await usage(u);
    expect(r).toMatchObject({ calls: 23, includedCalls: 10_000, overageCalls: 0, overageUnits: 0, amount: { amount: 0, currency: 'usd' } });
    expect(r.hours.reduce((n, h) => n + h.calls, 0)).toBe(23);
  });
});

describe('billing metered usage at the boundary', () => {
  it('bills nothing at exactly the included calls and one block of 1,000 at one call over', async () => {
    const hour = hourOf(new Date());
    await withTenant(t.db.sql, X.id, (db) => db.insert(billingUsageHourly).values({ tenantId: X.id, hour, apiKeyId: randomUUID(), calls: 10_000 }));
    await withTenant(t.db.sql, Y.id, (db) => db.insert(billingUsageHourly).values({ tenantId: Y.id, hour, apiKeyId: randomUUID(), calls: 10_001 }));
    expect((await usage(y)).overageUnits).toBe(1);
    const end = (await subscription(t, y.headers))!.currentPeriodEnd;
    clock.set(new Date(Date.parse(end) + 60_000).toISOString());
    const renewal = async (s: AuthSession) =>
      until(async () => {
        const list = await invoices(t, s.headers);
        return list.find((i) => i.reason === 'subscription_cycle' && i.status === 'PAID');
      });
    const [ux, uy, uu] = await Promise.all([renewal(x), renewal(y), renewal(u)]);
    const usageLine = (inv: typeof ux) => inv.lines.find((l) => l.kind === 'USAGE')!;
    expect([usageLine(ux).quantity, usageLine(ux).unitAmount.amount, usageLine(ux).amount.amount, ux.total.amount]).toEqual([0, 200, 0, 49_900]);
    expect(usageLine(ux).description).toContain('10,000 (10,000 included; 0 \u00d7 1,000 over');
    expect([usageLine(uy).quantity, usageLine(uy).unitAmount.amount, usageLine(uy).amount.amount, uy.total.amount]).toEqual([1, 200, 200, 50_100]);
    expect(uy.amountPaid.amount).toBe(50_100);
    expect(usageLine(uu).amount.amount).toBe(0);
    // reported per period: the previous period holds what was billed, the new one starts at zero
    expect(await usage(y, 'PREVIOUS')).toMatchObject({ calls: 10_001, overageCalls: 1, overageUnits: 1, amount: { amount: 200 } });
    expect((await usage(y, 'CURRENT')).calls).toBe(0);
  });
});
