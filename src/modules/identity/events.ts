import type postgres from 'postgres';
import { withTenant, type Db } from '../../platform/db/index.js';
import { securityEvents } from './tables.js';

/**
 * Security events, for the audit module: ids, types and counters only. Never
 * a password, token, code, secret or email.
 */
export type SecurityEventType =
  | 'login.success'
  | 'login.failure'
  | 'login.locked'
  | 'mfa.challenge_failed'
  | 'mfa.enrolled'
  | 'mfa.reset'
  | 'mfa.recovery_code_used'
  | 'mfa.recovery_codes_regenerated'
  | 'reauth.succeeded'
  | 'reauth.failed'
  | 'refresh.reuse_detected'
  | 'session.revoked'
  | 'session.idle_timeout'
  | 'logout'
  | 'password.changed'
  | 'user.invited'
  | 'user.invitation_accepted'
  | 'user.deactivated'
  | 'user.reactivated'
  | 'user.roles_changed'
  | 'tenant.created'
  | 'tenant.settings_changed'
  | 'signing_key.rotated';

export interface SecurityEvent {
  type: SecurityEventType;
  userId?: string | null;
  actorId?: string | null;
  sessionId?: string | null;
  ip?: string | null;
  details?: Record<string, string | number | boolean | string[] | null>;
}

/** Records an event in the caller's transaction (it commits or rolls back with the change it describes). */
export async function recordEvent(db: Db, tenantId: string, e: SecurityEvent): Promise<void> {
  await db.insert(securityEvents).values({
    tenantId,
    type: e.type,
    userId: e.userId ?? null,
    actorId: e.actorId ?? null,
    sessionId: e.sessionId ?? null,
    ip: e.ip ?? null,
    details: e.details ?? {},
  });
}

/** Records an event in a transaction of its own: for failures, whose request transaction rolls back. */
export function recordEventNow(pool: postgres.Sql, tenantId: string, e: SecurityEvent): Promise<void> {
  return withTenant(pool, tenantId, (db) => recordEvent(db, tenantId, e));
}
