import { sql } from 'drizzle-orm';
import type { AccessPrincipal } from '../../platform/access/index.js';
import type { Db } from '../../platform/db/index.js';
import { AppError, ErrorCode, badInput, forbidden } from '../../platform/errors.js';
import type { ModuleInstance, RequestScope, ScopePrincipal } from '../../platform/scope/index.js';
import { patientAccess } from '../patients/index.js';
import type { LifecycleRuntime } from './lifecycle.js';

/** Shared helpers of the prescription lifecycle services (arguments, principals, access, errors). */

export const EPRESCRIBING_MODULE = 'eprescribing';

/** The module instance as the lifecycle sees it: index.ts's init returns `{ lifecycle, ... }`. */
export interface LifecycleHolder extends ModuleInstance {
  lifecycle: LifecycleRuntime;
}

export function lifecycleOf(scope: RequestScope): LifecycleRuntime {
  return scope.module<LifecycleHolder>(EPRESCRIBING_MODULE).lifecycle;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (v: unknown): v is string => typeof v === 'string' && UUID.test(v);

export function uuidArg(v: unknown, field: string): string {
  if (!isUuid(v)) throw badInput(`${field} must be a uuid`, field);
  return v.toLowerCase();
}

/** A bounded free-text argument (trimmed; no control characters). */
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

export function intArg(v: unknown, field: string, min: number, max: number, optional = false): number | null {
  if (v === undefined || v === null) {
    if (optional) return null;
    throw badInput(`${field} is required`, field);
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw badInput(`${field} must be an integer from ${min} to ${max}`, field);
  return v;
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

/** Runs `fn` in a savepoint: a failure rolls back only what fn did, and the request transaction stays usable. */
export async function inSavepoint<T>(db: Db, fn: () => Promise<T>): Promise<T> {
  const name = `rx_${Math.random().toString(36).slice(2, 10)}`;
  await db.execute(sql.raw(`savepoint ${name}`));
  try {
    const out = await fn();
    await db.execute(sql.raw(`release savepoint ${name}`));
    return out;
  } catch (e) {
    await db.execute(sql.raw(`rollback to savepoint ${name}`));
    throw e;
  }
}

/** The calendar date (UTC) of an epoch ms. */
export const isoDate = (ms: number) => new Date(ms).toISOString().slice(0, 10);
