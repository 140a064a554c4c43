import { and, eq, sql, type SQL } from 'drizzle-orm';
import {
  checkPatientAccess,
  registerPatientAccessRule,
  registerPatientLookup,
  type AccessDecision,
  type AccessPrincipal,
  type PatientAccessRule,
  type PatientAction,
} from '../../platform/access/index.js';
import { markBreakGlassAccess } from '../../platform/audit/index.js';
import type { Db } from '../../platform/db/index.js';
import { AppError, ErrorCode } from '../../platform/errors.js';
import type { Principal, RequestContext } from '../../schema/index.js';
import { breakGlassGrants } from '../access/index.js';
import { scopesFor } from './policy.js';
import { patientCareTeam, patients } from './tables.js';

/**
 * ABAC rules of the patients module (registered on platform/access in init)
 * and the same policy as SQL, for searches that return many patients.
 */

/** Roles whose scope for the action is the whole tenant (front desk, billing, admin, API clients...). */
export const roleScopeRule: PatientAccessRule = (p, _patientId, action) => (scopesFor(p.roles, action).has('tenant') ? 'allow' : 'abstain');

/** Providers and nurses: patients whose care team lists them. */
export const careTeamRule: PatientAccessRule = async (p, patientId, action, db) => {
  if (p.kind !== 'user' || !scopesFor(p.roles, action).has('careTeam')) return 'abstain';
  const [row] = await db
    .select({ one: sql<number>`1` })
    .from(patientCareTeam)
    .where(and(eq(patientCareTeam.tenantId, p.tenantId), eq(patientCareTeam.patientId, patientId), eq(patientCareTeam.userId, p.id)))
    .limit(1);
  return row ? 'allow' : 'abstain';
};

/**
 * A PATIENT user: their own record only. Denies (so nothing else can allow)
 * when self is the only scope the user's roles give for the action.
 */
export const patientSelfRule: PatientAccessRule = async (p, patientId, action, db): Promise<AccessDecision> => {
  const scopes = scopesFor(p.roles, action);
  if (!scopes.has('self')) return 'abstain';
  if (p.kind === 'user') {
    const [row] = await db
      .select({ id: patients.id })
      .from(patients)
      .where(and(eq(patients.tenantId, p.tenantId), eq(patients.id, patientId), eq(patients.userId, p.id)))
      .limit(1);
    if (row) return 'allow';
  }
  return scopes.size === 1 ? 'deny' : 'abstain';
};

export const patientLookup = async (db: Db, patientId: string): Promise<boolean> => {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(patientId)) return false;
  const [row] = await db.select({ id: patients.id }).from(patients).where(eq(patients.id, patientId)).limit(1);
  return !!row;
};

/** Registers the rules and the lookup; returns the function that removes them. */
export function registerPatientRules(): () => void {
  // fresh closures: the registry is process-wide, and another app in this process (tests) must keep its own registration
  const off = [
    registerPatientAccessRule('patients.roleScope', (...a) => roleScopeRule(...a)),
    registerPatientAccessRule('patients.careTeam', (...a) => careTeamRule(...a), { allowOnly: true }),
    registerPatientAccessRule('patients.self', (...a) => patientSelfRule(...a)),
    registerPatientLookup('patients', (...a) => patientLookup(...a)),
  ];
  return () => off.forEach((f) => f());
}

export function requirePrincipal(ctx: RequestContext): Principal {
  if (!ctx.principal) throw new AppError(ErrorCode.UNAUTHENTICATED, 'Authentication required');
  return ctx.principal;
}

/**
 * RBAC + every registered rule for one patient (FORBIDDEN when denied). When
 * break-glass opened the patient, the audit trail of this request records
 * purpose ETREAT and the grant (detail.breakGlassGrantId) for it.
 */
export async function authorize(ctx: RequestContext, patientId: string, action: PatientAction): Promise<void> {
  const p = requirePrincipal(ctx);
  const result = await checkPatientAccess(p, patientId, action, await ctx.db());
  if (!result.allowed) {
    // distinct from a role refusal ("Not allowed"): the role may do this, but not for this patient
    throw new AppError(ErrorCode.FORBIDDEN, result.outcome === 'rbac' ? 'Not allowed' : 'Not allowed for this patient', result.outcome === 'rbac' ? {} : { reason: 'PATIENT_ACCESS' });
  }
  if (result.rule === 'access.breakGlass') markBreakGlassAccess(ctx, patientId, result.ref ?? null);
}

/**
 * The read policy as a WHERE condition on `patients` (undefined = the whole
 * tenant). Mirrors the rules above: tenant scope, care team (or an active
 * break-glass grant), own record. No scope at all gives `false`.
 */
export function readScopeCondition(p: AccessPrincipal): SQL | undefined {
  const scopes = scopesFor(p.roles, 'read');
  if (!p.permissions.has('patient:read')) return sql`false`;
  if (scopes.has('tenant')) return undefined;
  const parts: SQL[] = [];
  if (p.kind === 'user' && scopes.has('careTeam')) {
    parts.push(sql`exists (select 1 from ${patientCareTeam} ct where ct.tenant_id = ${patients.tenantId} and ct.patient_id = ${patients.id} and ct.user_id = ${p.id})`);
    parts.push(
      sql`exists (select 1 from ${breakGlassGrants} g where g.tenant_id = ${patients.tenantId} and g.user_id = ${p.id} and g.patient_id = ${patients.id} and g.ended_at is null and g.expires_at > now())`,
    );
  }
  if (p.kind === 'user' && scopes.has('self')) parts.push(sql`${patients.userId} = ${p.id}`);
  if (!parts.length) return sql`false`;
  return sql`(${sql.join(parts, sql` or `)})`;
}
