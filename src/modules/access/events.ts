import type { Db } from '../../platform/db/index.js';
import type { RequestContext } from '../../schema/index.js';
import { securityEvents } from '../identity/index.js';

/** Security events of this module (identity's table: the audit module moves them into its hash chain). */
export type AccessSecurityEventType =
  | 'break_glass.invoked'
  | 'break_glass.ended'
  | 'break_glass.reviewed'
  | 'api_key.created'
  | 'api_key.revoked'
  | 'api_key.tier_changed';

/**
 * Records an event in the request transaction (it commits or rolls back with
 * the change). Ids, enums and counts only: never a reason text or a key.
 */
export async function recordAccessEvent(
  ctx: RequestContext,
  db: Db,
  e: { type: AccessSecurityEventType; userId?: string | null; details: Record<string, string | number | boolean | string[] | null> },
): Promise<void> {
  const p = ctx.principal!;
  await db.insert(securityEvents).values({
    tenantId: p.tenantId,
    type: e.type,
    userId: e.userId ?? p.id,
    actorId: p.id,
    sessionId: p.sessionId ?? null,
    ip: ctx.ip,
    details: e.details,
  });
}
