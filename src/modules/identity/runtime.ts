import { sql } from 'drizzle-orm';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose';
import type { FieldCrypto } from '../../platform/crypto/index.js';
import { withTenant } from '../../platform/db/index.js';
import { AppError, ErrorCode } from '../../platform/errors.js';
import type { ModuleDeps, Principal } from '../../schema/index.js';
import {
  AUTH_SETTING_DEFAULTS,
  CLOCK_TOLERANCE_SECONDS,
  DEFAULT_AUDIENCE,
  DEFAULT_ISSUER,
  JWT_ALG,
  JWT_TYP,
  MAX_ACCESS_TTL_SECONDS,
  PLATFORM_ADMIN,
  PLATFORM_TENANT_ID,
} from './constants.js';
import { recordEvent } from './events.js';
import { SigningKeys } from './keys.js';
import { DEFAULT_LOCKOUT, Lockout, type LockoutPolicy } from './lockout.js';
import { dummyHash } from './passwords.js';

export interface IdentityOptions {
  /** the clock every identity decision uses (tests inject one to pass idle timeouts without sleeping) */
  now?: () => Date;
  /**
   * How long a session's validity is cached in process after a database
   * check (default 5 s). A session revoked on another instance is refused
   * here after at most this long; revocations on this instance apply at once.
   */
  sessionCacheMs?: number;
  /** JWT signing-key rotation period (default 30 days) */
  keyRotationMs?: number;
  lockout?: Partial<LockoutPolicy>;
  issuer?: string;
  audience?: string;
  /** a field-encryption instance to use (otherwise the process's, deps.crypto) */
  crypto?: FieldCrypto;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** last_seen_at is written at most once per this interval per session */
const TOUCH_INTERVAL_MS = 60_000;
const TOKEN_CACHE_MAX = 20_000;
const SESSION_CACHE_MAX = 50_000;
const JWT_SHAPE = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export interface AccessClaims {
  sub: string;
  tenant: string;
  sid: string;
  roles: string[];
  amr: string[];
  exp: number;
}

interface SessionState {
  userId: string;
  active: boolean;
  revoked: boolean;
  lastSeenMs: number;
  expiresMs: number;
  idleMs: number;
  fetchedMs: number;
}

export const looksLikeJwt = (token: string) => token.length < 4096 && JWT_SHAPE.test(token);

const invalidToken = () => new AppError(ErrorCode.UNAUTHENTICATED, 'Invalid access token', { reason: 'invalid_token' });
const expiredToken = () => new AppError(ErrorCode.UNAUTHENTICATED, 'Access token expired', { reason: 'token_expired' });
const sessionEnded = () => new AppError(ErrorCode.UNAUTHENTICATED, 'Session ended; sign in again', { reason: 'session_ended' });

/**
 * The identity module's instance (one per app, returned by init): options, clock, field crypto, signing
 * keys, lockout counters, and the caches that keep token verification off
 * the database (verified tokens by string; session validity by id).
 */
export class IdentityRuntime {
  readonly issuer: string;
  readonly audience: string;
  readonly sessionCacheMs: number;
  private _deps?: ModuleDeps;
  private _crypto?: FieldCrypto;
  private _keys?: SigningKeys;
  private _lockout?: Lockout;
  private timer?: NodeJS.Timeout;
  private tokenCache = new Map<string, AccessClaims>();
  private sessionCache = new Map<string, SessionState>();
  /** session-state fetches in flight, by tenant:session */
  private sessionFetches = new Map<string, Promise<SessionState | null>>();
  /** sessions revoked by this process: refused without asking the database */
  private revokedHere = new Map<string, number>();
  private permissionCache = new Map<string, ReadonlySet<string>>();

  constructor(readonly options: IdentityOptions = {}) {
    this.issuer = options.issuer ?? DEFAULT_ISSUER;
    this.audience = options.audience ?? DEFAULT_AUDIENCE;
    this.sessionCacheMs = options.sessionCacheMs ?? 5_000;
  }

  now(): Date {
    return this.options.now ? this.options.now() : new Date();
  }

  get deps(): ModuleDeps {
    if (!this._deps) throw new Error('identity module used before init');
    return this._deps;
  }
  get pool() {
    return this.deps.database.sql;
  }
  get crypto(): FieldCrypto {
    if (!this._crypto) throw new Error('identity module used before init');
    return this._crypto;
  }
  get keys(): SigningKeys {
    if (!this._keys) throw new Error('identity module used before init');
    return this._keys;
  }
  get lockout(): Lockout {
    if (!this._lockout) throw new Error('identity module used before init');
    return this._lockout;
  }

  async init(deps: ModuleDeps): Promise<void> {
    this._deps = deps;
    // the process's shared field encryption (src/boot.ts builds it for the API, the worker and the CLIs)
    this._crypto = this.options.crypto ?? deps.crypto;
    // the side pool: login clears/reads lockouts while its request transaction holds a connection of the app pool,
    // and a full app pool of such logins would otherwise wait on each other forever
    this._lockout = new Lockout(deps.database.sideSql, { ...DEFAULT_LOCKOUT, ...this.options.lockout }, () => this.now());
    this._keys = new SigningKeys({
      pool: deps.database.sql,
      crypto: this._crypto,
      log: deps.log.child({ component: 'identity' }),
      now: () => this.now(),
      rotationMs: this.options.keyRotationMs ?? 30 * 24 * 3600 * 1000,
    });
    this._keys.onRevoked = () => this.tokenCache.clear();
    await this._keys.init();
    await dummyHash();
    // pick-up of keys rotated by other instances, and the rotation check. A per-process timer on purpose, not a job
    // schedule: reload() refreshes this process's in-memory key cache (every process needs its own), and
    // ensureCurrent() only rotates when the cached current key has retired; the rotation itself is serialised by an
    // advisory lock and does nothing when another instance rotated first (signing checks it too), so N processes
    // cause at most one rotation.
    this.timer = setInterval(() => {
      this.keys
        .reload()
        .then(() => this.keys.ensureCurrent())
        .catch((e: Error) => deps.log.error({ component: 'identity', errorName: e.name }, 'signing key refresh failed'));
    }, 60_000);
    this.timer.unref();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.tokenCache.clear();
    this.sessionCache.clear();
  }

  /** Verifies an access token's signature and claims (cached by token string until it expires). */
  async verifyAccessToken(token: string): Promise<AccessClaims> {
    const nowMs = this.now().getTime();
    const cached = this.tokenCache.get(token);
    if (cached) {
      if (cached.exp * 1000 + CLOCK_TOLERANCE_SECONDS * 1000 <= nowMs) {
        this.tokenCache.delete(token);
        throw expiredToken();
      }
      return cached;
    }
    let header;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw invalidToken();
    }
    if (header.alg !== JWT_ALG || header.typ !== JWT_TYP || typeof header.kid !== 'string' || header.kid.length > 100) throw invalidToken();
    const key = await this.keys.publicKey(header.kid);
    if (!key) throw invalidToken();
    let payload;
    try {
      ({ payload } = await jwtVerify(token, key, {
        algorithms: [JWT_ALG],
        typ: JWT_TYP,
        issuer: this.issuer,
        audience: this.audience,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        maxTokenAge: MAX_ACCESS_TTL_SECONDS,
        currentDate: new Date(nowMs),
        requiredClaims: ['sub', 'exp', 'iat', 'nbf', 'jti', 'tenant', 'sid'],
      }));
    } catch (e) {
      if (e instanceof joseErrors.JWTExpired) throw expiredToken();
      throw invalidToken();
    }
    const { sub, tenant, sid, roles, amr, exp } = payload as Record<string, unknown>;
    const strings = (v: unknown) => Array.isArray(v) && v.length <= 20 && v.every((x) => typeof x === 'string');
    if (typeof sub !== 'string' || !UUID.test(sub) || typeof tenant !== 'string' || !UUID.test(tenant) || typeof sid !== 'string' || !UUID.test(sid)) {
      throw invalidToken();
    }
    if (!strings(roles) || !strings(amr) || typeof exp !== 'number') throw invalidToken();
    const claims: AccessClaims = { sub, tenant, sid, roles: roles as string[], amr: amr as string[], exp };
    if (this.tokenCache.size >= TOKEN_CACHE_MAX) this.tokenCache.delete(this.tokenCache.keys().next().value!);
    this.tokenCache.set(token, claims);
    return claims;
  }

  /** Token -> Principal: signature and claims, then the session (revoked, idle, expired, user deactivated). */
  async authenticateAccessToken(token: string): Promise<Principal> {
    const claims = await this.verifyAccessToken(token);
    await this.assertSessionLive(claims.tenant, claims.sid, claims.sub);
    return this.principal(claims);
  }

  principal(claims: Pick<AccessClaims, 'sub' | 'tenant' | 'sid' | 'roles' | 'amr'>): Principal {
    const roles = claims.tenant === PLATFORM_TENANT_ID ? claims.roles : claims.roles.filter((r) => r !== PLATFORM_ADMIN);
    const key = roles.join(',');
    let permissions = this.permissionCache.get(key);
    if (!permissions) {
      permissions = this.deps.permissions.forRoles(roles);
      if (this.permissionCache.size < 1000) this.permissionCache.set(key, permissions);
    }
    return { kind: 'user', id: claims.sub, tenantId: claims.tenant, roles, permissions, sessionId: claims.sid, amr: claims.amr };
  }

  private async assertSessionLive(tenantId: string, sessionId: string, userId: string): Promise<void> {
    const nowMs = this.now().getTime();
    const cacheKey = `${tenantId}:${sessionId}`;
    const revokedUntil = this.revokedHere.get(cacheKey);
    if (revokedUntil !== undefined) {
      if (revokedUntil > nowMs) throw sessionEnded();
      this.revokedHere.delete(cacheKey);
    }
    let state = this.sessionCache.get(cacheKey);
    if (!state || nowMs - state.fetchedMs >= this.sessionCacheMs || nowMs < state.fetchedMs) {
      // one fetch per session at a time: the requests that find the entry stale together share it
      // (otherwise each runs carebase_session_state, and they queue on the session row's activity update)
      let fetching = this.sessionFetches.get(cacheKey);
      if (!fetching) {
        fetching = this.fetchSessionState(tenantId, sessionId, nowMs).finally(() => this.sessionFetches.delete(cacheKey));
        this.sessionFetches.set(cacheKey, fetching);
      }
      const fetched = await fetching;
      if (!fetched) throw sessionEnded();
      state = fetched;
    }
    if (state.userId !== userId || state.revoked || !state.active || state.expiresMs <= nowMs) throw sessionEnded();
    if (nowMs - state.lastSeenMs > state.idleMs) {
      await this.endIdleSession(tenantId, sessionId, userId);
      throw sessionEnded();
    }
  }

  private async fetchSessionState(tenantId: string, sessionId: string, nowMs: number): Promise<SessionState | null> {
    const rows = await this.pool<
      { user_id: string; user_status: string; revoked: boolean; last_seen_at: Date | string; expires_at: Date | string; idle_seconds: number; tenant_status: string }[]
    >`select * from carebase_session_state(${tenantId}, ${sessionId}, ${new Date(nowMs)}, ${new Date(nowMs - TOUCH_INTERVAL_MS)}, ${AUTH_SETTING_DEFAULTS.idleTimeoutMinutes})`;
    const row = rows[0];
    if (!row) return null;
    const state: SessionState = {
      userId: row.user_id,
      active: row.user_status === 'active' && row.tenant_status === 'active',
      revoked: row.revoked,
      lastSeenMs: new Date(row.last_seen_at).getTime(),
      expiresMs: new Date(row.expires_at).getTime(),
      idleMs: row.idle_seconds * 1000,
      fetchedMs: nowMs,
    };
    const key = `${tenantId}:${sessionId}`;
    // a revocation here while the fetch ran wins (forgetSession): do not cache what it read before
    if (!this.revokedHere.has(key)) {
      if (this.sessionCache.size >= SESSION_CACHE_MAX) this.sessionCache.delete(this.sessionCache.keys().next().value!);
      this.sessionCache.set(key, state);
    }
    return state;
  }

  /** Revokes a session that has been idle too long (recorded once). */
  async endIdleSession(tenantId: string, sessionId: string, userId: string): Promise<void> {
    this.forgetSession(tenantId, sessionId);
    await withTenant(this.pool, tenantId, async (db) => {
      const ended = await db.execute<{ id: string }>(sql`update sessions set revoked_at = ${this.now()}, revoked_reason = 'idle'
        where tenant_id = ${tenantId} and id = ${sessionId} and revoked_at is null returning id`);
      if (ended.length) await recordEvent(db, tenantId, { type: 'session.idle_timeout', userId, sessionId });
    });
  }

  /** Call when this process revokes sessions: they are refused here at once (other instances: within sessionCacheMs). */
  forgetSession(tenantId: string, sessionId: string): void {
    const key = `${tenantId}:${sessionId}`;
    this.sessionCache.delete(key);
    this.sessionFetches.delete(key); // a fetch in flight read the session before the revocation: no one joins it now
    this.revokedHere.set(key, this.now().getTime() + Math.max(this.sessionCacheMs, 1000));
    if (this.revokedHere.size > SESSION_CACHE_MAX) this.revokedHere.delete(this.revokedHere.keys().next().value!);
  }
}
