import { badInput } from '../../platform/errors.js';

/**
 * Money is an integer amount of minor units (cents) with an ISO 4217
 * currency code in lower case (Stripe's form). Nothing here ever holds a
 * float: proration is integer arithmetic on BigInt, rounded half up once.
 */
export interface Money {
  amount: number;
  currency: string;
}

export const CURRENCIES = ['usd'] as const;
export type Currency = (typeof CURRENCIES)[number];

/** The amounts a Carebase invoice may hold: safe integers (well inside bigint columns and GraphQL's Int for one invoice). */
export const MAX_AMOUNT = 1_000_000_000_00; // 1 billion in major units

/** BAD_USER_INPUT unless `amount` is an integer number of minor units within bounds. */
export function minorUnits(amount: unknown, field = 'amount'): number {
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount)) throw badInput('Amounts are integers in minor units (cents)', field);
  if (Math.abs(amount) > MAX_AMOUNT) throw badInput('Amount out of range', field);
  return amount;
}

export function currencyOf(v: unknown, field = 'currency'): Currency {
  const c = typeof v === 'string' ? v.toLowerCase() : v;
  if (!(CURRENCIES as readonly unknown[]).includes(c)) throw badInput(`Unsupported currency (supported: ${CURRENCIES.join(', ')})`, field);
  return c as Currency;
}

export function money(amount: unknown, currency: unknown): Money {
  return { amount: minorUnits(amount), currency: currencyOf(currency) };
}

/** round(amount * numerator / denominator), half away from zero, in exact integer arithmetic. */
export function mulDivRound(amount: number, numerator: number, denominator: number): number {
  if (!Number.isSafeInteger(amount) || !Number.isSafeInteger(numerator) || !Number.isSafeInteger(denominator) || denominator <= 0) {
    throw new RangeError('mulDivRound takes safe integers and a positive denominator');
  }
  const n = BigInt(amount) * BigInt(numerator);
  const d = BigInt(denominator);
  const neg = n < 0n;
  const abs = neg ? -n : n;
  const q = (abs * 2n + d) / (2n * d); // floor(abs/d + 1/2)
  return Number(neg ? -q : q);
}

const MINUTE = 60_000;

/** Whole minutes from `from` to `to` (floor; 0 when `to` is not after `from`). */
export function minutesBetween(from: Date, to: Date): number {
  return Math.max(0, Math.floor((to.getTime() - from.getTime()) / MINUTE));
}

/**
 * Proration of a price over the unused part of a period, to the minute: the
 * minutes left from `at` (floored to the minute) to the period's end, over the
 * period's minutes. Rounded half up to the cent.
 */
export function prorate(price: number, periodStart: Date, periodEnd: Date, at: Date): { amount: number; minutesLeft: number; periodMinutes: number } {
  const periodMinutes = minutesBetween(periodStart, periodEnd);
  const minutesLeft = Math.min(periodMinutes, minutesBetween(at, periodEnd));
  if (periodMinutes === 0) return { amount: 0, minutesLeft: 0, periodMinutes: 0 };
  return { amount: mulDivRound(price, minutesLeft, periodMinutes), minutesLeft, periodMinutes };
}

/** "$1,499.00" style, for invoices (en-US grouping, the currency's symbol). */
export function formatMoney(m: Money): string {
  const sign = m.amount < 0 ? '-' : '';
  const abs = Math.abs(m.amount);
  const major = Math.floor(abs / 100).toLocaleString('en-US');
  const minor = String(abs % 100).padStart(2, '0');
  const symbol = m.currency === 'usd' ? '$' : `${m.currency.toUpperCase()} `;
  return `${sign}${symbol}${major}.${minor}`;
}
