import { and, desc, eq } from 'drizzle-orm';
import type { RequestScope } from '../../platform/scope/index.js';
import { countUsersWithRole } from '../identity/index.js';
import { loadSubscription, tenantOf } from './common.js';
import { PROVIDER_ROLE } from './invoices.js';
import { addMonths, PLANS, usageCharge, type BillingInterval, type PlanId } from './plans.js';
import { billingNotifications, type Notification, type Subscription } from './tables.js';
import { callsBetween, hourlyCalls, type UsageReport } from './usage.js';

/** Read side for billing staff: the subscription, usage per billing period, notices. */

export async function currentSubscription(scope: RequestScope): Promise<Subscription | null> {
  return (await loadSubscription(await scope.db(), tenantOf(scope))) ?? null;
}

export async function providerSeatsUsed(scope: RequestScope, tenantId: string): Promise<number> {
  return countUsersWithRole(await scope.db(), tenantId, PROVIDER_ROLE);
}

/**
 * API-key usage of a billing period: CURRENT (so far) or PREVIOUS (what the last invoice billed). The plan and
 * interval are the subscription's now; periods are counted in whole hours (usage.ts callsBetween).
 */
export async function usageReport(scope: RequestScope, period: 'current' | 'previous'): Promise<UsageReport | null> {
  const tenantId = tenantOf(scope);
  const db = await scope.db();
  const sub = await loadSubscription(db, tenantId);
  if (!sub) return null;
  const interval = sub.interval as BillingInterval;
  let start = sub.currentPeriodStart;
  let end = sub.currentPeriodEnd;
  if (period === 'previous') {
    end = start;
    start = addMonths(start, interval === 'year' ? -12 : -1);
    if (sub.trialStart && start.getTime() < sub.trialStart.getTime()) start = sub.trialStart;
  }
  const plan = PLANS.get(sub.planId as PlanId)!;
  const calls = await callsBetween(db, tenantId, start, end);
  const u = usageCharge(plan, interval, calls);
  return {
    tenantId,
    periodStart: start,
    periodEnd: end,
    planId: plan.id,
    interval,
    calls,
    includedCalls: u.included,
    overageCalls: u.overageCalls,
    overageUnits: u.units,
    overageUnitAmount: plan.usage.overageUnitAmount,
    amount: sub.status === 'trialing' ? 0 : u.amount,
    currency: plan.prices.month.currency,
  };
}

export async function usageHours(scope: RequestScope, r: UsageReport, first: number) {
  const rows = await hourlyCalls(await scope.db(), r.tenantId, r.periodStart, r.periodEnd);
  return rows.slice(-first);
}

export async function notifications(scope: RequestScope, first: number): Promise<Notification[]> {
  const tenantId = tenantOf(scope);
  const db = await scope.db();
  return db.select().from(billingNotifications).where(and(eq(billingNotifications.tenantId, tenantId))).orderBy(desc(billingNotifications.createdAt), desc(billingNotifications.id)).limit(first);
}
