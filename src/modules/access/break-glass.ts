import { and, desc, eq, gt, isNull, sql, type SQL } from 'drizzle-orm';
import type { AccessResult, AccessRule, IdCondition } from '../../platform/access/index.js';
import { resourceExists } from '../../platform/access/index.js';
import type { Db } from '../../platform/db/index.js';
import { AppError, badInput, ErrorCode, forbidden, notFound } from '../../platform/errors.js';
import { emitEvent } from '../../platform/jobs/index.js';
import type { Principal, RequestContext } from '../../schema/index.js';
import { recordAccessEvent } from './events.js';
import { breakGlassGrants } from './tables.js';

/**
 * Break-glass: a user holding `breakglass:invoke` states a reason and gets
 * time-boxed access to one patient, whatever the care-team rules say. RBAC
 * still applies (a nurse gets what a nurse may do, for that patient only).
 * Every invocation is recorded (break_glass_grants), announced to compliance
 * (outbox event `security.alertRaised`, ids only) and left for review.
 */
export type BreakGlassGrantRow = typeof breakGlassGrants.$inferSelect;

export const BREAK_GLASS_DEFAULT_MINUTES = 60;
export const BREAK_GLASS_MAX_MINUTES = 60;
export const BREAK_GLASS_MIN_MINUTES = 5;
/** the actions a grant opens (never SSN reveal or billing) */
export const BREAK_GLASS_ACTIONS: ReadonlySet<string> = new Set<string>(['read', 'write', 'clinical:read', 'clinical:write']);
/** the outbox event type of security alerts, and the socket room compliance dashboards join */
export const SECURITY_ALERT_EVENT = 'security.alertRaised';
export const SECURITY_ALERT_ROOM = 'alerts:security';

function requireUser(ctx: RequestContext): Principal {
  const p = ctx.principal;
  if (!p) throw new AppError(ErrorCode.UNAUTHENTICATED, 'Authentication required');
  if (p.kind !== 'user') throw forbidden('Only users can use break-glass');
  return p;
}

export const isActive = (g: Pick<BreakGlassGrantRow, 'endedAt' | 'expiresAt'>, now: Date) => !g.endedAt && g.expiresAt.getTime() > now.getTime();

export interface InvokeBreakGlassInput {
  patientId: string;
  reason: string;
  durationMinutes?: number | null;
}

export async function invokeBreakGlass(ctx: RequestContext, input: InvokeBreakGlassInput, now: Date): Promise<BreakGlassGrantRow> {
  const p = requireUser(ctx);
  const reason = input.reason.trim();
  if (reason.length < 10) throw badInput('state the reason in at least 10 characters', 'reason');
  const minutes = input.durationMinutes ?? BREAK_GLASS_DEFAULT_MINUTES;
  if (!Number.isInteger(minutes) || minutes < BREAK_GLASS_MIN_MINUTES || minutes > BREAK_GLASS_MAX_MINUTES) {
    throw badInput(`durationMinutes must be between ${BREAK_GLASS_MIN_MINUTES} and ${BREAK_GLASS_MAX_MINUTES}`, 'durationMinutes');
  }
  const db = await ctx.db();
  // the patient must exist in the caller's tenant (RLS-scoped lookup registered by the patients module)
  if (!(await resourceExists(ctx, 'patient', db, input.patientId))) throw notFound('Patient');
  const expiresAt = new Date(now.getTime() + minutes * 60_000);
  const [grant] = await db
    .insert(breakGlassGrants)
    .values({ tenantId: p.tenantId, userId: p.id, patientId: input.patientId, reason, createdAt: now, expiresAt })
    .returning();
  await emitEvent(db, {
    type: SECURITY_ALERT_EVENT,
    tenantId: p.tenantId,
    aggregateId: grant!.id,
    payload: { kind: 'break_glass', severity: 'high', grantId: grant!.id, userId: p.id, patientId: input.patientId, expiresAt: expiresAt.getTime() },
    rooms: [SECURITY_ALERT_ROOM],
  });
  await recordAccessEvent(ctx, db, { type: 'break_glass.invoked', details: { grantId: grant!.id, patientId: input.patientId, durationMinutes: minutes } });
  ctx.log.warn({ reqId: ctx.requestId, tenantId: p.tenantId, grantId: grant!.id, userId: p.id, minutes }, 'break-glass access granted');
  return grant!;
}

async function findGrant(db: Db, tenantId: string, id: string): Promise<BreakGlassGrantRow> {
  const [g] = await db.select().from(breakGlassGrants).where(and(eq(breakGlassGrants.tenantId, tenantId), eq(breakGlassGrants.id, id)));
  if (!g) throw notFound('Break-glass grant');
  return g;
}

/** Ends a grant before it expires: its owner, or a reviewer (`breakglass:review`). Idempotent. */
export async function endBreakGlass(ctx: RequestContext, id: string, now: Date): Promise<BreakGlassGrantRow> {
  const p = requireUser(ctx);
  const db = await ctx.db();
  const g = await findGrant(db, p.tenantId, id);
  if (g.userId !== p.id && !p.permissions.has('breakglass:review')) throw notFound('Break-glass grant');
  if (!isActive(g, now)) return g;
  const [ended] = await db
    .update(breakGlassGrants)
    .set({ endedAt: now, endedBy: p.id })
    .where(and(eq(breakGlassGrants.tenantId, p.tenantId), eq(breakGlassGrants.id, id)))
    .returning();
  await recordAccessEvent(ctx, db, { type: 'break_glass.ended', userId: g.userId, details: { grantId: id, patientId: g.patientId } });
  ctx.log.info({ reqId: ctx.requestId, tenantId: p.tenantId, grantId: id, actorId: p.id }, 'break-glass access ended');
  return ended!;
}

/** A compliance reviewer marks a grant as reviewed (idempotent). */
export async function reviewBreakGlassGrant(ctx: RequestContext, id: string, now: Date): Promise<BreakGlassGrantRow> {
  const p = requireUser(ctx);
  const db = await ctx.db();
  const g = await findGrant(db, p.tenantId, id);
  if (g.reviewedAt) return g;
  const [reviewed] = await db
    .update(breakGlassGrants)
    .set({ reviewedAt: now, reviewedBy: p.id })
    .where(and(eq(breakGlassGrants.tenantId, p.tenantId), eq(breakGlassGrants.id, id)))
    .returning();
  await recordAccessEvent(ctx, db, { type: 'break_glass.reviewed', userId: g.userId, details: { grantId: id, patientId: g.patientId } });
  return reviewed!;
}

export async function listGrants(
  ctx: RequestContext,
  filter: { mine: boolean; activeOnly: boolean; unreviewedOnly: boolean; patientId?: string | null },
  now: Date,
): Promise<BreakGlassGrantRow[]> {
  const p = requireUser(ctx);
  const db = await ctx.db();
  const where: (SQL | undefined)[] = [eq(breakGlassGrants.tenantId, p.tenantId)];
  if (filter.mine) where.push(eq(breakGlassGrants.userId, p.id));
  if (filter.activeOnly) where.push(isNull(breakGlassGrants.endedAt), gt(breakGlassGrants.expiresAt, now));
  if (filter.unreviewedOnly) where.push(isNull(breakGlassGrants.reviewedAt));
  if (filter.patientId) where.push(eq(breakGlassGrants.patientId, filter.patientId));
  return db
    .select()
    .from(breakGlassGrants)
    .where(and(...where))
    .orderBy(desc(breakGlassGrants.createdAt), desc(breakGlassGrants.id))
    .limit(500);
}

const BREAK_GLASS_RULE = 'access.breakGlass';

/**
 * The ABAC rule, for the patients module's access scope (it gets it through
 * this module's index.ts): an active grant of this user for this patient
 * allows the break-glass actions, naming the grant (the audit event of the
 * access carries it as `detail.breakGlassGrantId`). One definition gives the
 * per-patient check and the SQL condition of patient lists.
 */
export function breakGlassRule<A extends string>(now: () => Date = () => new Date()): AccessRule<A> {
  return {
    name: BREAK_GLASS_RULE,
    allowOnly: true,
    vote(principal, action) {
      if (principal.kind !== 'user' || !BREAK_GLASS_ACTIONS.has(action)) return 'abstain';
      const at = now().toISOString();
      const active = (id: SQL) =>
        sql`from ${breakGlassGrants} g where g.tenant_id = ${principal.tenantId} and g.user_id = ${principal.id} and g.patient_id = ${id} and g.ended_at is null and g.expires_at > ${at}::timestamptz`;
      const allowIf: IdCondition = (id) => sql`exists (select 1 ${active(id)})`;
      return { allowIf, ref: (id) => sql`(select g.id ${active(id)} order by g.expires_at desc limit 1)` };
    },
  };
}

/** True when break-glass (this module's rule) is what allowed an access: the caller records it (purpose ETREAT, the grant in `ref`). */
export function isBreakGlassAccess(result: AccessResult): boolean {
  return result.allowed && result.rule === BREAK_GLASS_RULE;
}
