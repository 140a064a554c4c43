import { badInput } from './errors.js';

/**
 * Argument checks every module's services share: a failed check is BAD_USER_INPUT naming the field, before anything
 * reaches SQL (NUL bytes and unpaired surrogates are refused earlier for every string by the input rule).
 */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(v: unknown): v is string {
  return typeof v === 'string' && UUID.test(v);
}

/** A uuid argument, lower-cased. */
export function uuidArg(v: unknown, field: string): string {
  if (!isUuid(v)) throw badInput(`${field} must be a uuid`, field);
  return v.toLowerCase();
}

/** A bounded free-text argument (trimmed; no control characters); an optional one may be absent or blank (null). */
export function textArg(v: unknown, field: string, opts: { min?: number; max: number; optional?: boolean }): string | null {
  if (v === undefined || v === null || (typeof v === 'string' && v.trim() === '' && opts.optional)) {
    if (opts.optional) return null;
    throw badInput(`${field} is required`, field);
  }
  if (typeof v !== 'string') throw badInput(`${field} must be a string`, field);
  const s = v.trim();
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/.test(s)) throw badInput(`${field} contains control characters`, field);
  if (s.length < (opts.min ?? 1)) throw badInput(`${field} must be at least ${opts.min ?? 1} characters`, field);
  if (s.length > opts.max) throw badInput(`${field} must be at most ${opts.max} characters`, field);
  return s;
}

/** An integer argument within [min, max]; an optional one may be absent (null). */
export function intArg(v: unknown, field: string, min: number, max: number, optional = false): number | null {
  if (v === undefined || v === null) {
    if (optional) return null;
    throw badInput(`${field} is required`, field);
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw badInput(`${field} must be an integer from ${min} to ${max}`, field);
  return v;
}

/** A YYYY-MM-DD string naming a day that exists (2026-02-31 does not). */
export function isCalendarDate(s: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(s)) return false;
  const d = new Date(`${s}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === s;
}

/** An optional calendar-date argument (YYYY-MM-DD) within [min, max]; absent: null. */
export function dateArg(v: unknown, field: string, range: { min: string; max: string }): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || !isCalendarDate(v) || v < range.min || v > range.max) throw badInput(`${field} must be a date (YYYY-MM-DD)`, field);
  return v;
}
