import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModuleManifest } from '../../src/schema/index.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Principals from a test header (the rate limiter only needs a principal kind and id). */
const principals: ModuleManifest = {
  name: 'test-principals',
  phase: 0,
  description: 'test',
  dependsOn: [],
  async authenticate(req) {
    const id = req.headers['x-test-user'];
    if (typeof id !== 'string') return undefined;
    return { kind: 'user', id, tenantId: '00000000-0000-4000-8000-000000000001', roles: ['NURSE'], permissions: new Set(['patient:read', 'patient:write', 'patient:clinical:read', 'patient:clinical:write', 'breakglass:invoke']) };
  },
};

const INFO = '{ serverInfo { version } }';

describe('rate limits over HTTP (Postgres store)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({
      modules: [principals],
      env: { RATE_LIMIT_ANON_IP_PER_MINUTE: '5', RATE_LIMIT_USER_PER_MINUTE: '3', RATE_LIMIT_AUTH_IP_PER_MINUTE: '2' },
    });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('uses the Postgres store when DATABASE_URL is set and Redis is not', async () => {
    await t.gql(INFO, {}, { 'x-test-user': 'store-probe' });
    const rows = await t.db.owner<{ n: number }[]>`select count(*)::int as n from rate_limits`;
    expect(rows[0]!.n).toBeGreaterThan(0);
  });

  it('anonymous requests: per IP, with RateLimit-* headers, then 429 RATE_LIMITED with Retry-After', async () => {
    for (let i = 0; i < 5; i++) {
      const res = await t.gql(INFO);
      expect(res.status).toBe(200);
      expect(res.headers.get('ratelimit-limit')).toBe('5');
      expect(res.headers.get('ratelimit-remaining')).toBe(String(4 - i));
      expect(Number(res.headers.get('ratelimit-reset'))).toBeLessThanOrEqual(60);
    }
    const res = await t.gql(INFO);
    expect(res.status).toBe(429);
    expect(res.body.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', policy: 'anon-ip' });
    const retryAfter = Number(res.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(res.body.errors?.[0]?.extensions?.retryAfter).toBe(retryAfter);
    expect(res.body.data ?? null).toBeNull();
    // a signed-in user from the same IP has a budget of their own
    expect((await t.gql(INFO, {}, { 'x-test-user': 'u-1' })).status).toBe(200);
    // operations endpoints are never limited
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
  });

  it('users: per user id', async () => {
    for (let i = 0; i < 3; i++) expect((await t.gql(INFO, {}, { 'x-test-user': 'u-2' })).status).toBe(200);
    const res = await t.gql(INFO, {}, { 'x-test-user': 'u-2' });
    expect(res.status).toBe(429);
    expect(res.body.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', policy: 'user' });
    expect(res.headers.get('retry-after')).toBeTruthy();
    expect((await t.gql(INFO, {}, { 'x-test-user': 'u-3' })).status).toBe(200);
  });

  it('REST auth routes: per IP, before the route runs', async () => {
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${t.url}/auth/probe`, { method: 'POST' });
      expect(res.status).not.toBe(429);
      expect(res.headers.get('ratelimit-limit')).toBe('2');
    }
    const res = await fetch(`${t.url}/auth/probe`, { method: 'POST' });
    expect(res.status).toBe(429);
    const body = (await res.json()) as { errors: { extensions: Record<string, unknown> }[] };
    expect(body.errors[0]!.extensions).toMatchObject({ code: 'RATE_LIMITED', policy: 'auth-ip' });
    expect(body.errors[0]!.extensions.requestId).toBeTruthy();
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });

  it('counts rejections in /metrics', async () => {
    const m = await (await fetch(`${t.url}/metrics`)).text();
    expect(m).toMatch(/carebase_ratelimit_decisions_total\{policy="anon-ip",outcome="limited"\} [1-9]/);
    expect(m).toContain('carebase_ratelimit_store_degraded{store="postgres"} 0');
  });
});

/** A TCP proxy in front of the real Redis that the test can cut. */
async function redisProxy(target: URL) {
  const sockets = new Set<net.Socket>();
  let up = true;
  const server = net.createServer((c) => {
    if (!up) return c.destroy();
    const u = net.connect(Number(target.port || 6379), target.hostname);
    sockets.add(c).add(u);
    c.pipe(u).pipe(c);
    const end = () => {
      c.destroy();
      u.destroy();
      sockets.delete(c);
      sockets.delete(u);
    };
    c.on('error', end).on('close', end);
    u.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `redis://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    setUp(v: boolean) {
      up = v;
      if (!v) for (const s of sockets) s.destroy();
    },
    close() {
      up = false;
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('rate limits over HTTP (Redis store)', () => {
  let db: TestDatabase;
  let a: TestApp;
  let b: TestApp;
  let proxy: Awaited<ReturnType<typeof redisProxy>>;
  beforeAll(async () => {
    db = await createTestDatabase();
    proxy = await redisProxy(new URL(REDIS_URL));
    const prefix = `test-${randomBytes(4).toString('hex')}`;
    const env = { REDIS_URL: proxy.url, RATE_LIMIT_KEY_PREFIX: prefix, JOBS_KEY_PREFIX: prefix, RATE_LIMIT_USER_PER_MINUTE: '4' };
    a = await startTestApp({ db, modules: [principals], env });
    b = await startTestApp({ db, modules: [principals], env });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await proxy?.close();
    await db?.drop();
  });

  it('two API processes share one budget through Redis', async () => {
    expect((await a.gql(INFO, {}, { 'x-test-user': 'shared' })).status).toBe(200);
    expect((await b.gql(INFO, {}, { 'x-test-user': 'shared' })).status).toBe(200);
    expect((await a.gql(INFO, {}, { 'x-test-user': 'shared' })).status).toBe(200);
    expect((await b.gql(INFO, {}, { 'x-test-user': 'shared' })).status).toBe(200);
    expect((await a.gql(INFO, {}, { 'x-test-user': 'shared' })).status).toBe(429);
    expect((await b.gql(INFO, {}, { 'x-test-user': 'shared' })).status).toBe(429);
    const rows = await db.owner<{ n: number }[]>`select count(*)::int as n from rate_limits`;
    expect(rows[0]!.n).toBe(0); // nothing went to the Postgres store
  });

  it('Redis down: every process keeps serving and limiting on its own, says so in logs and metrics, and recovers', async () => {
    proxy.setUp(false);
    // limits still apply, per process (each app has its own memory budget of 4 now)
    for (let i = 0; i < 4; i++) expect((await a.gql(INFO, {}, { 'x-test-user': 'outage' })).status).toBe(200);
    expect((await a.gql(INFO, {}, { 'x-test-user': 'outage' })).status).toBe(429);
    expect((await b.gql(INFO, {}, { 'x-test-user': 'outage' })).status).toBe(200);
    const m = await (await fetch(`${a.url}/metrics`)).text();
    expect(m).toContain('carebase_ratelimit_store_degraded{store="redis"} 1');
    expect(m).toMatch(/carebase_ratelimit_fallback_total\{store="redis"\} [1-9]/);
    expect(a.logs.filter((l) => String(l.msg).startsWith('rate-limit store unavailable'))).toHaveLength(1);

    proxy.setUp(true);
    const deadline = Date.now() + 15_000;
    let recovered = false;
    while (!recovered && Date.now() < deadline) {
      await a.gql(INFO, {}, { 'x-test-user': `recovery-${Date.now()}` });
      recovered = (await (await fetch(`${a.url}/metrics`)).text()).includes('carebase_ratelimit_store_degraded{store="redis"} 0');
      if (!recovered) await new Promise((r) => setTimeout(r, 200));
    }
    expect(recovered).toBe(true);
    expect(a.logs.some((l) => l.msg === 'rate-limit store recovered: shared limits enforced again')).toBe(true);
  });
});
