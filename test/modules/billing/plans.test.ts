import { describe, expect, it } from 'vitest';
import { formatMoney, minorUnits, mulDivRound, prorate } from '../../../src/modules/billing/money.js';
import { addMonths, definePlans, includedCalls, periodEnd, planOf, PLANS, priceOf, usageCharge } from '../../../src/modules/billing/plans.js';

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return (e as { extensions?: { code?: string; field?: string } }).extensions;
  }
  return undefined;
};

describe('plans as data', () => {
  it('sells Starter, Professional and Enterprise in integer minor units, monthly and annual', () => {
    const rows = [...PLANS.values()].map((p) => [p.id, p.providerSeats, p.prices.month.amount, p.prices.year.amount, p.prices.month.currency]);
    expect(rows).toEqual([
      ['starter', 5, 49_900, 499_000, 'usd'],
      ['professional', 20, 149_900, 1_499_000, 'usd'],
      ['enterprise', null, 499_900, 4_999_000, 'usd'],
    ]);
    expect(priceOf('professional_annual')).toMatchObject({ planId: 'professional', interval: 'year', amount: 1_499_000 });
    for (const p of PLANS.values()) for (const price of Object.values(p.prices)) expect(Number.isSafeInteger(price.amount)).toBe(true);
  });

  it('includes modules by plan: e-prescribing and revenue cycle from Professional, population health on Enterprise', () => {
    expect(planOf('starter').modules).toEqual(['patients', 'telehealth']);
    expect(planOf('professional').modules).toEqual(expect.arrayContaining(['eprescribing', 'revenue-cycle']));
    expect(planOf('professional').modules).not.toContain('population-health');
    expect(planOf('enterprise').modules).toContain('population-health');
  });

  it('refuses an unknown plan or price, and a plan whose amounts are not integers in minor units', () => {
    expect(code(() => planOf('platinum'))).toMatchObject({ code: 'BAD_USER_INPUT', field: 'planId' });
    expect(code(() => priceOf('starter_weekly'))).toMatchObject({ code: 'BAD_USER_INPUT', field: 'priceId' });
    const base = { id: 'starter' as const, name: 'S', rank: 1, providerSeats: 5, modules: [], currency: 'usd', monthly: 100, annual: 1000, includedCallsPerMonth: 1, overagePer1000: 1 };
    expect(code(() => definePlans([{ ...base, monthly: 499.5 }]))).toMatchObject({ code: 'BAD_USER_INPUT', field: 'starter.month' });
    expect(code(() => definePlans([{ ...base, overagePer1000: 0.5 }]))).toMatchObject({ code: 'BAD_USER_INPUT' });
    expect(code(() => definePlans([{ ...base, currency: 'xxx' }]))).toMatchObject({ code: 'BAD_USER_INPUT' });
    expect(code(() => minorUnits('100'))).toMatchObject({ code: 'BAD_USER_INPUT' });
    expect(code(() => minorUnits(Number.NaN))).toMatchObject({ code: 'BAD_USER_INPUT' });
  });

  it('meters API usage: included calls, then each started block of 1,000 at the plan price (boundary exact)', () => {
    const starter = planOf('starter');
    expect(includedCalls(starter, 'month')).toBe(10_000);
    expect(includedCalls(starter, 'year')).toBe(120_000);
    expect(usageCharge(starter, 'month', 10_000)).toEqual({ included: 10_000, overageCalls: 0, units: 0, amount: 0 });
    expect(usageCharge(starter, 'month', 10_001)).toEqual({ included: 10_000, overageCalls: 1, units: 1, amount: 200 });
    expect(usageCharge(starter, 'month', 11_000).amount).toBe(200);
    expect(usageCharge(starter, 'month', 11_001).amount).toBe(400);
  });
});

describe('money arithmetic', () => {
  it('rounds half away from zero in integer arithmetic', () => {
    expect(mulDivRound(1, 1, 2)).toBe(1);
    expect(mulDivRound(-1, 1, 2)).toBe(-1);
    expect(mulDivRound(49_900, 1, 3)).toBe(16_633);
    expect(mulDivRound(Number.MAX_SAFE_INTEGER, 3, 3)).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('prorates to the minute', () => {
    const start = new Date('2027-03-01T00:00:00Z');
    const end = new Date('2027-04-01T00:00:00Z'); // 31 days = 44,640 minutes
    // 2027-03-11 09:17:45 -> 20 d 14 h 42 min 15 s left: 29,682 whole minutes (the started minute is used)
    const p = prorate(149_900, start, end, new Date('2027-03-11T09:17:45Z'));
    expect(p).toEqual({ amount: 99_671, minutesLeft: 29_682, periodMinutes: 44_640 }); // 149,900 * 29,682 / 44,640 = 99,671.41
    expect(prorate(49_900, start, end, new Date('2027-03-11T09:17:00Z'))).toMatchObject({ amount: 33_181, minutesLeft: 29_683 }); // 33,180.59
  });

  it('counts periods in calendar months from the anchor', () => {
    expect(addMonths(new Date('2027-01-31T10:00:00Z'), 1).toISOString()).toBe('2027-02-28T10:00:00.000Z');
    const anchor = new Date('2027-01-31T10:00:00Z');
    expect(periodEnd(anchor, new Date('2027-02-28T10:00:00Z'), 'month').toISOString()).toBe('2027-03-31T10:00:00.000Z');
    expect(periodEnd(anchor, anchor, 'year').toISOString()).toBe('2028-01-31T10:00:00.000Z');
    expect(formatMoney({ amount: 149_900, currency: 'usd' })).toBe('$1,499.00');
    expect(formatMoney({ amount: -5, currency: 'usd' })).toBe('-$0.05');
  });
});
