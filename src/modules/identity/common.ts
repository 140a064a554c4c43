import { and, eq, isNotNull, sql } from 'drizzle-orm';
import type postgres from 'postgres';
import type { Db } from '../../platform/db/index.js';
import { AppError, ErrorCode, notFound, unauthenticated } from '../../platform/errors.js';
import { tenants } from '../../platform/db/tables.js';
import type { RequestContext } from '../../schema/index.js';
import { users, userTotp } from './tables.js';

export type UserRow = typeof users.$inferSelect;
export type TenantRow = typeof tenants.$inferSelect;

/** A user as the API shows it (no hash). */
export interface UserView {
  id: string;
  tenantId: string;
  email: string;
  displayName: string;
  roles: string[];
  status: UserRow['status'];
  mfaEnabled: boolean;
  createdAt: Date;
  lastLoginAt: Date | null;
}

export const invalidCredentials = () => new AppError(ErrorCode.UNAUTHENTICATED, 'Invalid credentials', { reason: 'invalid_credentials' });

export function rateLimited(ctx: Pick<RequestContext, 'responseHeaders'> | null, seconds: number): AppError {
  ctx?.responseHeaders.set('retry-after', String(seconds));
  return new AppError(ErrorCode.RATE_LIMITED, 'Too many failed attempts; try again later', { retryAfter: seconds });
}

/**
 * Points the request transaction at a tenant named by the request itself
 * (slug, token) before its first query; public auth mutations need this.
 */
export function useTenant(ctx: RequestContext, tenantId: string): void {
  try {
    ctx.tx.setTenant(tenantId);
  } catch {
    throw new AppError(ErrorCode.BAD_REQUEST, 'This operation must be the only field of its request');
  }
}

/** The tenant id for a slug (SECURITY DEFINER lookup: there is no tenant context yet). */
export async function tenantBySlug(pool: postgres.Sql, slug: string): Promise<{ id: string; status: string } | null> {
  if (slug.length > 64) return null;
  const rows = await pool<{ id: string; status: string }[]>`select id, status from carebase_tenant_by_slug(${slug})`;
  return rows[0] ?? null;
}

export async function loadTenant(db: Db, tenantId: string): Promise<TenantRow> {
  const [t] = await db.select().from(tenants).where(eq(tenants.id, tenantId));
  if (!t) throw unauthenticated();
  return t;
}

export function requireUser(ctx: RequestContext): { userId: string; tenantId: string; sessionId?: string } {
  const p = ctx.principal;
  if (!p || p.kind !== 'user') throw unauthenticated();
  return { userId: p.id, tenantId: p.tenantId, sessionId: p.sessionId };
}

const userColumns = {
  id: users.id,
  tenantId: users.tenantId,
  email: users.email,
  displayName: users.displayName,
  roles: users.roles,
  status: users.status,
  createdAt: users.createdAt,
  lastLoginAt: users.lastLoginAt,
  mfaEnabled: sql<boolean>`(${userTotp.confirmedAt} is not null)`,
};

/** Users of the tenant as the API shows them (explicit tenant filter on top of RLS). */
export function selectUsers(db: Db, tenantId: string) {
  return db
    .select(userColumns)
    .from(users)
    .leftJoin(userTotp, and(eq(userTotp.tenantId, users.tenantId), eq(userTotp.userId, users.id), isNotNull(userTotp.confirmedAt)))
    .where(eq(users.tenantId, tenantId))
    .$dynamic();
}

export async function userView(db: Db, tenantId: string, userId: string): Promise<UserView> {
  const [u] = await selectUsers(db, tenantId).where(and(eq(users.tenantId, tenantId), eq(users.id, userId)));
  if (!u) throw notFound('User');
  return u;
}

/** Loads a user of the caller's tenant for an admin action; another tenant's id is simply not found. */
export async function userInTenant(db: Db, tenantId: string, userId: string): Promise<UserRow> {
  const [u] = await db.select().from(users).where(and(eq(users.tenantId, tenantId), eq(users.id, userId)));
  if (!u) throw notFound('User');
  return u;
}

export const isUniqueViolation = (e: unknown, constraint?: string) => {
  const err = (e as { cause?: unknown }).cause ?? e;
  const pg = err as { code?: string; constraint_name?: string };
  return pg.code === '23505' && (!constraint || pg.constraint_name === constraint);
};
