import { and, eq, sql } from 'drizzle-orm';
import type { Db } from '../../platform/db/index.js';
import { AppError, ErrorCode, notFound } from '../../platform/errors.js';
import { emitEvent } from '../../platform/jobs/index.js';
import type { RequestScope } from '../../platform/scope/index.js';
import type { UsageMeter } from './usage.js';
import type { PaymentAdapter } from './payments.js';
import { PLANS, type PlanId } from './plans.js';
import { billingAccounts, billingNotifications, billingSubscriptions, type BillingAccount, type Subscription } from './tables.js';
export { isUuid, uuidArg } from '../../platform/args.js';

export const BILLING = 'billing';
export const BILLING_ROOM = 'billing';

/** What the billing module's init returns (one per app): its clock, payment adapter, usage meter, dunning settings. */
export interface BillingInstance {
  now(): Date;
  payments: PaymentAdapter;
  usage: UsageMeter;
  settings: { retryDays: readonly number[]; unpaidAfterDays: number; usageDedupDays: number };
  close(): Promise<void>;
}

export const instanceOf = (scope: RequestScope): BillingInstance => scope.module<BillingInstance>(BILLING);


export function tenantOf(scope: RequestScope): string {
  return scope.requirePermission(null).tenantId;
}

/** SEAT_LIMIT_REACHED: the plan allows `limit` providers and `inUse` would be more. */
export function seatLimitReached(limit: number, inUse: number, planId: string): AppError {
  return new AppError(ErrorCode.SEAT_LIMIT_REACHED, `The ${PLANS.get(planId as PlanId)?.name ?? planId} plan allows ${limit} providers; ${inUse} would be in use`, { limit, inUse, planId });
}

export async function loadSubscription(db: Db, tenantId: string, lock = false): Promise<Subscription | undefined> {
  const q = db.select().from(billingSubscriptions).where(eq(billingSubscriptions.tenantId, tenantId));
  const [row] = lock ? await q.for('update') : await q;
  return row;
}

export async function requireSubscription(db: Db, tenantId: string, lock = false): Promise<Subscription> {
  const sub = await loadSubscription(db, tenantId, lock);
  if (!sub) throw notFound('Subscription');
  return sub;
}

/** The tenant's billing account (created on first use). */
export async function ensureAccount(db: Db, tenantId: string, lock = false): Promise<BillingAccount> {
  await db.insert(billingAccounts).values({ tenantId }).onConflictDoNothing();
  const q = db.select().from(billingAccounts).where(eq(billingAccounts.tenantId, tenantId));
  const [row] = lock ? await q.for('update') : await q;
  return row!;
}

/**
 * Entitlements a subscription grants (the rules, documented in docs/modules/billing.md):
 *   trialing, active  -> the plan's modules
 *   past_due          -> the plan's modules (grace while payment is retried, until unpaid)
 *   unpaid, cancelled -> core modules only (identity, access, audit, billing stay reachable to pay)
 */
export function entitledModules(sub: Pick<Subscription, 'status' | 'planId'>): string[] {
  if (sub.status === 'unpaid' || sub.status === 'cancelled') return [];
  return [...(PLANS.get(sub.planId as PlanId)?.modules ?? [])];
}

/** Writes the tenant's entitlements (tenant_entitlements, through the billing definer) and drops this process's cache. */
export async function syncEntitlements(scope: RequestScope, db: Db, sub: Pick<Subscription, 'status' | 'planId' | 'tenantId'>): Promise<void> {
  const modules = entitledModules(sub);
  await db.execute(sql`select billing_set_entitlements(${`{${modules.map((m) => `"${m}"`).join(',')}}`}::text[])`);
  scope.env.entitlements.invalidate(sub.tenantId);
}

/** Saves changes of the subscription (version bumped) and tells listeners: outbox event to the `billing:<tenant>` room. */
export async function saveSubscription(scope: RequestScope, db: Db, sub: Subscription, changes: Partial<Subscription>, reason: string): Promise<Subscription> {
  const now = instanceOf(scope).now();
  const [row] = await db
    .update(billingSubscriptions)
    .set({ ...changes, version: sql`${billingSubscriptions.version} + 1`, updatedAt: now })
    .where(and(eq(billingSubscriptions.tenantId, sub.tenantId), eq(billingSubscriptions.id, sub.id)))
    .returning();
  const saved = row!;
  if (changes.status !== undefined || changes.planId !== undefined) await syncEntitlements(scope, db, saved);
  await emitSubscriptionChanged(db, saved, reason);
  return saved;
}

export async function emitSubscriptionChanged(db: Db, sub: Subscription, reason: string): Promise<void> {
  await emitEvent(db, {
    type: 'billing.subscriptionChanged',
    tenantId: sub.tenantId,
    aggregateId: sub.id,
    payload: { subscriptionId: sub.id, status: sub.status, planId: sub.planId, interval: sub.interval, cancelAtPeriodEnd: sub.cancelAtPeriodEnd, version: sub.version, reason },
    rooms: [`${BILLING_ROOM}:${sub.tenantId}`],
  });
}

/** A notice for the tenant's admins: stored (GraphQL billingNotifications) and pushed to the billing room. */
export async function notifyAdmins(db: Db, tenantId: string, kind: string, invoiceId: string | null, detail: Record<string, string | number | null>, at: Date): Promise<void> {
  const [n] = await db.insert(billingNotifications).values({ tenantId, kind, invoiceId, detail, createdAt: at }).returning({ id: billingNotifications.id });
  await emitEvent(db, {
    type: 'billing.notification',
    tenantId,
    aggregateId: n!.id,
    payload: { notificationId: n!.id, kind, ...(invoiceId ? { invoiceId } : {}) },
    rooms: [`${BILLING_ROOM}:${tenantId}`],
  });
}

export const DAY_MS = 86_400_000;
