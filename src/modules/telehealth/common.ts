import { and, eq, sql } from 'drizzle-orm';
import type { AccessPrincipal } from '../../platform/access/index.js';
import type { FieldCrypto } from '../../platform/crypto/index.js';
import type { Db } from '../../platform/db/index.js';
import { AppError, ErrorCode, badInput } from '../../platform/errors.js';
import type { ModuleInstance, RequestScope, ScopePrincipal } from '../../platform/scope/index.js';
import { patients } from '../patients/index.js';
import type { VideoProvider } from './video/provider.js';
import type { LiveKitSimulator } from './video/simulator.js';

export const TELEHEALTH = 'telehealth';

/** The telehealth module's instance (one per app, returned by init): its clock, field encryption and video provider. */
export interface TelehealthInstance extends ModuleInstance {
  /** epoch ms; tests give the module a fake clock (createTelehealthModule({ now })) */
  now(): number;
  crypto: FieldCrypto;
  video: VideoProvider;
  /** the in-repo LiveKit simulator behind `video` when LIVEKIT_URL is unset (development, tests) */
  simulator?: LiveKitSimulator;
  /** lifetime of video join tokens (LIVEKIT_TOKEN_TTL_MINUTES) */
  joinTokenTtlMinutes: number;
}

export function instanceOf(scope: RequestScope): TelehealthInstance {
  return scope.module<TelehealthInstance>(TELEHEALTH);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(v: unknown): v is string {
  return typeof v === 'string' && UUID.test(v);
}

/** A uuid argument, lower-cased; BAD_USER_INPUT naming the field otherwise. */
export function uuidArg(v: unknown, field: string): string {
  if (!isUuid(v)) throw badInput(`${field} must be a uuid`, field);
  return v.toLowerCase();
}

/** The scope's principal (UNAUTHENTICATED without one; FORBIDDEN without `permission`). */
export function principalOf(scope: RequestScope, permission: string | null = null): ScopePrincipal {
  return scope.requirePermission(permission);
}

/** The principal as the access rules see it; a job's system principal is trusted code and is not an access principal. */
export function asAccessPrincipal(p: ScopePrincipal): AccessPrincipal | null {
  return p.kind === 'user' || p.kind === 'apiKey' ? (p as AccessPrincipal) : null;
}

/** Who did it, for history rows: a user or API key id, or system:<job>. */
export function actorOf(p: ScopePrincipal): string {
  return p.kind === 'system' ? p.id : `${p.kind}:${p.id}`;
}

/** The patient records linked to a user account (a PATIENT user has one per tenant). */
export async function ownPatientIds(db: Db, tenantId: string, userId: string): Promise<string[]> {
  const rows = await db.select({ id: patients.id }).from(patients).where(and(eq(patients.tenantId, tenantId), eq(patients.userId, userId)));
  return rows.map((r) => r.id);
}

/** The patient, if it is a live record of the tenant (not merged, not deceased). */
export async function findPatient(db: Db, tenantId: string, patientId: string): Promise<{ id: string; status: string; userId: string | null } | undefined> {
  const [row] = await db
    .select({ id: patients.id, status: patients.status, userId: patients.userId })
    .from(patients)
    .where(and(eq(patients.tenantId, tenantId), eq(patients.id, patientId)));
  return row;
}

export const invalidTransition = (from: string, action: string) =>
  new AppError(ErrorCode.INVALID_STATE_TRANSITION, `An appointment that is ${from.replace('_', ' ')} cannot be changed this way`, { from, action });

/** PostgreSQL error code of a (drizzle-wrapped) driver error. */
export function pgCode(e: unknown): string | undefined {
  let cur = e as { code?: unknown; cause?: unknown } | undefined;
  for (let i = 0; cur && typeof cur === 'object' && i < 5; i++) {
    if (typeof cur.code === 'string' && /^[0-9A-Z]{5}$/.test(cur.code)) return cur.code;
    cur = cur.cause as typeof cur;
  }
  return undefined;
}

/** The constraint a (drizzle-wrapped) driver error names. */
export function pgConstraint(e: unknown): string | undefined {
  let cur = e as { constraint_name?: unknown; constraint?: unknown; cause?: unknown } | undefined;
  for (let i = 0; cur && typeof cur === 'object' && i < 5; i++) {
    const c = cur.constraint_name ?? cur.constraint;
    if (typeof c === 'string') return c;
    cur = cur.cause as typeof cur;
  }
  return undefined;
}

/** Runs `fn` in a savepoint: a failed statement (e.g. an exclusion violation) rolls back only the savepoint, and the request transaction stays usable. */
export async function inSavepoint<T>(db: Db, fn: () => Promise<T>): Promise<T> {
  const name = `th_${Math.random().toString(36).slice(2, 10)}`;
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
