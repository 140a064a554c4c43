import { randomUUID } from 'node:crypto';
import { and, asc, eq, isNull, sql } from 'drizzle-orm';
import type postgres from 'postgres';
import { USER_ROLES } from '../../platform/access/index.js';
import { withTenant, type Db } from '../../platform/db/index.js';
import { AppError, badInput, conflict, ErrorCode, notFound } from '../../platform/errors.js';
import { tenants } from '../../platform/db/tables.js';
import type { RequestContext } from '../../schema/index.js';
import { liveSessions, resetUserMfa, revokeSessions } from './auth.js';
import {
  authSettings,
  IDLE_TIMEOUT_BOUNDS,
  INVITATION_TTL_HOURS,
  PLATFORM_ADMIN,
  PLATFORM_TENANT_ID,
  RESERVED_SLUGS,
  SESSION_LIFETIME_BOUNDS,
  SLUG_PATTERN,
  type AuthSettings,
} from './constants.js';
import { isUniqueViolation, loadTenant, requireUser, selectUsers, useTenant, userInTenant, userView, type UserView } from './common.js';
import { recordEvent } from './events.js';
import { checkUserChange, USER_CHANGE_GUARD, type UserChangeGuard } from './guards.js';
import { hashPassword, passwordProblem, verifyPassword } from './passwords.js';
import type { IdentityRuntime } from './runtime.js';
import { invitations, sessions, users } from './tables.js';
import { newTenantToken, parseTenantToken } from './tokens.js';

export interface Invitation {
  user: UserView;
  invitationToken: string;
  invitationExpiresAt: Date;
}

const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,255}$/;

/** Roles a user of this tenant may hold: user roles, and PLATFORM_ADMIN only in the platform tenant. */
export function checkRoles(tenantId: string, roles: readonly string[]): string[] {
  const unique = [...new Set(roles)];
  if (unique.length === 0) throw badInput('At least one role is required', 'roles');
  for (const r of unique) {
    const allowed = r === PLATFORM_ADMIN ? tenantId === PLATFORM_TENANT_ID : (USER_ROLES as readonly string[]).includes(r) && r !== 'API_CLIENT';
    if (!allowed) throw badInput(`Role ${r} cannot be given to a user of this tenant`, 'roles');
  }
  return unique.sort();
}

function checkEmail(email: string): string {
  const e = email.trim();
  if (!EMAIL.test(e)) throw badInput('Invalid email address', 'email');
  return e;
}

/** A new user (status invited) and a single-use invitation, in the tenant `db` is scoped to. */
async function createInvitedUser(
  rt: { now(): Date },
  db: Db,
  tenantId: string,
  input: { email: string; displayName: string; roles: string[] },
  actorId: string | null,
): Promise<{ userId: string; token: string; expiresAt: Date }> {
  const now = rt.now();
  const email = checkEmail(input.email);
  const displayName = input.displayName.trim();
  if (!displayName || displayName.length > 200) throw badInput('Display name must be 1 to 200 characters', 'displayName');
  const roles = checkRoles(tenantId, input.roles);
  const [existing] = await db
    .select({ id: users.id })
    .from(users)
    .where(and(eq(users.tenantId, tenantId), sql`lower(${users.email}) = lower(${email})`));
  if (existing) throw conflict('A user with this email already exists in this tenant');
  const [u] = await db
    .insert(users)
    .values({ tenantId, email, displayName, roles, status: 'invited', invitedBy: actorId, createdAt: now, updatedAt: now })
    .returning({ id: users.id });
  const inv = await newInvitation(rt, db, tenantId, u!.id, actorId);
  await recordEvent(db, tenantId, { type: 'user.invited', userId: u!.id, actorId, details: { roles } });
  return { userId: u!.id, ...inv };
}

async function newInvitation(rt: { now(): Date }, db: Db, tenantId: string, userId: string, actorId: string | null) {
  const now = rt.now();
  await db
    .update(invitations)
    .set({ revokedAt: now })
    .where(and(eq(invitations.tenantId, tenantId), eq(invitations.userId, userId), isNull(invitations.acceptedAt), isNull(invitations.revokedAt)));
  const { token, hash } = newTenantToken('cbi', tenantId);
  const expiresAt = new Date(now.getTime() + INVITATION_TTL_HOURS * 3600_000);
  await db.insert(invitations).values({ tenantId, userId, tokenHash: hash, createdBy: actorId, createdAt: now, expiresAt });
  return { token, expiresAt };
}

export interface ProvisionInput {
  name: string;
  slug: string;
  adminEmail: string;
  adminName?: string;
}

export interface Provisioned {
  tenantId: string;
  slug: string;
  adminUserId: string;
  invitationToken: string;
  invitationExpiresAt: Date;
}

/**
 * Creates a tenant with its first admin (invited), in a transaction scoped
 * to the new tenant (the tenants policy needs app.tenant_id = the new id).
 * Used by the createTenant mutation and `npm run tenant:create`.
 */
export async function provisionTenant(pool: postgres.Sql, input: ProvisionInput, opts: { now?: () => Date; actorId?: string | null } = {}): Promise<Provisioned> {
  const rt = { now: opts.now ?? (() => new Date()) };
  const slug = input.slug.trim().toLowerCase();
  if (!SLUG_PATTERN.test(slug)) throw badInput('Slug must be 3 to 40 lower-case letters, digits or dashes', 'slug');
  if (RESERVED_SLUGS.has(slug)) throw badInput('This slug is reserved', 'slug');
  const name = input.name.trim();
  if (!name || name.length > 200) throw badInput('Name must be 1 to 200 characters', 'name');
  const tenantId = randomUUID();
  try {
    return await withTenant(pool, tenantId, async (db) => {
      const now = rt.now();
      await db.insert(tenants).values({ id: tenantId, slug, name, createdAt: now, updatedAt: now });
      const admin = await createInvitedUser(rt, db, tenantId, { email: input.adminEmail, displayName: input.adminName ?? 'Administrator', roles: ['ADMIN'] }, null);
      await recordEvent(db, tenantId, { type: 'tenant.created', userId: admin.userId, actorId: opts.actorId ?? null });
      return { tenantId, slug, adminUserId: admin.userId, invitationToken: admin.token, invitationExpiresAt: admin.expiresAt };
    });
  } catch (e) {
    if (isUniqueViolation(e, 'tenants_slug_key')) throw conflict('A tenant with this slug already exists');
    throw e;
  }
}

/**
 * Development seeding only (`npm run demo:seed`, which refuses NODE_ENV=production): a user of the tenant
 * that is active with this password at once, as if invited and accepted in one step (the invitation is
 * recorded accepted, the events are the usual ones). `existingUserId`: activate an invited user instead
 * (the first admin of provisionTenant). The password policy applies as everywhere.
 */
export async function seedActiveUser(
  pool: postgres.Sql,
  tenantId: string,
  input: { email: string; displayName: string; roles: string[]; password: string },
  existingUserId?: string,
): Promise<string> {
  const problem = passwordProblem(input.password, { email: input.email });
  if (problem) throw badInput(problem, 'password');
  const passwordHash = await hashPassword(input.password);
  return withTenant(pool, tenantId, async (db) => {
    const now = new Date();
    const userId = existingUserId ?? (await createInvitedUser({ now: () => now }, db, tenantId, input, null)).userId;
    await db
      .update(invitations)
      .set({ acceptedAt: now })
      .where(and(eq(invitations.tenantId, tenantId), eq(invitations.userId, userId), isNull(invitations.acceptedAt), isNull(invitations.revokedAt)));
    await db.update(users).set({ passwordHash, passwordChangedAt: now, status: 'active', updatedAt: now }).where(and(eq(users.tenantId, tenantId), eq(users.id, userId)));
    await recordEvent(db, tenantId, { type: 'user.invitation_accepted', userId });
    return userId;
  });
}

/** Invites a platform administrator (role PLATFORM_ADMIN of the platform tenant): bootstrap through the CLI. */
export async function invitePlatformAdmin(pool: postgres.Sql, input: { email: string; name?: string }, opts: { now?: () => Date } = {}): Promise<Provisioned> {
  const rt = { now: opts.now ?? (() => new Date()) };
  return withTenant(pool, PLATFORM_TENANT_ID, async (db) => {
    const admin = await createInvitedUser(rt, db, PLATFORM_TENANT_ID, { email: input.email, displayName: input.name ?? 'Platform administrator', roles: [PLATFORM_ADMIN] }, null);
    return { tenantId: PLATFORM_TENANT_ID, slug: 'platform', adminUserId: admin.userId, invitationToken: admin.token, invitationExpiresAt: admin.expiresAt };
  });
}

export async function createTenant(rt: IdentityRuntime, ctx: RequestContext, input: ProvisionInput) {
  const me = requireUser(ctx);
  const p = await provisionTenant(rt.pool, input, { now: () => rt.now(), actorId: me.userId });
  const db = await ctx.db();
  await recordEvent(db, me.tenantId, { type: 'tenant.created', actorId: me.userId, ip: ctx.ip, details: { tenantId: p.tenantId } });
  const admin = await withTenant(rt.pool, p.tenantId, (tdb) => userView(tdb, p.tenantId, p.adminUserId));
  const tenant = await withTenant(rt.pool, p.tenantId, (tdb) => loadTenant(tdb, p.tenantId));
  return { tenant, admin, invitationToken: p.invitationToken, invitationExpiresAt: p.invitationExpiresAt };
}

export async function inviteUser(rt: IdentityRuntime, ctx: RequestContext, input: { email: string; displayName: string; roles: string[] }): Promise<Invitation> {
  const me = requireUser(ctx);
  const db = await ctx.db();
  const inv = await createInvitedUser(rt, db, me.tenantId, input, me.userId);
  const user = await userView(db, me.tenantId, inv.userId);
  await checkUserChange(ctx.provided<UserChangeGuard>(USER_CHANGE_GUARD), db, { tenantId: me.tenantId, userId: user.id, before: null, after: { roles: user.roles, status: user.status } });
  return { user, invitationToken: inv.token, invitationExpiresAt: inv.expiresAt };
}

export async function resendInvitation(rt: IdentityRuntime, ctx: RequestContext, userId: string): Promise<Invitation> {
  const me = requireUser(ctx);
  const db = await ctx.db();
  const user = await userInTenant(db, me.tenantId, userId);
  if (user.status !== 'invited') throw conflict('The user has already accepted an invitation');
  const inv = await newInvitation(rt, db, me.tenantId, user.id, me.userId);
  await recordEvent(db, me.tenantId, { type: 'user.invited', userId: user.id, actorId: me.userId, ip: ctx.ip, details: { resent: true } });
  return { user: await userView(db, me.tenantId, user.id), invitationToken: inv.token, invitationExpiresAt: inv.expiresAt };
}

const invalidInvitation = () => new AppError(ErrorCode.UNAUTHENTICATED, 'Invalid or expired invitation', { reason: 'invalid_invitation' });

/** Accepts an invitation: sets the password and activates the user. Single use. */
export async function acceptInvitation(rt: IdentityRuntime, ctx: RequestContext, input: { token: string; password: string }): Promise<UserView> {
  const parsed = parseTenantToken('cbi', input.token);
  if (!parsed) throw invalidInvitation();
  useTenant(ctx, parsed.tenantId);
  const db = await ctx.db();
  const now = rt.now();
  const [inv] = await db
    .select()
    .from(invitations)
    .where(and(eq(invitations.tenantId, parsed.tenantId), eq(invitations.tokenHash, parsed.hash)));
  if (!inv || inv.acceptedAt || inv.revokedAt || inv.expiresAt.getTime() <= now.getTime()) throw invalidInvitation();
  const user = await userInTenant(db, parsed.tenantId, inv.userId);
  if (user.status !== 'invited') throw invalidInvitation();
  const problem = passwordProblem(input.password, { email: user.email });
  if (problem) throw badInput(problem, 'password');
  const claimed = await db
    .update(invitations)
    .set({ acceptedAt: now })
    .where(and(eq(invitations.tenantId, parsed.tenantId), eq(invitations.id, inv.id), isNull(invitations.acceptedAt), isNull(invitations.revokedAt)))
    .returning({ id: invitations.id });
  if (!claimed.length) throw invalidInvitation();
  await db
    .update(users)
    .set({ passwordHash: await hashPassword(input.password), passwordChangedAt: now, status: 'active', updatedAt: now })
    .where(and(eq(users.tenantId, parsed.tenantId), eq(users.id, user.id)));
  await recordEvent(db, parsed.tenantId, { type: 'user.invitation_accepted', userId: user.id, ip: ctx.ip });
  return userView(db, parsed.tenantId, user.id);
}

function notSelf(me: { userId: string }, userId: string, what: string) {
  if (me.userId === userId) throw conflict(`You cannot ${what} yourself; ask another administrator`);
}

export async function setUserStatus(rt: IdentityRuntime, ctx: RequestContext, userId: string, active: boolean): Promise<UserView> {
  const me = requireUser(ctx);
  notSelf(me, userId, active ? 'reactivate' : 'deactivate');
  const db = await ctx.db();
  const user = await userInTenant(db, me.tenantId, userId);
  const now = rt.now();
  if (!active) {
    if (user.status !== 'deactivated') {
      await db.update(users).set({ status: 'deactivated', updatedAt: now }).where(and(eq(users.tenantId, me.tenantId), eq(users.id, userId)));
      await db
        .update(invitations)
        .set({ revokedAt: now })
        .where(and(eq(invitations.tenantId, me.tenantId), eq(invitations.userId, userId), isNull(invitations.acceptedAt), isNull(invitations.revokedAt)));
      await revokeSessions(rt, db, me.tenantId, { userId }, 'user_deactivated', { actorId: me.userId, ip: ctx.ip });
      await recordEvent(db, me.tenantId, { type: 'user.deactivated', userId, actorId: me.userId, ip: ctx.ip });
    }
  } else if (user.status === 'deactivated') {
    const status = user.passwordHash ? 'active' : 'invited';
    await db.update(users).set({ status, updatedAt: now }).where(and(eq(users.tenantId, me.tenantId), eq(users.id, userId)));
    await checkUserChange(ctx.provided<UserChangeGuard>(USER_CHANGE_GUARD), db, { tenantId: me.tenantId, userId, before: { roles: user.roles, status: user.status }, after: { roles: user.roles, status } });
    await recordEvent(db, me.tenantId, { type: 'user.reactivated', userId, actorId: me.userId, ip: ctx.ip });
  }
  return userView(db, me.tenantId, userId);
}

/** Changes a user's roles; their sessions end (tokens carry roles), so the change applies at once. */
export async function setUserRoles(rt: IdentityRuntime, ctx: RequestContext, userId: string, roles: string[]): Promise<UserView> {
  const me = requireUser(ctx);
  notSelf(me, userId, 'change the roles of');
  const db = await ctx.db();
  const user = await userInTenant(db, me.tenantId, userId);
  const next = checkRoles(me.tenantId, roles);
  const before = [...user.roles].sort();
  if (before.join(',') !== next.join(',')) {
    await db.update(users).set({ roles: next, updatedAt: rt.now() }).where(and(eq(users.tenantId, me.tenantId), eq(users.id, userId)));
    await checkUserChange(ctx.provided<UserChangeGuard>(USER_CHANGE_GUARD), db, { tenantId: me.tenantId, userId, before: { roles: user.roles, status: user.status }, after: { roles: next, status: user.status } });
    await revokeSessions(rt, db, me.tenantId, { userId }, 'roles_changed', { actorId: me.userId, ip: ctx.ip });
    await recordEvent(db, me.tenantId, { type: 'user.roles_changed', userId, actorId: me.userId, ip: ctx.ip, details: { from: before, to: next } });
  }
  return userView(db, me.tenantId, userId);
}

export async function adminResetMfa(rt: IdentityRuntime, ctx: RequestContext, userId: string): Promise<UserView> {
  const me = requireUser(ctx);
  notSelf(me, userId, 'reset the MFA of');
  const db = await ctx.db();
  await userInTenant(db, me.tenantId, userId);
  await resetUserMfa(rt, db, me.tenantId, userId, me.userId, ctx.ip);
  return userView(db, me.tenantId, userId);
}

export async function listUsers(ctx: RequestContext, input: { status?: string | null; first: number; offset: number }): Promise<UserView[]> {
  const me = requireUser(ctx);
  const db = await ctx.db();
  const conds = [eq(users.tenantId, me.tenantId)];
  if (input.status) conds.push(eq(users.status, input.status as UserView['status']));
  return selectUsers(db, me.tenantId)
    .where(and(...conds))
    .orderBy(asc(sql`lower(${users.email})`), asc(users.id))
    .limit(input.first)
    .offset(input.offset);
}

export async function getUser(ctx: RequestContext, userId: string): Promise<UserView> {
  const me = requireUser(ctx);
  return userView(await ctx.db(), me.tenantId, userId);
}

export interface SessionView {
  id: string;
  userId: string;
  device: string | null;
  ip: string | null;
  amr: string[];
  createdAt: Date;
  lastSeenAt: Date;
  expiresAt: Date;
  current: boolean;
}

async function sessionViews(rt: IdentityRuntime, ctx: RequestContext, tenantId: string, userId: string): Promise<SessionView[]> {
  const db = await ctx.db();
  const idleMs = authSettings((await loadTenant(db, tenantId)).settings).idleTimeoutMinutes * 60_000;
  const now = rt.now().getTime();
  const rows = await liveSessions(rt, db, tenantId, userId);
  return rows
    .filter((s) => now - s.lastSeenAt.getTime() <= idleMs)
    .map((s) => ({
      id: s.id,
      userId: s.userId,
      device: s.userAgent,
      ip: s.ip,
      amr: s.amr,
      createdAt: s.createdAt,
      lastSeenAt: s.lastSeenAt,
      expiresAt: s.expiresAt,
      current: s.id === ctx.principal?.sessionId,
    }));
}

export function mySessions(rt: IdentityRuntime, ctx: RequestContext) {
  const me = requireUser(ctx);
  return sessionViews(rt, ctx, me.tenantId, me.userId);
}

export async function userSessions(rt: IdentityRuntime, ctx: RequestContext, userId: string) {
  const me = requireUser(ctx);
  await userInTenant(await ctx.db(), me.tenantId, userId);
  return sessionViews(rt, ctx, me.tenantId, userId);
}

/** Revokes one of my sessions; someone else's (or another tenant's) id is not found. */
export async function revokeMySession(rt: IdentityRuntime, ctx: RequestContext, sessionId: string): Promise<boolean> {
  const me = requireUser(ctx);
  const db = await ctx.db();
  const [s] = await db
    .select({ id: sessions.id })
    .from(sessions)
    .where(and(eq(sessions.tenantId, me.tenantId), eq(sessions.id, sessionId), eq(sessions.userId, me.userId)));
  if (!s) throw notFound('Session');
  const revoked = await revokeSessions(rt, db, me.tenantId, { userId: me.userId, sessionId }, 'revoked_by_user', { actorId: me.userId, ip: ctx.ip });
  return revoked.length > 0;
}

export async function revokeMySessions(rt: IdentityRuntime, ctx: RequestContext, keepCurrent: boolean): Promise<number> {
  const me = requireUser(ctx);
  const db = await ctx.db();
  const ids = await revokeSessions(
    rt,
    db,
    me.tenantId,
    { userId: me.userId, exceptSessionId: keepCurrent ? me.sessionId : undefined },
    'revoked_by_user',
    { actorId: me.userId, ip: ctx.ip },
  );
  return ids.length;
}

export async function revokeUserSessions(rt: IdentityRuntime, ctx: RequestContext, userId: string): Promise<number> {
  const me = requireUser(ctx);
  const db = await ctx.db();
  await userInTenant(db, me.tenantId, userId);
  const ids = await revokeSessions(rt, db, me.tenantId, { userId }, 'revoked_by_admin', { actorId: me.userId, ip: ctx.ip });
  return ids.length;
}

export async function logoutCurrent(rt: IdentityRuntime, ctx: RequestContext): Promise<boolean> {
  const me = requireUser(ctx);
  if (!me.sessionId) return false;
  const ids = await revokeSessions(rt, await ctx.db(), me.tenantId, { userId: me.userId, sessionId: me.sessionId }, 'logout', { ip: ctx.ip });
  return ids.length > 0;
}

/** Changes my password (current one required); my other sessions end. */
export async function changePassword(rt: IdentityRuntime, ctx: RequestContext, input: { currentPassword: string; newPassword: string }): Promise<boolean> {
  const me = requireUser(ctx);
  const db = await ctx.db();
  const user = await userInTenant(db, me.tenantId, me.userId);
  if (!user.passwordHash || !(await verifyPassword(user.passwordHash, input.currentPassword))) {
    throw badInput('The current password is incorrect', 'currentPassword');
  }
  const problem = passwordProblem(input.newPassword, { email: user.email });
  if (problem) throw badInput(problem, 'newPassword');
  const now = rt.now();
  await db
    .update(users)
    .set({ passwordHash: await hashPassword(input.newPassword), passwordChangedAt: now, updatedAt: now })
    .where(and(eq(users.tenantId, me.tenantId), eq(users.id, me.userId)));
  await revokeSessions(rt, db, me.tenantId, { userId: me.userId, exceptSessionId: me.sessionId }, 'password_changed', { ip: ctx.ip });
  await recordEvent(db, me.tenantId, { type: 'password.changed', userId: me.userId, sessionId: me.sessionId ?? null, ip: ctx.ip });
  return true;
}

export async function updateAuthSettings(rt: IdentityRuntime, ctx: RequestContext, input: Partial<AuthSettings>): Promise<AuthSettings> {
  const me = requireUser(ctx);
  const bounded = (v: number | undefined | null, b: { min: number; max: number }, field: string) => {
    if (v === undefined || v === null) return undefined;
    if (!Number.isInteger(v) || v < b.min || v > b.max) throw badInput(`${field} must be between ${b.min} and ${b.max}`, field);
    return v;
  };
  const db = await ctx.db();
  const tenant = await loadTenant(db, me.tenantId);
  const current = authSettings(tenant.settings);
  const next: AuthSettings = {
    mfaRequired: input.mfaRequired ?? current.mfaRequired,
    idleTimeoutMinutes: bounded(input.idleTimeoutMinutes, IDLE_TIMEOUT_BOUNDS, 'idleTimeoutMinutes') ?? current.idleTimeoutMinutes,
    sessionLifetimeHours: bounded(input.sessionLifetimeHours, SESSION_LIFETIME_BOUNDS, 'sessionLifetimeHours') ?? current.sessionLifetimeHours,
  };
  await db
    .update(tenants)
    .set({ settings: { ...tenant.settings, auth: next }, updatedAt: rt.now() })
    .where(eq(tenants.id, me.tenantId));
  await recordEvent(db, me.tenantId, { type: 'tenant.settings_changed', actorId: me.userId, ip: ctx.ip, details: { ...next } });
  return next;
}
