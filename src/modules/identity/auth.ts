import { and, eq, gt, inArray, isNull, lt, or, sql } from 'drizzle-orm';
import { Secret, TOTP } from 'otpauth';
import { withTenant, type Db } from '../../platform/db/index.js';
import { AppError, badInput, conflict, ErrorCode, unauthenticated } from '../../platform/errors.js';
import { tenants } from '../../platform/db/tables.js';
import type { RequestContext } from '../../schema/index.js';
import {
  authSettings,
  MAX_ACCESS_TTL_SECONDS,
  MFA_CHALLENGE_MAX_ATTEMPTS,
  MFA_CHALLENGE_TTL_SECONDS,
  RECOVERY_CODE_COUNT,
  TOTP_DIGITS,
  TOTP_PERIOD_SECONDS,
  TOTP_WINDOW,
} from './constants.js';
import { invalidCredentials, loadTenant, rateLimited, tenantBySlug, useTenant, type TenantRow, type UserRow } from './common.js';
import { recordEvent, recordEventNow } from './events.js';
import { Lockout } from './lockout.js';
import { dummyHash, hashPassword, needsRehash, verifyPassword } from './passwords.js';
import type { IdentityRuntime } from './runtime.js';
import { mfaChallenges, recoveryCodes, refreshTokens, sessions, users, userTotp } from './tables.js';
import { newRecoveryCode, newTenantToken, normaliseRecoveryCode, parseTenantToken, recoveryCodeHash } from './tokens.js';

export interface IssuedSession {
  tenantId: string;
  sessionId: string;
  userId: string;
  accessToken: string;
  accessTokenExpiresAt: Date;
  refreshToken: string;
  refreshTokenExpiresAt: Date;
}

export type LoginResult =
  | { status: 'AUTHENTICATED'; session: IssuedSession }
  | { status: 'MFA_REQUIRED' | 'MFA_ENROLMENT_REQUIRED'; mfaToken: string; mfaTokenExpiresAt: Date };

const invalidMfa = () => new AppError(ErrorCode.UNAUTHENTICATED, 'Invalid or expired verification', { reason: 'invalid_mfa' });
const ms = (d: Date) => d.getTime();
const plus = (d: Date, seconds: number) => new Date(d.getTime() + seconds * 1000);

// ---------------------------------------------------------------- login

export async function login(rt: IdentityRuntime, ctx: RequestContext, input: { tenantSlug: string; email: string; password: string }): Promise<LoginResult> {
  const slug = input.tenantSlug.trim().toLowerCase();
  const email = input.email.trim();
  const keys = [Lockout.accountKey(slug, email), Lockout.ipKey(ctx.ip)];
  const locked = await rt.lockout.lockedFor(keys);
  if (locked) throw rateLimited(ctx, locked);

  const tenant = await tenantBySlug(rt.pool, slug);
  let user: UserRow | undefined;
  if (tenant?.status === 'active') {
    useTenant(ctx, tenant.id);
    const db = await ctx.db();
    [user] = await db
      .select()
      .from(users)
      .where(and(eq(users.tenantId, tenant.id), sql`lower(${users.email}) = lower(${email})`))
      .limit(1);
  }
  // every failure path costs one argon2id verification (unknown tenant, unknown user, no password, deactivated)
  const passwordOk = await verifyPassword(user?.passwordHash ?? (await dummyHash()), input.password);
  if (!passwordOk || !user || !tenant || user.status !== 'active' || !user.passwordHash) {
    await ctx.tx.rollback();
    const lockedFor = await rt.lockout.recordFailure(keys);
    if (tenant) {
      await recordEventNow(rt.pool, tenant.id, { type: 'login.failure', userId: user?.id ?? null, ip: ctx.ip, details: { stage: 'password' } });
      if (lockedFor) await recordEventNow(rt.pool, tenant.id, { type: 'login.locked', userId: user?.id ?? null, ip: ctx.ip, details: { seconds: lockedFor } });
    }
    throw invalidCredentials();
  }
  await rt.lockout.clear([keys[0]!]);
  const db = await ctx.db();
  if (needsRehash(user.passwordHash)) {
    await db.update(users).set({ passwordHash: await hashPassword(input.password) }).where(and(eq(users.tenantId, tenant.id), eq(users.id, user.id)));
  }
  return afterPassword(rt, ctx, db, user, await loadTenant(db, tenant.id));
}

async function confirmedTotp(db: Db, tenantId: string, userId: string) {
  const [row] = await db.select().from(userTotp).where(and(eq(userTotp.tenantId, tenantId), eq(userTotp.userId, userId)));
  return row?.confirmedAt ? row : undefined;
}

/** Password accepted: a session, or an MFA challenge (verify, or first enrolment when MFA is required). */
async function afterPassword(rt: IdentityRuntime, ctx: RequestContext, db: Db, user: UserRow, tenant: TenantRow): Promise<LoginResult> {
  const enrolled = !!(await confirmedTotp(db, tenant.id, user.id));
  const required = enrolled || authSettings(tenant.settings).mfaRequired || rt.deps.permissions.rolesRequireMfa(user.roles);
  if (!required) return { status: 'AUTHENTICATED', session: await issueSession(rt, ctx, db, user, tenant, ['pwd']) };
  const now = rt.now();
  const { token, hash } = newTenantToken('cbm', tenant.id);
  const expiresAt = plus(now, MFA_CHALLENGE_TTL_SECONDS);
  await db.insert(mfaChallenges).values({ tenantId: tenant.id, userId: user.id, tokenHash: hash, purpose: enrolled ? 'verify' : 'enrol', createdAt: now, expiresAt });
  return { status: enrolled ? 'MFA_REQUIRED' : 'MFA_ENROLMENT_REQUIRED', mfaToken: token, mfaTokenExpiresAt: expiresAt };
}

// ---------------------------------------------------------------- sessions

/** Creates a session (refresh family) with its first refresh token, and signs an access token. */
export async function issueSession(rt: IdentityRuntime, ctx: RequestContext, db: Db, user: UserRow, tenant: TenantRow, amr: string[]): Promise<IssuedSession> {
  const now = rt.now();
  const settings = authSettings(tenant.settings);
  const expiresAt = plus(now, settings.sessionLifetimeHours * 3600);
  const [s] = await db
    .insert(sessions)
    .values({ tenantId: tenant.id, userId: user.id, amr, ip: ctx.ip, userAgent: ctx.userAgent?.slice(0, 256) ?? null, createdAt: now, lastSeenAt: now, expiresAt })
    .returning({ id: sessions.id });
  const { token: refreshToken, hash } = newTenantToken('cbr', tenant.id);
  await db.insert(refreshTokens).values({ tenantId: tenant.id, sessionId: s!.id, tokenHash: hash, createdAt: now, expiresAt });
  await db.update(users).set({ lastLoginAt: now }).where(and(eq(users.tenantId, tenant.id), eq(users.id, user.id)));
  await recordEvent(db, tenant.id, { type: 'login.success', userId: user.id, sessionId: s!.id, ip: ctx.ip, details: { amr } });
  const access = await signAccess(rt, user, tenant, s!.id, amr);
  return { tenantId: tenant.id, sessionId: s!.id, userId: user.id, ...access, refreshToken, refreshTokenExpiresAt: expiresAt };
}

function signAccess(rt: IdentityRuntime, user: UserRow, tenant: TenantRow, sessionId: string, amr: string[]) {
  const ttl = Math.min(MAX_ACCESS_TTL_SECONDS, authSettings(tenant.settings).idleTimeoutMinutes * 60);
  return rt.keys
    .sign({ iss: rt.issuer, aud: rt.audience, sub: user.id, tenant: tenant.id, roles: user.roles, sid: sessionId, amr }, ttl)
    .then(({ token, expiresAt }) => ({ accessToken: token, accessTokenExpiresAt: expiresAt }));
}

/** Revokes sessions (and their refresh tokens); returns the ids revoked. */
export async function revokeSessions(
  rt: IdentityRuntime,
  db: Db,
  tenantId: string,
  where: { userId?: string; sessionId?: string; exceptSessionId?: string },
  reason: string,
  meta: { actorId?: string | null; ip?: string | null } = {},
): Promise<string[]> {
  const now = rt.now();
  const conds = [eq(sessions.tenantId, tenantId), isNull(sessions.revokedAt)];
  if (where.userId) conds.push(eq(sessions.userId, where.userId));
  if (where.sessionId) conds.push(eq(sessions.id, where.sessionId));
  if (where.exceptSessionId) conds.push(sql`${sessions.id} <> ${where.exceptSessionId}`);
  const revoked = await db
    .update(sessions)
    .set({ revokedAt: now, revokedReason: reason })
    .where(and(...conds))
    .returning({ id: sessions.id, userId: sessions.userId });
  if (!revoked.length) return [];
  const ids = revoked.map((r) => r.id);
  await db
    .update(refreshTokens)
    .set({ usedAt: now })
    .where(and(eq(refreshTokens.tenantId, tenantId), inArray(refreshTokens.sessionId, ids), isNull(refreshTokens.usedAt)));
  for (const r of revoked) {
    rt.forgetSession(tenantId, r.id);
    await recordEvent(db, tenantId, { type: reason === 'logout' ? 'logout' : 'session.revoked', userId: r.userId, sessionId: r.id, actorId: meta.actorId ?? null, ip: meta.ip ?? null, details: { reason } });
  }
  return ids;
}

export type RefreshOutcome = { ok: true; session: IssuedSession } | { ok: false; reason: 'invalid' | 'reuse' | 'ended' };

/**
 * Rotates a refresh token (its own transaction: a detected reuse must stay
 * revoked although the request fails). RFC 9700: a token presented after it
 * was rotated revokes the whole family (the session).
 */
export async function refresh(rt: IdentityRuntime, token: string, meta: { ip: string; userAgent?: string }): Promise<RefreshOutcome> {
  const parsed = parseTenantToken('cbr', token);
  if (!parsed) return { ok: false, reason: 'invalid' };
  const { tenantId, hash } = parsed;
  return withTenant(rt.pool, tenantId, async (db): Promise<RefreshOutcome> => {
    const now = rt.now();
    const [tok] = await db
      .select()
      .from(refreshTokens)
      .where(and(eq(refreshTokens.tenantId, tenantId), eq(refreshTokens.tokenHash, hash)))
      .for('update');
    if (!tok) return { ok: false, reason: 'invalid' };
    const [session] = await db.select().from(sessions).where(and(eq(sessions.tenantId, tenantId), eq(sessions.id, tok.sessionId)));
    if (!session) return { ok: false, reason: 'invalid' };
    if (tok.usedAt) {
      const revoked = await revokeSessions(rt, db, tenantId, { sessionId: session.id }, 'refresh_reuse', { ip: meta.ip });
      await recordEvent(db, tenantId, {
        type: 'refresh.reuse_detected',
        userId: session.userId,
        sessionId: session.id,
        ip: meta.ip,
        details: { sessionRevoked: revoked.length > 0 },
      });
      return { ok: false, reason: 'reuse' };
    }
    if (session.revokedAt || ms(session.expiresAt) <= ms(now) || ms(tok.expiresAt) <= ms(now)) return { ok: false, reason: 'ended' };
    const [user] = await db.select().from(users).where(and(eq(users.tenantId, tenantId), eq(users.id, session.userId)));
    const tenant = await loadTenant(db, tenantId);
    if (!user || user.status !== 'active' || tenant.status !== 'active') return { ok: false, reason: 'ended' };
    const idleMs = authSettings(tenant.settings).idleTimeoutMinutes * 60_000;
    if (ms(now) - ms(session.lastSeenAt) > idleMs) {
      await db.update(sessions).set({ revokedAt: now, revokedReason: 'idle' }).where(and(eq(sessions.tenantId, tenantId), eq(sessions.id, session.id)));
      await db.update(refreshTokens).set({ usedAt: now }).where(and(eq(refreshTokens.tenantId, tenantId), eq(refreshTokens.sessionId, session.id), isNull(refreshTokens.usedAt)));
      await recordEvent(db, tenantId, { type: 'session.idle_timeout', userId: user.id, sessionId: session.id, ip: meta.ip });
      rt.forgetSession(tenantId, session.id);
      return { ok: false, reason: 'ended' };
    }
    await db.update(refreshTokens).set({ usedAt: now }).where(eq(refreshTokens.id, tok.id));
    const next = newTenantToken('cbr', tenantId);
    await db.insert(refreshTokens).values({ tenantId, sessionId: session.id, tokenHash: next.hash, createdAt: now, expiresAt: session.expiresAt });
    await db.update(sessions).set({ lastSeenAt: now }).where(and(eq(sessions.tenantId, tenantId), eq(sessions.id, session.id)));
    const access = await signAccess(rt, user, tenant, session.id, session.amr);
    return {
      ok: true,
      session: { tenantId, sessionId: session.id, userId: user.id, ...access, refreshToken: next.token, refreshTokenExpiresAt: session.expiresAt },
    };
  });
}

/** Ends the session a refresh token belongs to (logout through the cookie). */
export async function logoutWithRefreshToken(rt: IdentityRuntime, token: string, meta: { ip: string }): Promise<boolean> {
  const parsed = parseTenantToken('cbr', token);
  if (!parsed) return false;
  return withTenant(rt.pool, parsed.tenantId, async (db) => {
    const [tok] = await db
      .select({ sessionId: refreshTokens.sessionId })
      .from(refreshTokens)
      .where(and(eq(refreshTokens.tenantId, parsed.tenantId), eq(refreshTokens.tokenHash, parsed.hash)));
    if (!tok) return false;
    await revokeSessions(rt, db, parsed.tenantId, { sessionId: tok.sessionId }, 'logout', { ip: meta.ip });
    return true;
  });
}

// ---------------------------------------------------------------- TOTP

function totpFor(secretBase32: string, label: string) {
  return new TOTP({ issuer: 'Carebase', label, algorithm: 'SHA1', digits: TOTP_DIGITS, period: TOTP_PERIOD_SECONDS, secret: Secret.fromBase32(secretBase32) });
}

/** The 30 s step a code matches (within the window), or null. */
function matchingStep(secretBase32: string, code: string, nowMs: number): number | null {
  if (!/^\d{6}$/.test(code)) return null;
  const delta = TOTP.validate({
    token: code,
    secret: Secret.fromBase32(secretBase32),
    algorithm: 'SHA1',
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD_SECONDS,
    timestamp: nowMs,
    window: TOTP_WINDOW,
  });
  if (delta === null) return null;
  return TOTP.counter({ period: TOTP_PERIOD_SECONDS, timestamp: nowMs }) + delta;
}

/** Accepts a code of the user's confirmed (or, for enrolment, pending) factor once: its step must be newer than the last one used. */
export async function useTotpCode(rt: IdentityRuntime, db: Db, tenantId: string, userId: string, code: string, pending = false): Promise<boolean> {
  const [row] = await db.select().from(userTotp).where(and(eq(userTotp.tenantId, tenantId), eq(userTotp.userId, userId)));
  if (!row || (pending ? row.confirmedAt !== null : row.confirmedAt === null)) return false;
  const { secret } = await rt.crypto.decryptFields(userTotp, tenantId, { secret: row.secret });
  const step = matchingStep(secret, code, ms(rt.now()));
  if (step === null) return false;
  const used = await db
    .update(userTotp)
    .set({ lastUsedStep: step, updatedAt: rt.now(), ...(pending ? { confirmedAt: rt.now() } : {}) })
    .where(and(eq(userTotp.tenantId, tenantId), eq(userTotp.userId, userId), or(isNull(userTotp.lastUsedStep), lt(userTotp.lastUsedStep, step))))
    .returning({ userId: userTotp.userId });
  return used.length === 1;
}

async function useRecoveryCode(rt: IdentityRuntime, db: Db, tenantId: string, userId: string, code: string): Promise<boolean> {
  const normalised = normaliseRecoveryCode(code);
  if (!normalised) return false;
  const used = await db
    .update(recoveryCodes)
    .set({ usedAt: rt.now() })
    .where(
      and(
        eq(recoveryCodes.tenantId, tenantId),
        eq(recoveryCodes.userId, userId),
        eq(recoveryCodes.codeHash, recoveryCodeHash(userId, normalised)),
        isNull(recoveryCodes.usedAt),
      ),
    )
    .returning({ id: recoveryCodes.id });
  return used.length === 1;
}

async function replaceRecoveryCodes(rt: IdentityRuntime, db: Db, tenantId: string, userId: string): Promise<string[]> {
  await db.delete(recoveryCodes).where(and(eq(recoveryCodes.tenantId, tenantId), eq(recoveryCodes.userId, userId)));
  const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
  const now = rt.now();
  await db
    .insert(recoveryCodes)
    .values(codes.map((c) => ({ tenantId, userId, codeHash: recoveryCodeHash(userId, normaliseRecoveryCode(c)!), createdAt: now })));
  return codes;
}

interface Challenge {
  id: string;
  tenantId: string;
  user: UserRow;
  purpose: 'verify' | 'enrol';
}

/** A live MFA challenge from its token (sets the request's tenant), or UNAUTHENTICATED. */
async function openChallenge(rt: IdentityRuntime, ctx: RequestContext, mfaToken: string, purpose: 'verify' | 'enrol'): Promise<Challenge> {
  const parsed = parseTenantToken('cbm', mfaToken);
  if (!parsed) throw invalidMfa();
  useTenant(ctx, parsed.tenantId);
  const db = await ctx.db();
  const [ch] = await db
    .select()
    .from(mfaChallenges)
    .where(and(eq(mfaChallenges.tenantId, parsed.tenantId), eq(mfaChallenges.tokenHash, parsed.hash)));
  if (!ch || ch.purpose !== purpose || ch.consumedAt || ms(ch.expiresAt) <= ms(rt.now()) || ch.attempts >= MFA_CHALLENGE_MAX_ATTEMPTS) throw invalidMfa();
  const [user] = await db.select().from(users).where(and(eq(users.tenantId, parsed.tenantId), eq(users.id, ch.userId)));
  if (!user || user.status !== 'active') throw invalidMfa();
  return { id: ch.id, tenantId: parsed.tenantId, user, purpose };
}

/**
 * A wrong code: the request transaction is rolled back, then the attempt is
 * counted durably (challenge attempts, lockout per user and IP, event).
 */
async function mfaFailed(rt: IdentityRuntime, ctx: RequestContext, tenantId: string, userId: string, challengeId: string | null, stage: string): Promise<never> {
  await ctx.tx.rollback();
  if (challengeId) {
    await withTenant(rt.pool, tenantId, (db) =>
      db
        .update(mfaChallenges)
        .set({ attempts: sql`${mfaChallenges.attempts} + 1` })
        .where(and(eq(mfaChallenges.tenantId, tenantId), eq(mfaChallenges.id, challengeId))),
    );
  }
  const lockedFor = await rt.lockout.recordFailure([Lockout.userKey(tenantId, userId), Lockout.ipKey(ctx.ip)]);
  await recordEventNow(rt.pool, tenantId, { type: 'mfa.challenge_failed', userId, ip: ctx.ip, details: { stage } });
  if (lockedFor) await recordEventNow(rt.pool, tenantId, { type: 'login.locked', userId, ip: ctx.ip, details: { seconds: lockedFor } });
  throw invalidMfa();
}

async function consumeChallenge(rt: IdentityRuntime, db: Db, ch: Challenge): Promise<void> {
  const done = await db
    .update(mfaChallenges)
    .set({ consumedAt: rt.now() })
    .where(and(eq(mfaChallenges.tenantId, ch.tenantId), eq(mfaChallenges.id, ch.id), isNull(mfaChallenges.consumedAt)))
    .returning({ id: mfaChallenges.id });
  if (!done.length) throw invalidMfa();
}

/** Second login step: a TOTP code (amr pwd+otp+mfa) or a recovery code (amr pwd+mfa). */
export async function verifyMfa(rt: IdentityRuntime, ctx: RequestContext, input: { mfaToken: string; code?: string | null; recoveryCode?: string | null }): Promise<IssuedSession> {
  if (!input.code === !input.recoveryCode) throw badInput('Give either code or recoveryCode', input.code ? 'recoveryCode' : 'code');
  const ch = await openChallenge(rt, ctx, input.mfaToken, 'verify');
  const locked = await rt.lockout.lockedFor([Lockout.userKey(ch.tenantId, ch.user.id), Lockout.ipKey(ctx.ip)]);
  if (locked) throw rateLimited(ctx, locked);
  const db = await ctx.db();
  const ok = input.code
    ? await useTotpCode(rt, db, ch.tenantId, ch.user.id, input.code)
    : await useRecoveryCode(rt, db, ch.tenantId, ch.user.id, input.recoveryCode!);
  if (!ok) return mfaFailed(rt, ctx, ch.tenantId, ch.user.id, ch.id, input.code ? 'totp' : 'recovery_code');
  await consumeChallenge(rt, db, ch);
  await rt.lockout.clear([Lockout.userKey(ch.tenantId, ch.user.id)]);
  if (input.recoveryCode) await recordEvent(db, ch.tenantId, { type: 'mfa.recovery_code_used', userId: ch.user.id, ip: ctx.ip });
  const amr = input.code ? ['pwd', 'otp', 'mfa'] : ['pwd', 'mfa'];
  return issueSession(rt, ctx, db, ch.user, await loadTenant(db, ch.tenantId), amr);
}

/** Who is enrolling: the holder of an enrolment challenge (first login), or the signed-in user. */
async function enrolmentSubject(rt: IdentityRuntime, ctx: RequestContext, mfaToken?: string | null): Promise<{ tenantId: string; user: UserRow; challenge?: Challenge }> {
  if (mfaToken) {
    const challenge = await openChallenge(rt, ctx, mfaToken, 'enrol');
    return { tenantId: challenge.tenantId, user: challenge.user, challenge };
  }
  const p = ctx.principal;
  if (!p || p.kind !== 'user') throw unauthenticated();
  const db = await ctx.db();
  const [user] = await db.select().from(users).where(and(eq(users.tenantId, p.tenantId), eq(users.id, p.id)));
  if (!user) throw unauthenticated();
  return { tenantId: p.tenantId, user };
}

export async function startTotpEnrolment(rt: IdentityRuntime, ctx: RequestContext, input: { mfaToken?: string | null }) {
  const { tenantId, user } = await enrolmentSubject(rt, ctx, input.mfaToken);
  const db = await ctx.db();
  if (await confirmedTotp(db, tenantId, user.id)) throw conflict('An authenticator is already enrolled; reset it first');
  const [tenant] = await db.select({ slug: tenants.slug }).from(tenants).where(eq(tenants.id, tenantId));
  const secret = new Secret({ size: 20 }).base32;
  const sealed = await rt.crypto.encryptFields(userTotp, tenantId, { secret });
  const now = rt.now();
  await db
    .insert(userTotp)
    .values({ tenantId, userId: user.id, secret: sealed.secret, confirmedAt: null, lastUsedStep: null, createdAt: now, updatedAt: now })
    .onConflictDoUpdate({ target: userTotp.userId, set: { secret: sealed.secret, confirmedAt: null, lastUsedStep: null, updatedAt: now } });
  const uri = totpFor(secret, `${tenant?.slug ?? 'carebase'}:${user.email}`).toString();
  return { provisioningUri: uri, secret };
}

export async function confirmTotpEnrolment(
  rt: IdentityRuntime,
  ctx: RequestContext,
  input: { code: string; mfaToken?: string | null },
): Promise<{ recoveryCodes: string[]; session: IssuedSession | null }> {
  const { tenantId, user, challenge } = await enrolmentSubject(rt, ctx, input.mfaToken);
  const db = await ctx.db();
  const ok = await useTotpCode(rt, db, tenantId, user.id, input.code, true);
  if (!ok) return mfaFailed(rt, ctx, tenantId, user.id, challenge?.id ?? null, 'enrolment');
  const codes = await replaceRecoveryCodes(rt, db, tenantId, user.id);
  await recordEvent(db, tenantId, { type: 'mfa.enrolled', userId: user.id, ip: ctx.ip, details: { factor: 'totp' } });
  if (!challenge) return { recoveryCodes: codes, session: null };
  await consumeChallenge(rt, db, challenge);
  const session = await issueSession(rt, ctx, db, user, await loadTenant(db, tenantId), ['pwd', 'otp', 'mfa']);
  return { recoveryCodes: codes, session };
}

/** New recovery codes (the old ones stop working), confirmed with a current TOTP code. */
export async function regenerateRecoveryCodes(rt: IdentityRuntime, ctx: RequestContext, code: string): Promise<string[]> {
  const p = ctx.principal;
  if (!p || p.kind !== 'user') throw unauthenticated();
  const db = await ctx.db();
  if (!(await useTotpCode(rt, db, p.tenantId, p.id, code))) return mfaFailed(rt, ctx, p.tenantId, p.id, null, 'recovery_codes');
  const codes = await replaceRecoveryCodes(rt, db, p.tenantId, p.id);
  await recordEvent(db, p.tenantId, { type: 'mfa.recovery_codes_regenerated', userId: p.id, sessionId: p.sessionId ?? null, ip: ctx.ip });
  return codes;
}

/** Admin: removes a user's authenticator and recovery codes (lost device); the user enrols again at next login. */
export async function resetUserMfa(rt: IdentityRuntime, db: Db, tenantId: string, userId: string, actorId: string, ip: string): Promise<void> {
  await db.delete(userTotp).where(and(eq(userTotp.tenantId, tenantId), eq(userTotp.userId, userId)));
  await db.delete(recoveryCodes).where(and(eq(recoveryCodes.tenantId, tenantId), eq(recoveryCodes.userId, userId)));
  await revokeSessions(rt, db, tenantId, { userId }, 'mfa_reset', { actorId, ip });
  await recordEvent(db, tenantId, { type: 'mfa.reset', userId, actorId, ip });
}

/** Active sessions of a user (not revoked, not past their absolute lifetime). */
export function liveSessions(rt: IdentityRuntime, db: Db, tenantId: string, userId: string) {
  return db
    .select()
    .from(sessions)
    .where(and(eq(sessions.tenantId, tenantId), eq(sessions.userId, userId), isNull(sessions.revokedAt), gt(sessions.expiresAt, rt.now())))
    .orderBy(sql`${sessions.lastSeenAt} desc`);
}
