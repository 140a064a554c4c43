import { and, eq } from 'drizzle-orm';
import type { RequestScope } from '../../platform/scope/index.js';
import { useTotpCode } from './auth.js';
import { recordEvent, recordEventNow } from './events.js';
import { Lockout } from './lockout.js';
import { dummyHash, verifyPassword } from './passwords.js';
import type { IdentityRuntime } from './runtime.js';
import { users } from './tables.js';

/**
 * Two-factor re-authentication of the signed-in user at the moment of a
 * sensitive act (signing a controlled-substance prescription, 21 CFR
 * 1311.140(a)(4)): the account password and a TOTP code of the user's
 * confirmed factor that was never used before (the same replay protection
 * as sign-in). A failure counts toward the user's lockout and is a security
 * event written in a transaction of its own (the caller's rolls back); while
 * the user is locked out nothing is checked.
 */
export type ReauthResult = { ok: true } | { ok: false; reason: 'invalid' | 'locked'; retryAfterSeconds?: number };

export async function reauthenticate(scope: RequestScope, input: { password: string; code: string; purpose: string }): Promise<ReauthResult> {
  const rt = scope.module<IdentityRuntime>('identity');
  const p = scope.principal;
  if (!p || p.kind !== 'user') return { ok: false, reason: 'invalid' };
  const key = Lockout.userKey(p.tenantId, p.id);
  const locked = await rt.lockout.lockedFor([key]);
  if (locked) return { ok: false, reason: 'locked', retryAfterSeconds: locked };
  const db = await scope.db();
  const [user] = await db.select().from(users).where(and(eq(users.tenantId, p.tenantId), eq(users.id, p.id)));
  let passwordOk = false;
  if (user && user.status === 'active' && user.passwordHash) passwordOk = await verifyPassword(user.passwordHash, input.password);
  else await dummyHash();
  const codeOk = passwordOk && /^\d{6}$/.test(input.code) ? await useTotpCode(rt, db, p.tenantId, p.id, input.code) : false;
  if (!passwordOk || !codeOk) {
    const lockedFor = await rt.lockout.recordFailure([key]);
    await recordEventNow(rt.pool, p.tenantId, { type: 'reauth.failed', userId: p.id, ip: scope.ip ?? null, details: { purpose: input.purpose, stage: passwordOk ? 'totp' : 'password' } });
    if (lockedFor) await recordEventNow(rt.pool, p.tenantId, { type: 'login.locked', userId: p.id, ip: scope.ip ?? null, details: { seconds: lockedFor } });
    return lockedFor ? { ok: false, reason: 'locked', retryAfterSeconds: lockedFor } : { ok: false, reason: 'invalid' };
  }
  await rt.lockout.clear([key]);
  await recordEvent(db, p.tenantId, { type: 'reauth.succeeded', userId: p.id, ip: scope.ip ?? null, details: { purpose: input.purpose } });
  return { ok: true };
}
