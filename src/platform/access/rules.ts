import type { Db } from '../db/index.js';
import { AppError, ErrorCode, forbidden } from '../errors.js';

/**
 * Attribute-based access (ABAC) to one patient, on top of RBAC.
 *
 * RBAC first: the principal must hold `patient:<action>`. Then every
 * registered rule votes `allow`, `deny` or `abstain`:
 *   - any `deny` wins (e.g. the patient-self rule: a PATIENT may see only
 *     their own record);
 *   - otherwise any `allow` grants (e.g. the care-team rule, break-glass);
 *   - all abstain (or no rule at all) -> denied. Deny by default.
 * A rule that break-glass should be able to override abstains instead of
 * denying. Rules registered `allowOnly` (they never deny) are skipped when
 * another rule allowed without awaiting anything: they could not change the
 * outcome, and it saves their query on every read by a tenant-wide role.
 * Rules are registered by enabled modules in `init` and removed in
 * `close` (the registry is process-wide; names are unique, re-registering a
 * name replaces the rule).
 */
export type AccessDecision = 'allow' | 'deny' | 'abstain' | AllowWithRef;
/** An allow that names the record granting it (e.g. a break-glass grant id): the audit trail of the access carries it. */
export interface AllowWithRef {
  decision: 'allow';
  ref: string;
}

const isAllow = (v: AccessDecision | undefined | Promise<AccessDecision>): boolean => v === 'allow' || (typeof v === 'object' && v !== null && 'decision' in v && v.decision === 'allow');

/** The parts of a Principal that rules see (structurally the schema's Principal). */
export interface AccessPrincipal {
  kind: 'user' | 'apiKey';
  id: string;
  tenantId: string;
  roles: readonly string[];
  permissions: ReadonlySet<string>;
}

export const PATIENT_ACTIONS = ['read', 'write', 'ssn:reveal', 'clinical:read', 'clinical:write', 'billing:read'] as const;
export type PatientAction = (typeof PATIENT_ACTIONS)[number];

/** A rule runs inside the request transaction (`db` is RLS-scoped to the principal's tenant). */
export type PatientAccessRule = (principal: AccessPrincipal, patientId: string, action: PatientAction, db: Db) => AccessDecision | Promise<AccessDecision>;

/** Answers "does this patient exist in the current tenant?" (registered by the patients module). */
export type PatientLookup = (db: Db, patientId: string) => Promise<boolean>;

export interface PatientRuleOptions {
  /**
   * The rule never denies (care team, break-glass): it is not run when a
   * rule already allowed without a database round trip (e.g. a tenant-wide
   * role), since it could not change the outcome.
   */
  allowOnly?: boolean;
}

const patientRules = new Map<string, PatientAccessRule>();
const allowOnlyRules = new Set<PatientAccessRule>();
const patientLookups = new Map<string, PatientLookup>();

/** Adds (or replaces) a named patient access rule; returns a function that removes it. */
export function registerPatientAccessRule(name: string, rule: PatientAccessRule, options: PatientRuleOptions = {}): () => void {
  const old = patientRules.get(name);
  if (old) allowOnlyRules.delete(old);
  patientRules.set(name, rule);
  if (options.allowOnly) allowOnlyRules.add(rule);
  return () => {
    if (patientRules.get(name) !== rule) return;
    patientRules.delete(name);
    allowOnlyRules.delete(rule);
  };
}

/** Registers how to tell whether a patient id exists in the current tenant; returns an unregister function. */
export function registerPatientLookup(name: string, lookup: PatientLookup): () => void {
  patientLookups.set(name, lookup);
  return () => {
    if (patientLookups.get(name) === lookup) patientLookups.delete(name);
  };
}

/** Names of the rules currently registered (diagnostics, tests). */
export function patientAccessRuleNames(): string[] {
  return [...patientRules.keys()];
}

/** True when some registered lookup finds the patient in the current tenant; false when none is registered. */
export async function patientExists(db: Db, patientId: string): Promise<boolean> {
  for (const lookup of patientLookups.values()) {
    if (await lookup(db, patientId)) return true;
  }
  return false;
}

export interface PatientAccessResult {
  allowed: boolean;
  /** rbac: the permission is missing; deny: a rule denied; default: no rule allowed; allow: `rule` allowed */
  outcome: 'rbac' | 'deny' | 'default' | 'allow';
  /** the rule that decided (deny or allow) */
  rule?: string;
  /** the record that allowed it, when the rule named one (a break-glass grant id) */
  ref?: string;
}

/** Evaluates RBAC + every registered rule (see above). Never throws for a denial. */
export async function checkPatientAccess(principal: AccessPrincipal, patientId: string, action: PatientAction, db: Db): Promise<PatientAccessResult> {
  if (!principal.permissions.has(`patient:${action}`)) return { allowed: false, outcome: 'rbac' };
  // rules that may deny always run; allow-only rules are skipped when a rule already allowed synchronously
  const rules = [...patientRules];
  const first = rules.map(([, rule]) => (allowOnlyRules.has(rule) ? undefined : rule(principal, patientId, action, db)));
  const allowedAtOnce = first.some(isAllow);
  const votes = await Promise.all(
    rules.map(async ([name, rule], i) => {
      if (!allowOnlyRules.has(rule)) return [name, await first[i]!] as const;
      return [name, allowedAtOnce ? 'abstain' : await rule(principal, patientId, action, db)] as const;
    }),
  );
  const denied = votes.find(([, v]) => v === 'deny');
  if (denied) return { allowed: false, outcome: 'deny', rule: denied[0] };
  const allowed = votes.find(([, v]) => isAllow(v));
  if (allowed) {
    const vote = allowed[1];
    return typeof vote === 'object' ? { allowed: true, outcome: 'allow', rule: allowed[0], ref: vote.ref } : { allowed: true, outcome: 'allow', rule: allowed[0] };
  }
  return { allowed: false, outcome: 'default' };
}

/**
 * For services: throws UNAUTHENTICATED without a principal and FORBIDDEN when
 * access is denied; returns the rule that allowed it (the audit trail can
 * record e.g. `access.breakGlass`).
 */
export async function authorizePatient(
  ctx: { principal: AccessPrincipal | null; db(): Promise<Db> },
  patientId: string,
  action: PatientAction,
): Promise<{ rule: string }> {
  if (!ctx.principal) throw new AppError(ErrorCode.UNAUTHENTICATED, 'Authentication required');
  const result = await checkPatientAccess(ctx.principal, patientId, action, await ctx.db());
  if (!result.allowed) throw forbidden();
  return { rule: result.rule! };
}
