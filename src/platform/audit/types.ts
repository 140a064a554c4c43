/**
 * Vocabulary of the audit log. An audit event names who did what to which
 * patient's data, when and why; it never holds a PHI value (ids, field names,
 * codes only).
 */

/**
 * What kind of PHI a field carries (marked once in the schema, see phi-plugin.ts). The platform names none: each
 * module declares the categories its fields are marked with (manifest `phiCategories`, e.g. patients:
 * `demographics`, `ssn`, ...), and the schema build refuses a marker naming a category no enabled module declares.
 */
export type PhiCategory = string;

/** PHI categories the platform itself declares: none (its own fields carry no PHI). */
export const PLATFORM_PHI_CATEGORIES: Readonly<Record<string, string>> = {};

/** Actions on PHI. Security events use their own action names (e.g. `login_failed`). */
export const PHI_ACTIONS = ['read', 'create', 'update', 'delete', 'export', 'reveal', 'break-glass'] as const;
export type PhiAction = (typeof PHI_ACTIONS)[number];

export const AUDIT_OUTCOMES = ['allowed', 'denied', 'failed'] as const;
/** allowed: data was disclosed or changed; denied: refused by authorization; failed: a write that did not commit */
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

/** phi: access to patient data; security: identity events (logins, lockouts...); audit: reading or exporting the audit log itself */
export const AUDIT_EVENT_TYPES = ['phi', 'security', 'audit'] as const;
export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

/**
 * HL7 v3 PurposeOfUse codes (subset). ETREAT is emergency treatment
 * (break-glass).
 */
export const PURPOSES_OF_USE = [
  'TREAT', // treatment
  'ETREAT', // emergency treatment (break-glass)
  'HPAYMT', // payment
  'HOPERAT', // healthcare operations
  'PATRQT', // patient request
  'HCOMPL', // compliance / audit
  'HRESCH', // research
  'PUBHLTH', // public health
  'HSYSADMIN', // system administration
  'LEGAL', // legal
] as const;
export type PurposeOfUse = (typeof PURPOSES_OF_USE)[number];

export function isPurposeOfUse(v: unknown): v is PurposeOfUse {
  return typeof v === 'string' && (PURPOSES_OF_USE as readonly string[]).includes(v);
}

/**
 * Purpose of use when the request names none (header `X-Purpose-Of-Use` or a
 * field argument), by role; the first role with a default wins. Roles are
 * those of platform/access.
 */
const ROLE_PURPOSE: Record<string, PurposeOfUse> = {
  PROVIDER: 'TREAT',
  NURSE: 'TREAT',
  BILLING: 'HPAYMT',
  FRONT_DESK: 'HOPERAT',
  ADMIN: 'HOPERAT',
  COMPLIANCE: 'HCOMPL',
  PATIENT: 'PATRQT',
  API_CLIENT: 'HOPERAT',
};

export function defaultPurposeOfUse(roles: readonly string[], kind: 'user' | 'apiKey' | 'system' | null): PurposeOfUse {
  for (const r of roles) {
    const p = ROLE_PURPOSE[r];
    if (p) return p;
  }
  return kind === 'apiKey' ? 'HOPERAT' : 'HOPERAT';
}

/** Flat, non-PHI details (ids, codes, counts). */
export type AuditDetail = Record<string, string | number | boolean | null>;

export type ActorType = 'user' | 'apiKey' | 'system' | 'anonymous';

/** One row of the audit log as written (before chaining). */
export interface AuditEventInput {
  id: string;
  tenantId: string;
  at: Date;
  eventType: AuditEventType;
  actorType: ActorType;
  actorId: string | null;
  actorRoles: string[];
  sessionId: string | null;
  patientId: string | null;
  /**
   * An event about several patients (a search page, a list of their records): every patient it covers, sorted, with
   * `patientId` and `resourceId` null. Empty or absent for an event about one patient (`patientId`) or none.
   */
  patientIds?: string[];
  resourceType: string | null;
  resourceId: string | null;
  /** field coordinates, e.g. Patient.ssn, never values */
  fields: string[];
  categories: string[];
  action: string;
  outcome: AuditOutcome;
  purposeOfUse: string | null;
  requestId: string | null;
  ip: string | null;
  userAgent: string | null;
  operationName: string | null;
  detail: AuditDetail;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export function isUuid(v: unknown): v is string {
  return typeof v === 'string' && UUID.test(v);
}

/**
 * A timestamptz from a raw postgres-js query: a Date, or the server's text
 * when drizzle has installed its pass-through parser on the pool.
 */
export function toDate(v: Date | string): Date {
  return v instanceof Date ? v : new Date(v);
}
