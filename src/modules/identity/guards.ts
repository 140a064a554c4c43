import { and, eq, ne, sql } from 'drizzle-orm';
import type { Db } from '../../platform/db/index.js';
import { users } from './tables.js';

/**
 * What another module may check when a user's roles or status change
 * (manifest `provides: { [USER_CHANGE_GUARD]: guard }`): the guard runs in
 * the same transaction, after the change is written, so it counts with it;
 * throwing a typed AppError refuses the change (the transaction rolls back).
 * The billing module uses it to hold provider seats to the tenant's plan.
 */
export const USER_CHANGE_GUARD = 'identity:userChangeGuard';

export type UserStatus = 'invited' | 'active' | 'deactivated';

export interface UserChange {
  tenantId: string;
  userId: string;
  /** null for a new user (an invitation) */
  before: { roles: readonly string[]; status: UserStatus } | null;
  after: { roles: readonly string[]; status: UserStatus };
}

export type UserChangeGuard = (db: Db, change: UserChange) => Promise<void>;

/** Runs every enabled module's guard (in module order) for a change already written in `db`'s transaction. */
export async function checkUserChange(guards: readonly UserChangeGuard[], db: Db, change: UserChange): Promise<void> {
  for (const guard of guards) await guard(db, change);
}

/** Users of the tenant holding `role` who are not deactivated (invited users count: they hold the role once they accept). */
export async function countUsersWithRole(db: Db, tenantId: string, role: string): Promise<number> {
  const [row] = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(users)
    .where(and(eq(users.tenantId, tenantId), ne(users.status, 'deactivated'), sql`${role} = any(${users.roles})`));
  return row?.n ?? 0;
}
