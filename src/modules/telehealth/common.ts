import { and, eq } from 'drizzle-orm';
import type { AccessPrincipal } from '../../platform/access/index.js';
import type { BlobStore } from '../../platform/blobs/index.js';
import type { FieldCrypto } from '../../platform/crypto/index.js';
import type { Db } from '../../platform/db/index.js';
import { AppError, ErrorCode } from '../../platform/errors.js';
import type { ModuleInstance, RequestScope, ScopePrincipal } from '../../platform/scope/index.js';
import { patients } from '../patients/index.js';
import type { ReminderNotifier } from './jobs.js';
import type { VideoProvider } from './video/provider.js';
import type { LiveKitSimulator } from './video/simulator.js';
export { isUuid, uuidArg, textArg } from '../../platform/args.js';
export { inSavepoint } from '../../platform/db/index.js';

export const TELEHEALTH = 'telehealth';

/** The telehealth module's instance (one per app, returned by init): its clock, field encryption and video provider. */
export interface TelehealthInstance extends ModuleInstance {
  /** epoch ms; tests give the module a fake clock (createTelehealthModule({ now })) */
  now(): number;
  crypto: FieldCrypto;
  /** the platform blob store: shared documents' encrypted bytes */
  blobs: BlobStore;
  /** the largest shared document accepted (bytes) */
  maxUploadBytes: number;
  video: VideoProvider;
  /** the in-repo LiveKit simulator behind `video` when LIVEKIT_URL is unset (development, tests) */
  simulator?: LiveKitSimulator;
  /** lifetime of video join tokens (LIVEKIT_TOKEN_TTL_MINUTES) */
  joinTokenTtlMinutes: number;
  /** reminder offsets (minutes before the start, largest first) and the no-show grace (TELEHEALTH_*) */
  jobs: { reminderOffsetsMinutes: number[]; noShowGraceMinutes: number };
  /** delivers appointment reminders (the log notifier unless the module is given another) */
  notifier: ReminderNotifier;
}

export function instanceOf(scope: RequestScope): TelehealthInstance {
  return scope.module<TelehealthInstance>(TELEHEALTH);
}


/**
 * The scope's principal (UNAUTHENTICATED without one; FORBIDDEN without `permission`). A system principal (this
 * module's jobs and webhooks: code, not a caller) holds no permissions and is not checked against them.
 */
export function principalOf(scope: RequestScope, permission: string | null = null): ScopePrincipal {
  const p = scope.requirePermission(null);
  return p.kind === 'system' ? p : scope.requirePermission(permission);
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

/** The caller's part in a visit, as stored with what they write there: provider (its provider), patient or other (staff). */
export function participantRole(scope: RequestScope, appt: { providerId: string }): 'provider' | 'patient' | 'other' {
  const p = principalOf(scope);
  if (p.id === appt.providerId) return 'provider';
  return p.roles.includes('PATIENT') ? 'patient' : 'other';
}

/** BAD_USER_INPUT VISIT_NOT_OPEN: the visit's status does not allow `what` (chat, vital signs, documents, ...). */
export const visitNotOpen = (what: string, status: string) =>
  new AppError(ErrorCode.BAD_USER_INPUT, `The visit is ${status.replace('_', ' ')}: not open for ${what}`, { field: 'appointmentId', reason: 'VISIT_NOT_OPEN' });

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


