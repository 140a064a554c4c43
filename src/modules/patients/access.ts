import { sql, type SQL } from 'drizzle-orm';
import { createAccessScope, type AccessPrincipal, type AccessRule } from '../../platform/access/index.js';
import { markBreakGlassAccess } from '../../platform/audit/index.js';
import type { Db } from '../../platform/db/index.js';
import { AppError, ErrorCode } from '../../platform/errors.js';
import type { Principal, RequestContext } from '../../schema/index.js';
import { breakGlassRule, isBreakGlassAccess } from '../access/index.js';
import { scopesFor, type PatientAction } from './policy.js';
import { patientCareTeam, patients } from './tables.js';

/**
 * The patient access scope: the ABAC rules of the patients module plus the
 * access module's break-glass rule (through its index.ts). Each rule is one
 * definition that gives both the per-patient check (`patientAccess.check`)
 * and the SQL condition for lists (`patientAccess.where`, readScopeCondition).
 */

/** Roles whose scope for the action is the whole tenant (front desk, billing, admin, API clients...). */
export const roleScopeRule: AccessRule<PatientAction> = {
  name: 'patients.roleScope',
  vote: (p, action) => (scopesFor(p.roles, action).has('tenant') ? 'allow' : 'abstain'),
};

/** Providers and nurses: patients whose care team lists them. */
export const careTeamRule: AccessRule<PatientAction> = {
  name: 'patients.careTeam',
  allowOnly: true,
  vote: (p, action) =>
    p.kind !== 'user' || !scopesFor(p.roles, action).has('careTeam')
      ? 'abstain'
      : { allowIf: (id) => sql`exists (select 1 from ${patientCareTeam} ct where ct.tenant_id = ${p.tenantId} and ct.patient_id = ${id} and ct.user_id = ${p.id})` },
};

/**
 * A PATIENT user: their own record only. Denies (so nothing else can allow)
 * when self is the only scope the user's roles give for the action.
 */
export const patientSelfRule: AccessRule<PatientAction> = {
  name: 'patients.self',
  vote: (p, action) => {
    const scopes = scopesFor(p.roles, action);
    if (!scopes.has('self')) return 'abstain';
    const only = scopes.size === 1;
    if (p.kind !== 'user') return only ? 'deny' : 'abstain';
    const own = (id: SQL) => sql`exists (select 1 from ${patients} s where s.tenant_id = ${p.tenantId} and s.id = ${id} and s.user_id = ${p.id})`;
    return only ? { allowIf: own, denyUnless: own } : { allowIf: own };
  },
};

/** Break-glass (the access module's rule): an active grant of the user for the patient, named in the audit trail. */
const breakGlass = breakGlassRule<PatientAction>();

/** The patients module's access scope (exported from index.ts for modules that depend on patients). */
export const patientAccess = createAccessScope<PatientAction>({
  resource: 'patient',
  permission: (action) => `patient:${action}`,
  rules: [roleScopeRule, careTeamRule, patientSelfRule, breakGlass],
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const patientLookup = async (db: Db, patientId: string): Promise<boolean> => {
  if (!UUID.test(patientId)) return false;
  const [row] = await db.select({ id: patients.id }).from(patients).where(sql`${patients.id} = ${patientId}`).limit(1);
  return !!row;
};

/** The socket room type `patient:<id>`: patient:read, then the patient scope (read). */
export const patientRoom = {
  permission: 'patient:read',
  check: async (principal: AccessPrincipal, id: string, db: Db) => UUID.test(id) && (await patientAccess.check(principal, id, 'read', db)).allowed,
};

export function requirePrincipal(ctx: RequestContext): Principal {
  if (!ctx.principal) throw new AppError(ErrorCode.UNAUTHENTICATED, 'Authentication required');
  return ctx.principal;
}

/**
 * RBAC + the patient scope for one patient (FORBIDDEN when denied). When
 * break-glass opened the patient, the audit trail of this request records
 * purpose ETREAT and the grant (detail.breakGlassGrantId) for it.
 */
export async function authorize(ctx: RequestContext, patientId: string, action: PatientAction): Promise<void> {
  const p = requirePrincipal(ctx);
  const result = await patientAccess.check(p, patientId, action, await ctx.db());
  if (!result.allowed) {
    // distinct from a role refusal ("Not allowed"): the role may do this, but not for this patient
    throw new AppError(ErrorCode.FORBIDDEN, result.outcome === 'rbac' ? 'Not allowed' : 'Not allowed for this patient', result.outcome === 'rbac' ? {} : { reason: 'PATIENT_ACCESS' });
  }
  if (isBreakGlassAccess(result)) markBreakGlassAccess(ctx, patientId, result.ref ?? null);
}

/**
 * The read policy as a WHERE condition on `patients` (undefined = the whole
 * tenant): the same rules as `authorize`, as SQL. No scope at all gives `false`.
 */
export function readScopeCondition(p: AccessPrincipal): SQL | undefined {
  return patientAccess.where(p, 'read', sql`${patients.id}`);
}
