import { badInput } from '../../platform/errors.js';
import { currencyOf, minorUnits, type Currency } from './money.js';

/**
 * The plans Carebase sells, as data. Prices are integer minor units with a
 * currency; each plan has a monthly and an annual price (its own price id,
 * what the API and invoices name), a provider-seat limit (null: unlimited),
 * the entitlement keys it includes (the modules' `entitlement`, written to
 * tenant_entitlements by the billing module) and its metered API usage: calls
 * by API keys included per billing month, and the price of each further
 * block of 1,000 calls (or part of one).
 */
export type PlanId = 'starter' | 'professional' | 'enterprise';
export type BillingInterval = 'month' | 'year';
export const INTERVALS: readonly BillingInterval[] = ['month', 'year'];

export interface Price {
  /** stable price id, e.g. `professional_monthly` */
  id: string;
  planId: PlanId;
  interval: BillingInterval;
  amount: number;
  currency: Currency;
}

export interface Plan {
  id: PlanId;
  name: string;
  /** ordering for upgrades (higher = more) */
  rank: number;
  /** providers (users holding the PROVIDER role, invited or active) the plan allows; null = unlimited */
  providerSeats: number | null;
  /** entitlement keys of the modules the plan includes (core modules are always entitled) */
  modules: readonly string[];
  prices: { month: Price; year: Price };
  usage: {
    /** API-key calls included per billing month (an annual plan includes 12x per year period) */
    includedCallsPerMonth: number;
    /** price of each started block of `unitSize` calls over the included amount */
    overageUnitAmount: number;
    unitSize: number;
  };
}

/** Entitlement keys the plans sell. The modules that own them declare the same key in their manifest. */
export const MODULE_KEYS = {
  patients: 'patients',
  telehealth: 'telehealth',
  eprescribing: 'eprescribing',
  revenueCycle: 'revenue-cycle',
  populationHealth: 'population-health',
} as const;

interface PlanInput {
  id: PlanId;
  name: string;
  rank: number;
  providerSeats: number | null;
  modules: readonly string[];
  currency: string;
  monthly: number;
  annual: number;
  includedCallsPerMonth: number;
  overagePer1000: number;
}

/** Builds the catalog; refuses (BAD_USER_INPUT) an amount that is not an integer of minor units, or a bad seat count. */
export function definePlans(inputs: readonly PlanInput[]): ReadonlyMap<PlanId, Plan> {
  const plans = new Map<PlanId, Plan>();
  for (const p of inputs) {
    const currency = currencyOf(p.currency, `${p.id}.currency`);
    const price = (interval: BillingInterval, amount: number): Price => ({
      id: `${p.id}_${interval === 'month' ? 'monthly' : 'annual'}`,
      planId: p.id,
      interval,
      amount: minorUnits(amount, `${p.id}.${interval}`),
      currency,
    });
    if (p.monthly < 0 || p.annual < 0) throw badInput('Prices cannot be negative', p.id);
    if (p.providerSeats !== null && (!Number.isSafeInteger(p.providerSeats) || p.providerSeats < 1)) throw badInput('Provider seats must be a positive integer or unlimited', `${p.id}.providerSeats`);
    if (!Number.isSafeInteger(p.includedCallsPerMonth) || p.includedCallsPerMonth < 0) throw badInput('Included calls must be a non-negative integer', `${p.id}.includedCallsPerMonth`);
    plans.set(p.id, {
      id: p.id,
      name: p.name,
      rank: p.rank,
      providerSeats: p.providerSeats,
      modules: [...p.modules],
      prices: { month: price('month', p.monthly), year: price('year', p.annual) },
      usage: { includedCallsPerMonth: p.includedCallsPerMonth, overageUnitAmount: minorUnits(p.overagePer1000, `${p.id}.overagePer1000`), unitSize: 1000 },
    });
  }
  return plans;
}

const { patients, telehealth, eprescribing, revenueCycle, populationHealth } = MODULE_KEYS;

/** Annual prices: ten months for twelve. */
export const PLANS = definePlans([
  {
    id: 'starter',
    name: 'Starter',
    rank: 1,
    providerSeats: 5,
    modules: [patients, telehealth],
    currency: 'usd',
    monthly: 499_00,
    annual: 4_990_00,
    includedCallsPerMonth: 10_000,
    overagePer1000: 2_00,
  },
  {
    id: 'professional',
    name: 'Professional',
    rank: 2,
    providerSeats: 20,
    modules: [patients, telehealth, eprescribing, revenueCycle],
    currency: 'usd',
    monthly: 1_499_00,
    annual: 14_990_00,
    includedCallsPerMonth: 100_000,
    overagePer1000: 1_50,
  },
  {
    id: 'enterprise',
    name: 'Enterprise',
    rank: 3,
    providerSeats: null,
    modules: [patients, telehealth, eprescribing, revenueCycle, populationHealth],
    currency: 'usd',
    monthly: 4_999_00,
    annual: 49_990_00,
    includedCallsPerMonth: 1_000_000,
    overagePer1000: 1_00,
  },
]);

export const TRIAL_DAYS = 14;
/** the plan a trial runs on when none is named */
export const DEFAULT_TRIAL_PLAN: PlanId = 'professional';

/** The plan, or BAD_USER_INPUT (stable field `planId`). */
export function planOf(id: unknown, field = 'planId'): Plan {
  const plan = typeof id === 'string' ? PLANS.get(id.toLowerCase() as PlanId) : undefined;
  if (!plan) throw badInput(`Unknown plan (one of ${[...PLANS.keys()].join(', ')})`, field);
  return plan;
}

export function intervalOf(v: unknown, field = 'interval'): BillingInterval {
  const i = typeof v === 'string' ? v.toLowerCase() : v;
  if (i !== 'month' && i !== 'year') throw badInput('Unknown billing interval (month or year)', field);
  return i;
}

/** The price by id (e.g. `starter_annual`), or BAD_USER_INPUT. */
export function priceOf(id: unknown, field = 'priceId'): Price {
  for (const plan of PLANS.values()) for (const p of Object.values(plan.prices)) if (p.id === id) return p;
  throw badInput('Unknown price', field);
}

/** Calls included in one billing period of the plan (12 months' worth for an annual period). */
export function includedCalls(plan: Plan, interval: BillingInterval): number {
  return plan.usage.includedCallsPerMonth * (interval === 'year' ? 12 : 1);
}

/** Overage of `calls` in a period: started blocks of unitSize over the included calls, at the plan's unit price. */
export function usageCharge(plan: Plan, interval: BillingInterval, calls: number): { included: number; overageCalls: number; units: number; amount: number } {
  const included = includedCalls(plan, interval);
  const overageCalls = Math.max(0, calls - included);
  const units = Math.ceil(overageCalls / plan.usage.unitSize);
  return { included, overageCalls, units, amount: units * plan.usage.overageUnitAmount };
}

/** Adds whole months in UTC, clamping to the month's last day (Jan 31 + 1 month = Feb 28/29). */
export function addMonths(d: Date, months: number): Date {
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth() + months;
  const target = new Date(Date.UTC(y, m, 1, d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds()));
  const lastDay = new Date(Date.UTC(target.getUTCFullYear(), target.getUTCMonth() + 1, 0)).getUTCDate();
  target.setUTCDate(Math.min(d.getUTCDate(), lastDay));
  return target;
}

/**
 * The end of the period that starts at `start` for a subscription anchored at
 * `anchor` (periods are whole months or years after the anchor, so a
 * subscription anchored on the 31st bills on the last day of short months
 * and goes back to the 31st after).
 */
export function periodEnd(anchor: Date, start: Date, interval: BillingInterval): Date {
  const step = interval === 'year' ? 12 : 1;
  for (let k = 1; ; k++) {
    const end = addMonths(anchor, k * step);
    if (end.getTime() > start.getTime()) return end;
    if (k > 12 * 1000) throw new RangeError('period out of range');
  }
}
