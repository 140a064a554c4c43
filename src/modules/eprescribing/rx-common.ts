import type { AccessPrincipal } from '../../platform/access/index.js';
import type { Db } from '../../platform/db/index.js';
import { AppError, ErrorCode, forbidden } from '../../platform/errors.js';
import type { ModuleInstance, RequestScope, ScopePrincipal } from '../../platform/scope/index.js';
import { patientAccess } from '../patients/index.js';
import type { LifecycleRuntime } from './lifecycle.js';
export { isUuid, uuidArg, textArg, intArg } from '../../platform/args.js';
export { inSavepoint } from '../../platform/db/index.js';

/** Shared helpers of the prescription lifecycle services (arguments, principals, access, errors). */

export const EPRESCRIBING_MODULE = 'eprescribing';

/** The module instance as the lifecycle sees it: index.ts's init returns `{ lifecycle, ... }`. */
export interface LifecycleHolder extends ModuleInstance {
  lifecycle: LifecycleRuntime;
}

export function lifecycleOf(scope: RequestScope): LifecycleRuntime {
  return scope.module<LifecycleHolder>(EPRESCRIBING_MODULE).lifecycle;
}


/** BAD_USER_INPUT with a stable reason. */
export const badInputWith = (message: string, field: string, reason: string) => new AppError(ErrorCode.BAD_USER_INPUT, message, { field, reason });
export const forbiddenWith = (message: string, reason: string) => new AppError(ErrorCode.FORBIDDEN, message, { reason });

export function principalOf(scope: RequestScope, permission: string | null = null): ScopePrincipal {
  return scope.requirePermission(permission);
}

/** The principal as the access rules see it; a system principal (a job, the network) is trusted code. */
export function asAccessPrincipal(p: ScopePrincipal): AccessPrincipal | null {
  return p.kind === 'user' || p.kind === 'apiKey' ? (p as AccessPrincipal) : null;
}

/** Who did it, for history rows: user:<id>, apiKey:<id>, or the system principal's id. */
export function actorOf(p: ScopePrincipal): string {
  return p.kind === 'system' ? p.id : `${p.kind}:${p.id}`;
}

/** The user id of a user principal, else null. */
export const userIdOf = (p: ScopePrincipal): string | null => (p.kind === 'user' ? p.id : null);

/**
 * The patients module's scope for one patient (care team, patient self,
 * break-glass): FORBIDDEN when it refuses, recorded as a denied access.
 */
export async function requirePatientAccess(scope: RequestScope, db: Db, patientId: string, action: 'clinical:read' | 'clinical:write', resourceType = 'Prescription'): Promise<void> {
  const ap = asAccessPrincipal(principalOf(scope));
  if (!ap) return;
  const result = await patientAccess.check(ap, patientId, action, db);
  if (result.allowed) return;
  scope.recordPhiAccess({ patientIds: [patientId], resourceType, resourceId: null, fields: [], action: action === 'clinical:read' ? 'read' : 'update', outcome: 'denied', detail: { reason: result.outcome } });
  if (result.outcome === 'rbac') throw forbidden();
  throw forbiddenWith('Not allowed for this patient', 'PATIENT_ACCESS');
}


/** The calendar date (UTC) of an epoch ms. */
export const isoDate = (ms: number) => new Date(ms).toISOString().slice(0, 10);
