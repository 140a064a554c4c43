import { and, eq, inArray } from 'drizzle-orm';
import type { Db } from '../../platform/db/index.js';
import { AppError, ErrorCode, badInput, conflict } from '../../platform/errors.js';
import type { RequestScope } from '../../platform/scope/index.js';
import { countUsersWithRole, type UserChange } from '../identity/index.js';
import {
  DAY_MS,
  ensureAccount,
  instanceOf,
  loadSubscription,
  notifyAdmins,
  requireSubscription,
  saveSubscription,
  seatLimitReached,
  syncEntitlements,
  tenantOf,
  emitSubscriptionChanged,
} from './common.js';
import { fmtMinute, issueInvoice, planLine, PROVIDER_ROLE, seatsLine, usageLine, type LineInput } from './invoices.js';
import { prorate } from './money.js';
import { DEFAULT_TRIAL_PLAN, periodEnd, planOf, PLANS, priceOf, TRIAL_DAYS, type BillingInterval, type Plan, type PlanId } from './plans.js';
import { billingInvoices, billingSubscriptions, type Subscription } from './tables.js';

/**
 * The subscription of a tenant: one row per tenant, from its trial on.
 *   (none) --startTrial--> trialing --trial end, card on file--> active
 *                                   --trial end, no card--> cancelled (trial_expired)
 *   (none | cancelled) --subscribe (card on file)--> active
 *   active --payment failed--> past_due --paid--> active
 *   past_due --BILLING_UNPAID_AFTER_DAYS--> unpaid --paid--> active
 *   active/past_due --cancel (at period end)--> ... --period end--> cancelled
 * Upgrades apply at once with the unused time of the old plan credited and
 * the rest of the period on the new plan charged, both to the minute; a
 * downgrade or an interval change waits for the period end and is refused
 * while more providers are in use than the smaller plan allows.
 */

async function providersInUse(db: Db, tenantId: string): Promise<number> {
  return countUsersWithRole(db, tenantId, PROVIDER_ROLE);
}

/** SEAT_LIMIT_REACHED when the providers in use exceed the plan's seats. */
async function checkSeats(db: Db, tenantId: string, plan: Plan): Promise<void> {
  if (plan.providerSeats === null) return;
  const inUse = await providersInUse(db, tenantId);
  if (inUse > plan.providerSeats) throw seatLimitReached(plan.providerSeats, inUse, plan.id);
}

/**
 * identity's USER_CHANGE_GUARD: a user who newly holds a provider seat (the PROVIDER role, not deactivated) is
 * refused with SEAT_LIMIT_REACHED when the tenant's plan has no seat left. While a downgrade is pending, the
 * smaller plan's seats are the limit. Runs in the identity mutation's transaction, after its write (so the
 * count includes it), holding the subscription row so concurrent invitations cannot both take the last seat.
 */
export async function seatGuard(db: Db, change: UserChange): Promise<void> {
  const holds = (s: { roles: readonly string[]; status: string } | null) => !!s && s.status !== 'deactivated' && s.roles.includes(PROVIDER_ROLE);
  if (!holds(change.after) || holds(change.before)) return;
  const sub = await loadSubscription(db, change.tenantId, true);
  if (!sub) return; // no subscription: the platform default (no billing limits)
  const limits = [PLANS.get(sub.planId as PlanId)?.providerSeats, sub.pendingPlanId ? PLANS.get(sub.pendingPlanId as PlanId)?.providerSeats : undefined].filter(
    (n): n is number => typeof n === 'number',
  );
  if (!limits.length) return;
  const limit = Math.min(...limits);
  const inUse = await providersInUse(db, change.tenantId);
  if (inUse > limit) throw seatLimitReached(limit, inUse, sub.pendingPlanId && limit === PLANS.get(sub.pendingPlanId as PlanId)?.providerSeats ? sub.pendingPlanId : sub.planId);
}

/** The tenant's one free trial: no card needed, 14 days on the plan named (default Professional). */
export async function startTrial(scope: RequestScope, planId: unknown): Promise<Subscription> {
  const tenantId = tenantOf(scope);
  const plan = planOf(planId ?? DEFAULT_TRIAL_PLAN);
  const db = await scope.db();
  const now = instanceOf(scope).now();
  await ensureAccount(db, tenantId, true); // serializes the tenant's billing changes
  const existing = await loadSubscription(db, tenantId, true);
  if (existing?.trialStart) throw new AppError(ErrorCode.TRIAL_ALREADY_USED, 'This organisation has already used its free trial');
  if (existing) throw conflict('This organisation already has a subscription');
  await checkSeats(db, tenantId, plan);
  const trialEnd = new Date(now.getTime() + TRIAL_DAYS * DAY_MS);
  const [sub] = await db
    .insert(billingSubscriptions)
    .values({ tenantId, planId: plan.id, interval: 'month', status: 'trialing', anchor: trialEnd, currentPeriodStart: now, currentPeriodEnd: trialEnd, trialStart: now, trialEnd, createdAt: now, updatedAt: now })
    .returning();
  await syncEntitlements(scope, db, sub!);
  await emitSubscriptionChanged(db, sub!, 'trial_started');
  return sub!;
}

async function requireCard(db: Db, tenantId: string): Promise<void> {
  const acct = await ensureAccount(db, tenantId);
  if (acct.paymentMethodStatus !== 'active' || !acct.paymentMethodId) {
    throw new AppError(ErrorCode.CONFLICT, 'Add a payment method first (startPaymentMethodSetup)', { reason: 'payment_method_required' });
  }
}

/**
 * A paid subscription from now on (a tenant without one, or whose subscription ended): the first period is
 * invoiced at once and collected from the card on file.
 */
export async function subscribe(scope: RequestScope, priceId: unknown): Promise<Subscription> {
  const tenantId = tenantOf(scope);
  const price = priceOf(priceId);
  const plan = planOf(price.planId);
  const db = await scope.db();
  const now = instanceOf(scope).now();
  await ensureAccount(db, tenantId, true);
  const existing = await loadSubscription(db, tenantId, true);
  if (existing && existing.status !== 'cancelled') {
    throw conflict(existing.status === 'trialing' ? 'Add a payment method: the trial becomes a subscription when it ends (or change its plan)' : 'This organisation already has a subscription (change its plan instead)');
  }
  await checkSeats(db, tenantId, plan);
  await requireCard(db, tenantId);
  const end = periodEnd(now, now, price.interval);
  const fields = {
    planId: plan.id,
    interval: price.interval,
    status: 'active' as const,
    anchor: now,
    currentPeriodStart: now,
    currentPeriodEnd: end,
    cancelAtPeriodEnd: false,
    cancelledAt: null,
    endedAt: null,
    endReason: null,
    pendingPlanId: null,
    pendingInterval: null,
    pastDueSince: null,
  };
  let sub: Subscription;
  if (existing) sub = await saveSubscription(scope, db, existing, fields, 'subscribed');
  else {
    const [row] = await db.insert(billingSubscriptions).values({ tenantId, ...fields, createdAt: now, updatedAt: now }).returning();
    sub = row!;
    await syncEntitlements(scope, db, sub);
    await emitSubscriptionChanged(db, sub, 'subscribed');
  }
  await issueInvoice(scope, db, sub, { reason: 'subscription_create', periodStart: now, periodEnd: end, lines: [planLine(plan.id, price.interval, now, end), await seatsLine(db, tenantId, plan.id)] });
  return sub;
}

export interface PlanChange {
  subscription: Subscription;
  /** applied now (upgrade) or scheduled for the period end */
  effective: 'now' | 'period_end';
  invoiceId: string | null;
}

/**
 * Changes the plan and/or interval (a price id, e.g. `enterprise_monthly`).
 *   trialing: the trial continues on the new plan (no charge);
 *   higher plan, same interval: at once, prorated to the minute (credit of the unused time on the old plan,
 *     charge of the rest of the period on the new one, invoiced and collected now);
 *   lower plan or another interval: at the period end (refused with SEAT_LIMIT_REACHED while more providers are
 *     in use than the new plan allows); asking for the current price clears a scheduled change.
 */
export async function changePlan(scope: RequestScope, priceId: unknown): Promise<PlanChange> {
  const tenantId = tenantOf(scope);
  const price = priceOf(priceId);
  const plan = planOf(price.planId);
  const db = await scope.db();
  const now = instanceOf(scope).now();
  await ensureAccount(db, tenantId, true);
  const sub = await requireSubscription(db, tenantId, true);
  if (sub.status === 'cancelled' || sub.status === 'unpaid') {
    throw conflict(sub.status === 'unpaid' ? 'Pay the open invoice first' : 'The subscription has ended: subscribe again');
  }
  const current = planOf(sub.planId);
  await checkSeats(db, tenantId, plan);
  if (sub.status === 'trialing') {
    if (plan.id === sub.planId && price.interval === sub.interval) throw badInput('The trial is already on this plan', 'priceId');
    const saved = await saveSubscription(scope, db, sub, { planId: plan.id, interval: price.interval }, 'trial_plan_changed');
    return { subscription: saved, effective: 'now', invoiceId: null };
  }
  if (plan.id === sub.planId && price.interval === sub.interval) {
    if (!sub.pendingPlanId && !sub.pendingInterval) throw badInput('The subscription is already on this price', 'priceId');
    const saved = await saveSubscription(scope, db, sub, { pendingPlanId: null, pendingInterval: null }, 'scheduled_change_cleared');
    return { subscription: saved, effective: 'now', invoiceId: null };
  }
  if (plan.rank > current.rank && price.interval === sub.interval) {
    if (sub.status === 'past_due') throw conflict('Pay the open invoice before upgrading');
    return upgradeNow(scope, db, sub, current, plan, now);
  }
  // a downgrade, or an interval change: at the period end
  const saved = await saveSubscription(scope, db, sub, { pendingPlanId: plan.id, pendingInterval: price.interval }, 'change_scheduled');
  return { subscription: saved, effective: 'period_end', invoiceId: null };
}

async function upgradeNow(scope: RequestScope, db: Db, sub: Subscription, from: Plan, to: Plan, now: Date): Promise<PlanChange> {
  const interval = sub.interval as BillingInterval;
  const start = sub.currentPeriodStart;
  const end = sub.currentPeriodEnd;
  const credit = prorate(from.prices[interval].amount, start, end, now);
  const charge = prorate(to.prices[interval].amount, start, end, now);
  const lines: LineInput[] = [
    {
      kind: 'proration',
      description: `Unused time on ${from.name} from ${fmtMinute(now)} (${credit.minutesLeft} of ${credit.periodMinutes} minutes)`,
      quantity: 1,
      unitAmount: -credit.amount,
      amount: -credit.amount,
      periodStart: now,
      periodEnd: end,
      planId: from.id,
    },
    {
      kind: 'proration',
      description: `Remaining time on ${to.name} from ${fmtMinute(now)} (${charge.minutesLeft} of ${charge.periodMinutes} minutes)`,
      quantity: 1,
      unitAmount: charge.amount,
      amount: charge.amount,
      periodStart: now,
      periodEnd: end,
      planId: to.id,
    },
  ];
  // a scheduled change of the interval survives the upgrade; a scheduled downgrade does not
  const saved = await saveSubscription(scope, db, sub, { planId: to.id, pendingPlanId: null, pendingInterval: sub.pendingInterval }, 'upgraded');
  const inv = await issueInvoice(scope, db, saved, { reason: 'subscription_update', periodStart: now, periodEnd: end, lines });
  return { subscription: saved, effective: 'now', invoiceId: inv.id };
}

/** Cancels at the end of the current period (a trial: at the trial's end). */
export async function cancelAtPeriodEnd(scope: RequestScope): Promise<Subscription> {
  const tenantId = tenantOf(scope);
  const db = await scope.db();
  await ensureAccount(db, tenantId, true);
  const sub = await requireSubscription(db, tenantId, true);
  if (sub.status === 'cancelled') throw conflict('The subscription has already ended');
  if (sub.cancelAtPeriodEnd) return sub;
  return saveSubscription(scope, db, sub, { cancelAtPeriodEnd: true, cancelledAt: instanceOf(scope).now() }, 'cancel_scheduled');
}

/** Takes back a cancellation before the period ends. */
export async function resume(scope: RequestScope): Promise<Subscription> {
  const tenantId = tenantOf(scope);
  const db = await scope.db();
  await ensureAccount(db, tenantId, true);
  const sub = await requireSubscription(db, tenantId, true);
  if (sub.status === 'cancelled') throw conflict('The subscription has already ended: subscribe again');
  if (!sub.cancelAtPeriodEnd) throw conflict('The subscription is not cancelled');
  return saveSubscription(scope, db, sub, { cancelAtPeriodEnd: false, cancelledAt: null }, 'resumed');
}

/**
 * The tenant's due work at `now` (the billing.advance job, fanned out by the billing.sweep schedule): trial
 * end, period ends (renewal with the next period's invoice and the ended period's metered usage, a scheduled
 * change applied, or the end of a cancelled subscription), past-due subscriptions turning unpaid. Runs under
 * the subscription's row lock and checks each condition again: running it twice does nothing more.
 */
export async function advance(scope: RequestScope): Promise<Subscription | undefined> {
  const tenantId = tenantOf(scope);
  const inst = instanceOf(scope);
  const now = inst.now();
  const db = await scope.db();
  await ensureAccount(db, tenantId, true);
  let sub = await loadSubscription(db, tenantId, true);
  if (!sub) return undefined;

  if (sub.status === 'trialing' && sub.trialEnd && sub.trialEnd.getTime() <= now.getTime()) {
    sub = await endTrial(scope, db, sub);
  }
  for (let i = 0; i < 36 && (sub.status === 'active' || sub.status === 'past_due') && sub.currentPeriodEnd.getTime() <= now.getTime(); i++) {
    sub = await renew(scope, db, sub);
  }
  const unpaidAt = sub.pastDueSince ? sub.pastDueSince.getTime() + inst.settings.unpaidAfterDays * DAY_MS : Infinity;
  if (sub.status === 'past_due' && unpaidAt <= now.getTime()) {
    const open = await db
      .update(billingInvoices)
      .set({ status: 'uncollectible', markedUncollectibleAt: now, nextPaymentAttempt: null })
      .where(and(eq(billingInvoices.tenantId, tenantId), eq(billingInvoices.subscriptionId, sub.id), eq(billingInvoices.status, 'open')))
      .returning({ id: billingInvoices.id });
    sub = await saveSubscription(scope, db, sub, { status: 'unpaid' }, 'unpaid');
    await notifyAdmins(db, tenantId, 'subscription_unpaid', open[0]?.id ?? null, { days: inst.settings.unpaidAfterDays, invoices: open.length }, now);
  }
  return sub;
}

async function endTrial(scope: RequestScope, db: Db, sub: Subscription): Promise<Subscription> {
  const now = instanceOf(scope).now();
  const trialEnd = sub.trialEnd!;
  const acct = await ensureAccount(db, sub.tenantId);
  if (sub.cancelAtPeriodEnd || acct.paymentMethodStatus !== 'active') {
    const reason = sub.cancelAtPeriodEnd ? 'cancelled' : 'trial_expired';
    const saved = await saveSubscription(scope, db, sub, { status: 'cancelled', endedAt: trialEnd, endReason: reason, cancelAtPeriodEnd: false }, reason);
    await notifyAdmins(db, sub.tenantId, reason === 'trial_expired' ? 'trial_expired' : 'subscription_cancelled', null, {}, now);
    return saved;
  }
  const planId = sub.pendingPlanId ?? sub.planId;
  const interval = (sub.pendingInterval ?? sub.interval) as BillingInterval;
  const end = periodEnd(trialEnd, trialEnd, interval);
  const saved = await saveSubscription(
    scope,
    db,
    sub,
    { status: 'active', planId, interval, anchor: trialEnd, currentPeriodStart: trialEnd, currentPeriodEnd: end, pendingPlanId: null, pendingInterval: null },
    'trial_converted',
  );
  await issueInvoice(scope, db, saved, { reason: 'trial_conversion', periodStart: trialEnd, periodEnd: end, lines: [planLine(planId, interval, trialEnd, end), await seatsLine(db, sub.tenantId, planId)] });
  return saved;
}

async function renew(scope: RequestScope, db: Db, sub: Subscription): Promise<Subscription> {
  const now = instanceOf(scope).now();
  const endedStart = sub.currentPeriodStart;
  const endedEnd = sub.currentPeriodEnd;
  const usage = await usageLine(db, sub.tenantId, sub.planId, sub.interval as BillingInterval, endedStart, endedEnd);
  if (sub.cancelAtPeriodEnd) {
    const saved = await saveSubscription(scope, db, sub, { status: 'cancelled', endedAt: endedEnd, endReason: 'cancelled', cancelAtPeriodEnd: false }, 'cancelled');
    // the last period's metered usage is still owed
    if (usage.amount > 0) await issueInvoice(scope, db, saved, { reason: 'subscription_final', periodStart: endedStart, periodEnd: endedEnd, lines: [usage] });
    await notifyAdmins(db, sub.tenantId, 'subscription_cancelled', null, {}, now);
    return saved;
  }
  let planId = sub.planId;
  let interval = sub.interval as BillingInterval;
  let anchor = sub.anchor;
  if (sub.pendingPlanId || sub.pendingInterval) {
    const next = planOf(sub.pendingPlanId ?? sub.planId);
    const inUse = await providersInUse(db, sub.tenantId);
    if (next.providerSeats === null || inUse <= next.providerSeats) {
      planId = next.id;
      if (sub.pendingInterval && sub.pendingInterval !== interval) {
        interval = sub.pendingInterval as BillingInterval;
        anchor = endedEnd; // a new interval starts a new cycle
      }
    } else {
      // cannot happen through the API (the seat guard holds the smaller limit while a downgrade is pending)
      await notifyAdmins(db, sub.tenantId, 'downgrade_refused', null, { limit: next.providerSeats, inUse }, now);
    }
  }
  const nextEnd = periodEnd(anchor, endedEnd, interval);
  const saved = await saveSubscription(
    scope,
    db,
    sub,
    { planId, interval, anchor, currentPeriodStart: endedEnd, currentPeriodEnd: nextEnd, pendingPlanId: null, pendingInterval: null },
    planId !== sub.planId || interval !== sub.interval ? 'renewed_with_change' : 'renewed',
  );
  await issueInvoice(scope, db, saved, {
    reason: 'subscription_cycle',
    periodStart: endedEnd,
    periodEnd: nextEnd,
    lines: [planLine(planId, interval, endedEnd, nextEnd), await seatsLine(db, sub.tenantId, planId), usage],
  });
  return saved;
}

/** Open invoices of the tenant that failed and are due for another attempt (or all failed ones: a new card). */
export async function failedOpenInvoiceIds(db: Db, tenantId: string): Promise<string[]> {
  const rows = await db
    .select({ id: billingInvoices.id })
    .from(billingInvoices)
    .where(and(eq(billingInvoices.tenantId, tenantId), inArray(billingInvoices.status, ['open', 'uncollectible'])));
  return rows.map((r) => r.id);
}
