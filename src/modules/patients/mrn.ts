import { badInput } from '../../platform/errors.js';

/**
 * Medical record numbers: the tenant's counter, zero-padded to 7 digits,
 * followed by a Luhn check digit (8 digits; more once a tenant passes ten
 * million patients). The check digit catches every single-digit typo and
 * most transpositions at the front desk.
 */

/** Luhn check digit of a digit string. */
export function luhnCheckDigit(digits: string): number {
  let sum = 0;
  // from the right, doubling every second digit starting with the rightmost payload digit
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return (10 - (sum % 10)) % 10;
}

export function formatMrn(counter: number): string {
  if (!Number.isSafeInteger(counter) || counter < 1) throw new Error('MRN counter must be a positive integer');
  const payload = String(counter).padStart(7, '0');
  return `${payload}${luhnCheckDigit(payload)}`;
}

export function isValidMrn(mrn: string): boolean {
  if (!/^\d{8,16}$/.test(mrn)) return false;
  return luhnCheckDigit(mrn.slice(0, -1)) === Number(mrn.at(-1));
}

/** A searched MRN: digits only (spaces and dashes dropped), with a valid check digit. */
export function parseMrn(value: string, field = 'mrn'): string {
  const s = value.replace(/[\s-]/g, '');
  if (!isValidMrn(s)) throw badInput(`${field} must be a medical record number (8 or more digits with a valid check digit)`, field);
  return s;
}
