import { z } from 'zod';
import { badInput } from '../../platform/errors.js';
import { PHONE_USES, SEX_AT_BIRTH, type EmergencyContact, type InsuranceCoverage, type PatientAddress, type PatientPhone, type SexAtBirth } from './tables.js';
import { isCalendarDate } from '../../platform/args.js';

/**
 * Validation of patient input, shared by GraphQL and the CSV import. Errors
 * are BAD_USER_INPUT naming the field (`extensions.field`); messages describe
 * the rule, never the rejected value (it may be PHI).
 */

const SSN_SHAPE = /^(\d{3})[- ]?(\d{2})[- ]?(\d{4})$/;
/** numbers the SSA has never issued or that were published (advertising, test cards) */
const SSN_NEVER_VALID = new Set(['078051120', '219099999', '123456789']);

/** The 9 digits of a valid US SSN, or a BAD_USER_INPUT naming `field`. */
export function parseSsn(value: string, field = 'ssn'): string {
  const m = SSN_SHAPE.exec(value.trim());
  if (!m) throw badInput(`${field} must be an SSN of 9 digits (NNN-NN-NNNN)`, field);
  const [, area, group, serial] = m as unknown as [string, string, string, string];
  if (area === '000' || area === '666' || area[0] === '9') throw badInput(`${field} has an area number that is never issued`, field);
  if (group === '00') throw badInput(`${field} has a group number that is never issued`, field);
  if (serial === '0000') throw badInput(`${field} has a serial number that is never issued`, field);
  const digits = `${area}${group}${serial}`;
  if (SSN_NEVER_VALID.has(digits)) throw badInput(`${field} is a published example number, not a real SSN`, field);
  return digits;
}

export const formatSsn = (digits: string) => `${digits.slice(0, 3)}-${digits.slice(3, 5)}-${digits.slice(5)}`;

const EARLIEST_BIRTH = '1880-01-01';

const today = () => new Date().toISOString().slice(0, 10);

/** A YYYY-MM-DD calendar date in [1880-01-01, today]. */
export function parseDate(value: string, field: string, opts: { notFuture?: boolean; notBefore?: string } = {}): string {
  const s = value.trim();
  if (!isCalendarDate(s)) throw badInput(`${field} must be a calendar date YYYY-MM-DD`, field);
  if ((opts.notFuture ?? true) && s > today()) throw badInput(`${field} must not be in the future`, field);
  const floor = opts.notBefore ?? EARLIEST_BIRTH;
  if (s < floor) throw badInput(`${field} must not be before ${floor === EARLIEST_BIRTH ? EARLIEST_BIRTH : 'the date of birth'}`, field);
  return s;
}

/**
 * A phone number in E.164 (+<country><number>). Accepts +… with 8 to 15
 * digits, or a 10-digit North American number (optionally with a leading 1)
 * written with spaces, dots, dashes or parentheses.
 */
export function parsePhone(value: string, field = 'phone'): string {
  const s = value.trim();
  if (!/^\+?[\d\s().-]{7,25}$/.test(s)) throw badInput(`${field} must be a phone number (E.164, e.g. +15551234567)`, field);
  const digits = s.replace(/\D/g, '');
  if (s.startsWith('+')) {
    if (digits.length < 8 || digits.length > 15 || digits[0] === '0') throw badInput(`${field} must be a phone number (E.164, e.g. +15551234567)`, field);
    return `+${digits}`;
  }
  const national = digits.length === 11 && digits[0] === '1' ? digits.slice(1) : digits;
  // NANP: area code and exchange start with 2-9
  if (national.length !== 10 || !/^[2-9]\d{2}[2-9]\d{6}$/.test(national)) {
    throw badInput(`${field} must be a phone number (E.164, e.g. +15551234567)`, field);
  }
  return `+1${national}`;
}

/** Digits of a phone as stored in phone_digits (E.164 without the plus). */
export const phoneDigits = (e164: string) => e164.replace(/\D/g, '');

const EMAIL = z.string().max(254).email();
export function parseEmail(value: string, field = 'email'): string {
  const s = value.trim().toLowerCase();
  if (!EMAIL.safeParse(s).success) throw badInput(`${field} must be an e-mail address`, field);
  return s;
}

const CONTROL = /[\u0000-\u001f\u007f]/;
function text(value: unknown, field: string, max: number, opts: { required?: boolean } = {}): string | null {
  if (value === null || value === undefined) {
    if (opts.required) throw badInput(`${field} is required`, field);
    return null;
  }
  if (typeof value !== 'string') throw badInput(`${field} must be text`, field);
  const s = value.normalize('NFC').trim().replace(/\s+/g, ' ');
  if (!s) {
    if (opts.required) throw badInput(`${field} must not be empty`, field);
    return null;
  }
  if (s.length > max) throw badInput(`${field} must be at most ${max} characters`, field);
  if (CONTROL.test(s)) throw badInput(`${field} must not contain control characters`, field);
  return s;
}

/** A person's name part: letters (any script), marks, spaces, apostrophes, hyphens, periods. */
function name(value: unknown, field: string, required: boolean): string | null {
  const s = text(value, field, 100, { required });
  if (s !== null && !/^[\p{L}\p{M}][\p{L}\p{M}' .,-]*$/u.test(s)) throw badInput(`${field} may contain only letters, spaces, apostrophes, hyphens and periods`, field);
  return s;
}

const LANGUAGE = /^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$/;
const COUNTRY = /^[A-Z]{2}$/;
const US_ZIP = /^\d{5}(-\d{4})?$/;
const MEMBER_ID = /^[A-Za-z0-9][A-Za-z0-9 -]{0,63}$/;

function record(value: unknown, field: string): Record<string, unknown> | null {
  if (value === null || value === undefined) return null;
  if (typeof value !== 'object' || Array.isArray(value)) throw badInput(`${field} must be an object`, field);
  return value as Record<string, unknown>;
}

export function parseAddress(value: unknown, field = 'address'): PatientAddress | null {
  const a = record(value, field);
  if (!a) return null;
  const country = (text(a.country, `${field}.country`, 2) ?? 'US').toUpperCase();
  if (!COUNTRY.test(country)) throw badInput(`${field}.country must be an ISO 3166-1 alpha-2 code`, `${field}.country`);
  const postalCode = text(a.postalCode, `${field}.postalCode`, 20, { required: true })!;
  if (country === 'US' && !US_ZIP.test(postalCode)) throw badInput(`${field}.postalCode must be a US ZIP code (NNNNN or NNNNN-NNNN)`, `${field}.postalCode`);
  return {
    line1: text(a.line1, `${field}.line1`, 200, { required: true })!,
    line2: text(a.line2, `${field}.line2`, 200),
    city: text(a.city, `${field}.city`, 100, { required: true })!,
    state: text(a.state, `${field}.state`, 50),
    postalCode,
    country,
  };
}

export function parseEmergencyContact(value: unknown, field = 'emergencyContact'): EmergencyContact | null {
  const c = record(value, field);
  if (!c) return null;
  return {
    name: name(c.name, `${field}.name`, true)!,
    relationship: text(c.relationship, `${field}.relationship`, 50, { required: true })!,
    phone: parsePhone(String(c.phone ?? ''), `${field}.phone`),
  };
}

export function parseInsurance(value: unknown, field = 'insurance'): InsuranceCoverage | null {
  const i = record(value, field);
  if (!i) return null;
  const memberId = text(i.memberId, `${field}.memberId`, 64, { required: true })!;
  if (!MEMBER_ID.test(memberId)) throw badInput(`${field}.memberId may contain only letters, digits, spaces and hyphens`, `${field}.memberId`);
  const date = (v: unknown, f: string) => (v === null || v === undefined || v === '' ? null : parseDate(String(v), `${field}.${f}`, { notFuture: false, notBefore: '1900-01-01' }));
  const effectiveDate = date(i.effectiveDate, 'effectiveDate');
  const expirationDate = date(i.expirationDate, 'expirationDate');
  if (effectiveDate && expirationDate && expirationDate < effectiveDate) {
    throw badInput(`${field}.expirationDate must not be before effectiveDate`, `${field}.expirationDate`);
  }
  return {
    payerName: text(i.payerName, `${field}.payerName`, 200, { required: true })!,
    planName: text(i.planName, `${field}.planName`, 200),
    memberId,
    groupNumber: text(i.groupNumber, `${field}.groupNumber`, 64),
    subscriberRelationship: text(i.subscriberRelationship, `${field}.subscriberRelationship`, 20),
    effectiveDate,
    expirationDate,
  };
}

export function parsePhones(value: unknown, field = 'phones'): PatientPhone[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) throw badInput(`${field} must be a list`, field);
  if (value.length > 10) throw badInput(`${field} may hold at most 10 numbers`, field);
  return value.map((p, i) => {
    const f = `${field}.${i}`;
    const r = record(p, f) ?? {};
    const use = (r.use ?? 'mobile') as string;
    if (!(PHONE_USES as readonly string[]).includes(use)) throw badInput(`${f}.use must be one of ${PHONE_USES.join(', ')}`, `${f}.use`);
    return { use: use as PatientPhone['use'], number: parsePhone(String(r.number ?? ''), `${f}.number`) };
  });
}

/** The demographic fields of a create or update, as given (undefined = not given, null = clear). */
export interface PatientFieldsInput {
  givenName?: string | null;
  familyName?: string | null;
  preferredName?: string | null;
  dateOfBirth?: string | null;
  sexAtBirth?: string | null;
  genderIdentity?: string | null;
  email?: string | null;
  phones?: unknown[] | null;
  address?: unknown;
  language?: string | null;
  emergencyContact?: unknown;
  insurance?: unknown;
  ssn?: string | null;
}

/** Validated, normalised fields (only those given). `ssn` holds the 9 digits. */
export interface PatientFields {
  givenName?: string;
  familyName?: string;
  preferredName?: string | null;
  dateOfBirth?: string;
  sexAtBirth?: SexAtBirth | null;
  genderIdentity?: string | null;
  email?: string | null;
  phones?: PatientPhone[];
  address?: PatientAddress | null;
  language?: string | null;
  emergencyContact?: EmergencyContact | null;
  insurance?: InsuranceCoverage | null;
  ssn?: string | null;
}

/**
 * Validates the fields that are present. `create`: given name, family name
 * and date of birth are required.
 */
export function validatePatientFields(input: PatientFieldsInput, mode: 'create' | 'update'): PatientFields {
  const out: PatientFields = {};
  const has = (k: keyof PatientFieldsInput) => input[k] !== undefined;
  const required = mode === 'create';
  if (required || has('givenName')) out.givenName = name(input.givenName, 'givenName', true)!;
  if (required || has('familyName')) out.familyName = name(input.familyName, 'familyName', true)!;
  if (has('preferredName')) out.preferredName = name(input.preferredName, 'preferredName', false);
  if (required || has('dateOfBirth')) {
    if (input.dateOfBirth === null || input.dateOfBirth === undefined) throw badInput('dateOfBirth is required', 'dateOfBirth');
    out.dateOfBirth = parseDate(String(input.dateOfBirth), 'dateOfBirth');
  }
  if (has('sexAtBirth')) {
    const v = input.sexAtBirth;
    if (v !== null && !(SEX_AT_BIRTH as readonly string[]).includes(String(v))) throw badInput(`sexAtBirth must be one of ${SEX_AT_BIRTH.join(', ')}`, 'sexAtBirth');
    out.sexAtBirth = (v ?? null) as SexAtBirth | null;
  }
  if (has('genderIdentity')) out.genderIdentity = text(input.genderIdentity, 'genderIdentity', 64);
  if (has('email')) out.email = input.email === null || input.email === '' ? null : parseEmail(String(input.email));
  if (has('phones')) out.phones = parsePhones(input.phones);
  if (has('address')) out.address = parseAddress(input.address);
  if (has('language')) {
    const l = text(input.language, 'language', 35);
    if (l !== null && !LANGUAGE.test(l)) throw badInput('language must be a BCP 47 language tag (e.g. en, es-MX)', 'language');
    out.language = l;
  }
  if (has('emergencyContact')) out.emergencyContact = parseEmergencyContact(input.emergencyContact);
  if (has('insurance')) out.insurance = parseInsurance(input.insurance);
  if (has('ssn')) out.ssn = input.ssn === null || input.ssn === '' ? null : parseSsn(String(input.ssn));
  return out;
}
