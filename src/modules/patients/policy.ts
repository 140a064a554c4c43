import type { Role } from '../../platform/access/index.js';

/** What one may do to a patient; each action needs the permission `patient:<action>` (RBAC) before the patient scope (ABAC). */
export const PATIENT_ACTIONS = ['read', 'write', 'ssn:reveal', 'clinical:read', 'clinical:write', 'billing:read'] as const;
export type PatientAction = (typeof PATIENT_ACTIONS)[number];

/**
 * The patients module's policy, in one place:
 *
 * 1. PATIENT_SCOPE: which patients a role may act on (ABAC, on top of the
 *    RBAC permission `patient:<action>` that platform/access checks first):
 *      tenant    every patient of the tenant
 *      careTeam  patients whose care team lists the user (break-glass, a rule
 *                of the access module, opens one more patient for a while)
 *      self      the patient record linked to the user's account
 * 2. MASKING: how much of each field group a role sees on a patient it may
 *    read. The SSN is never shown in full here: only revealPatientSsn
 *    discloses it, to `patient:ssn:reveal` holders, audited as a reveal.
 *
 * A principal with several roles gets the union of scopes and, per field,
 * the most revealing level among its roles. Roles not listed get nothing.
 */

export type Scope = 'tenant' | 'careTeam' | 'self';

export const PATIENT_SCOPE: Readonly<Partial<Record<Role, Partial<Record<PatientAction, Scope>>>>> = {
  ADMIN: { read: 'tenant', write: 'tenant' },
  PROVIDER: { read: 'careTeam', write: 'careTeam', 'clinical:read': 'careTeam', 'clinical:write': 'careTeam' },
  NURSE: { read: 'careTeam', write: 'careTeam', 'clinical:read': 'careTeam', 'clinical:write': 'careTeam' },
  FRONT_DESK: { read: 'tenant', write: 'tenant', 'billing:read': 'tenant' },
  BILLING: { read: 'tenant', 'billing:read': 'tenant', 'ssn:reveal': 'tenant' },
  PATIENT: { read: 'self', 'clinical:read': 'self', 'billing:read': 'self' },
  API_CLIENT: { read: 'tenant', write: 'tenant', 'clinical:read': 'tenant', 'clinical:write': 'tenant' },
};

/** The scopes a principal's roles give for an action. */
export function scopesFor(roles: readonly string[], action: PatientAction): Set<Scope> {
  const out = new Set<Scope>();
  for (const r of roles) {
    const s = PATIENT_SCOPE[r as Role]?.[action];
    if (s) out.add(s);
  }
  return out;
}

/** full: as stored; partial: see MASK_FIELDS for what remains; hidden: null. */
export type MaskLevel = 'full' | 'partial' | 'hidden';
const RANK: Record<MaskLevel, number> = { hidden: 0, partial: 1, full: 2 };

/** Field groups of a patient record and what `partial` leaves visible. */
export const MASK_FIELDS = {
  name: 'given, family and preferred name (always full for a reader)',
  dateOfBirth: 'partial: birthYear only (dateOfBirth null)',
  sexAtBirth: 'no partial form',
  genderIdentity: 'no partial form',
  contact: 'phones and email; partial: last 4 digits of each phone, first letter and domain of the email',
  address: 'partial: city, state, first 3 characters of the postal code, country (no street lines)',
  emergencyContact: 'partial: name and relationship (no phone)',
  insurance: 'partial: payer and plan names (no member id or group number)',
  ssn: 'partial: last 4 digits (ssnLast4, ssnMasked); full is only ever given by revealPatientSsn',
} as const;
export type MaskField = keyof typeof MASK_FIELDS;

const F = 'full' as const;
const P = 'partial' as const;
const H = 'hidden' as const;

/**
 * THE masking policy table. Columns: name, dateOfBirth, sexAtBirth,
 * genderIdentity, contact, address, emergencyContact, insurance, ssn.
 */
export const MASKING: Readonly<Partial<Record<Role, Readonly<Record<MaskField, MaskLevel>>>>> = {
  //            name dateOfBirth sexAtBirth genderIdentity contact address emergencyContact insurance ssn
  ADMIN:      { name: F, dateOfBirth: P, sexAtBirth: H, genderIdentity: H, contact: F, address: P, emergencyContact: H, insurance: H, ssn: H },
  PROVIDER:   { name: F, dateOfBirth: F, sexAtBirth: F, genderIdentity: F, contact: F, address: F, emergencyContact: F, insurance: P, ssn: H },
  NURSE:      { name: F, dateOfBirth: F, sexAtBirth: F, genderIdentity: F, contact: F, address: F, emergencyContact: F, insurance: P, ssn: H },
  FRONT_DESK: { name: F, dateOfBirth: F, sexAtBirth: F, genderIdentity: F, contact: F, address: P, emergencyContact: F, insurance: F, ssn: P },
  BILLING:    { name: F, dateOfBirth: F, sexAtBirth: F, genderIdentity: H, contact: F, address: F, emergencyContact: H, insurance: F, ssn: P },
  PATIENT:    { name: F, dateOfBirth: F, sexAtBirth: F, genderIdentity: F, contact: F, address: F, emergencyContact: F, insurance: F, ssn: P },
  API_CLIENT: { name: F, dateOfBirth: F, sexAtBirth: F, genderIdentity: F, contact: F, address: F, emergencyContact: F, insurance: P, ssn: H },
};

export type MaskProfile = Readonly<Record<MaskField, MaskLevel>>;

const NOTHING: MaskProfile = Object.fromEntries(Object.keys(MASK_FIELDS).map((k) => [k, H])) as Record<MaskField, MaskLevel>;

/** The most revealing level per field among the roles. */
export function maskProfile(roles: readonly string[]): MaskProfile {
  const out: Record<MaskField, MaskLevel> = { ...NOTHING };
  for (const r of roles) {
    const row = MASKING[r as Role];
    if (!row) continue;
    for (const k of Object.keys(out) as MaskField[]) if (RANK[row[k]] > RANK[out[k]]) out[k] = row[k];
  }
  return out;
}

const profiles = new Map<string, MaskProfile>();
/** maskProfile, memoised per role set (a handful of combinations exist). */
export function maskProfileFor(roles: readonly string[]): MaskProfile {
  const key = [...roles].sort().join(',');
  let p = profiles.get(key);
  if (!p) {
    p = maskProfile(roles);
    profiles.set(key, p);
  }
  return p;
}

// ---- how partial values look ----

export const maskPhone = (e164: string) => `***-***-${e164.slice(-4)}`;
export function maskEmail(email: string): string {
  const at = email.lastIndexOf('@');
  return at > 0 ? `${email[0]}***${email.slice(at)}` : '***';
}
export const maskPostalCode = (code: string) => (code.length > 3 ? `${code.slice(0, 3)}${'*'.repeat(Math.min(code.length - 3, 6))}` : code);
export const maskSsn = (last4: string) => `***-**-${last4}`;
