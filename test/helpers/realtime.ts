/**
 * Test-only credentials for realtime and jobs tests: a manifest whose
 * authenticateToken / authenticate hooks verify HS256 JWTs signed with a test
 * secret (the identity module's real tokens replace this once
 * test/helpers/auth.ts exists). Also: tenants, socket.io clients.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { SignJWT, decodeJwt, jwtVerify } from 'jose';
import { io as ioClient, type Socket } from 'socket.io-client';
import type postgres from 'postgres';
import { tenants } from '../../src/db/schema.js';
import { withTenant } from '../../src/platform/db/index.js';
import { AppError, ErrorCode } from '../../src/platform/errors.js';
import type { ModuleManifest, Principal } from '../../src/schema/index.js';

const SECRET = new TextEncoder().encode('carebase-realtime-test-secret-not-for-production');

export interface TestIdentity {
  userId: string;
  tenantId: string;
  permissions?: string[];
  kind?: 'user' | 'apiKey';
}

/** Sessions revoked by tests (the hook refuses their tokens from then on). */
export const revokedSessions = new Set<string>();

export async function signTestToken(who: TestIdentity, opts: { expiresInSec?: number; sessionId?: string } = {}): Promise<string> {
  return new SignJWT({ tid: who.tenantId, perms: who.permissions ?? [], kind: who.kind ?? 'user', sid: opts.sessionId ?? randomUUID() })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(who.userId)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (opts.expiresInSec ?? 3600))
    .sign(SECRET);
}

/**
 * Sessions whose next verification holds the event loop this many ms (a loaded machine), then checks the expiry at
 * once: the rejection reaches the caller before any timer can run (tests of a token expiring mid-verification).
 */
export const stallingSessions = new Map<string, number>();

async function verify(token: string): Promise<Principal | undefined> {
  if (token.split('.').length !== 3) return undefined;
  const claims = (() => {
    try {
      return decodeJwt(token);
    } catch {
      return undefined;
    }
  })();
  const stall = claims ? stallingSessions.get(String(claims.sid)) : undefined;
  if (stall) {
    stallingSessions.delete(String(claims!.sid));
    const until = Date.now() + stall;
    while (Date.now() < until) {
      // busy: no timer of this process runs meanwhile
    }
    if (typeof claims!.exp === 'number' && claims!.exp * 1000 <= Date.now()) throw new AppError(ErrorCode.UNAUTHENTICATED, 'Invalid or expired token');
  }
  try {
    const { payload } = await jwtVerify(token, SECRET, { algorithms: ['HS256'] });
    if (revokedSessions.has(String(payload.sid))) throw new AppError(ErrorCode.UNAUTHENTICATED, 'Session revoked');
    return {
      kind: payload.kind === 'apiKey' ? 'apiKey' : 'user',
      id: String(payload.sub),
      tenantId: String(payload.tid),
      roles: [],
      permissions: new Set((payload.perms as string[]) ?? []),
      sessionId: String(payload.sid),
    };
  } catch (e) {
    if (e instanceof AppError) throw e;
    throw new AppError(ErrorCode.UNAUTHENTICATED, 'Invalid or expired token');
  }
}

/** A manifest that authenticates test JWTs on HTTP (Bearer) and on sockets. */
/**
 * A module contributing the `patient` room type as the patients module does (patient:read, then an access check),
 * over a test_patients table the test creates: a patient it can see (RLS scopes it to the caller's tenant) may be joined.
 */
export const testPatientRoomsModule: ModuleManifest = {
  name: 'test-patient-rooms',
  phase: 0,
  description: 'test patient rooms',
  dependsOn: [],
  roomAccess: {
    patient: { permission: 'patient:read', check: async (_p, id, db) => (await db.execute(sql`select 1 from test_patients where id::text = ${id}`)).length > 0 },
  },
};

export const testAuthModule: ModuleManifest = {
  name: 'test-auth',
  phase: 0,
  description: 'test-only JWT authentication',
  dependsOn: [],
  authenticateToken: (token) => verify(token),
  authenticate: async (req) => {
    const h = req.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer\s+(\S+)$/i.exec(h) : null;
    return m ? verify(m[1]!) : undefined;
  },
};

/** Creates a tenant row through the app role (RLS: a tenant may create only itself) and returns its id. */
export async function createTenant(sql: postgres.Sql, id: string = randomUUID()): Promise<string> {
  await withTenant(sql, id, (db) => db.insert(tenants).values({ id, slug: `t-${id.slice(0, 8)}`, name: 'Test clinic' }));
  return id;
}

/** Connects a socket.io client; resolves once connected, rejects with the connect_error. */
export function connect(url: string, token: string | undefined, opts: { headers?: Record<string, string>; reconnection?: boolean } = {}): Promise<Socket> {
  const socket = ioClient(url, {
    transports: ['websocket'],
    auth: token ? { token } : {},
    extraHeaders: opts.headers,
    reconnection: opts.reconnection ?? false,
    forceNew: true,
  });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err) => {
      socket.close();
      reject(err);
    });
  });
}

/** Emits with an ack and resolves with the ack value. */
export function request<T = { ok: boolean; error?: { code: string }; [k: string]: unknown }>(socket: Socket, event: string, payload: unknown, timeoutMs = 5000): Promise<T> {
  return socket.timeout(timeoutMs).emitWithAck(event, payload) as Promise<T>;
}

/** Resolves with the next `event` the socket receives (rejects after timeoutMs). */
export function next<T = unknown>(socket: Socket, event: string, timeoutMs = 5000, filter: (v: T) => boolean = () => true): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      socket.off(event, on);
      reject(new Error(`no ${event} within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (v: T) => {
      if (!filter(v)) return;
      clearTimeout(t);
      socket.off(event, on);
      resolve(v);
    };
    socket.on(event, on);
  });
}

/** Polls until fn returns a truthy value (no timing assertions: just a bounded wait). */
export async function until<T>(fn: () => Promise<T> | T, timeoutMs = 15_000, everyMs = 50): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Deletes every Redis key under a test file's prefix (queues, socket.io stream and sessions). */
export async function dropRedisPrefix(url: string, prefix: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const r = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}
