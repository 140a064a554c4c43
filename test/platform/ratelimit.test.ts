import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Writable } from 'node:stream';
import client from 'prom-client';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/platform/logger.js';
import {
  createRateLimiter,
  monthWindow,
  rateLimitHeaders,
  RateLimitedError,
  type RateLimiter,
  type RateLimitPolicy,
  type RateLimitStoreKind,
} from '../../src/platform/ratelimit/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { holdInTransaction } from '../helpers/locks.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `test:rl:${randomBytes(4).toString('hex')}`;

function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger(
    'info',
    new Writable({
      write(chunk, _e, cb) {
        for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
        cb();
      },
    }),
  );
  return { log, lines };
}

const policy = (name: string, points: number, extra: Partial<RateLimitPolicy> = {}): RateLimitPolicy => ({ name, points, durationSec: 60, ...extra });

async function spend(l: RateLimiter, p: RateLimitPolicy, key: string, n: number) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await l.consume(p, key));
  return out;
}

let db: TestDatabase;
const opened: RateLimiter[] = [];
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  for (const l of opened) await l.close();
  await db?.drop();
});

function limiter(store: RateLimitStoreKind, extra: Partial<Parameters<typeof createRateLimiter>[0]> = {}) {
  const { log, lines } = capture();
  const registry = new client.Registry();
  const l = createRateLimiter({ store, log, registry, redisUrl: REDIS_URL, sql: db.sql, keyPrefix: `${PREFIX}:${randomBytes(3).toString('hex')}`, ...extra });
  opened.push(l);
  return { l, lines, registry };
}

/** A limiter on a store that is up, so the store (not the fallback) answers. */
async function liveLimiter(store: RateLimitStoreKind, extra: Partial<Parameters<typeof createRateLimiter>[0]> = {}) {
  const r = limiter(store, extra);
  expect(await r.l.ready()).toBe(true);
  return r;
}

describe.each(['memory', 'postgres', 'redis'] as const)('%s store', (store) => {
  it('allows the budget, then refuses with RATE_LIMITED and a retry-after', async () => {
    const { l } = await liveLimiter(store);
    const p = policy('t-budget', 3);
    const states = await spend(l, p, '10.0.0.1', 3);
    expect(states.map((s) => s.remaining)).toEqual([2, 1, 0]);
    expect(states[0]).toMatchObject({ policy: 't-budget', limit: 3, windowSec: 60 });
    const err = await l.consume(p, '10.0.0.1').catch((e) => e);
    expect(err).toBeInstanceOf(RateLimitedError);
    expect(err.extensions).toMatchObject({ code: 'RATE_LIMITED', policy: 't-budget' });
    expect(err.extensions.retryAfter).toBeGreaterThanOrEqual(1);
    expect(err.extensions.retryAfter).toBeLessThanOrEqual(60);
    // other keys are unaffected
    await expect(l.consume(p, '10.0.0.2')).resolves.toMatchObject({ remaining: 2 });
    expect(l.degraded).toBe(false);
  });

  it('reset forgets a key; reward gives points back', async () => {
    const { l } = await liveLimiter(store);
    const p = policy('t-reset', 2);
    await spend(l, p, 'user-1', 2);
    await expect(l.consume(p, 'user-1')).rejects.toBeInstanceOf(RateLimitedError);
    await l.reset(p, 'user-1');
    await expect(l.consume(p, 'user-1')).resolves.toMatchObject({ remaining: 1 });
    await l.reward(p, 'user-1', 1);
    expect((await l.get(p, 'user-1'))?.remaining).toBe(2);
  });

  it('a block duration keeps an overspending key out for longer than the window', async () => {
    const { l } = await liveLimiter(store);
    const p = policy('t-block', 1, { durationSec: 10, blockDurationSec: 900 });
    await l.consume(p, 'acct');
    const err = (await l.consume(p, 'acct').catch((e) => e)) as RateLimitedError;
    expect(err.retryAfter).toBeGreaterThan(10);
    expect(err.retryAfter).toBeLessThanOrEqual(900);
  });
});

describe.each(['postgres', 'redis'] as const)('%s store is shared between processes', (store) => {
  it('two limiters (two API processes) draw from one budget', async () => {
    const keyPrefix = `${PREFIX}:shared-${store}`;
    const a = (await liveLimiter(store, { keyPrefix })).l;
    const b = (await liveLimiter(store, { keyPrefix })).l;
    const p = policy('t-shared', 4);
    await spend(a, p, '192.0.2.7', 2);
    await spend(b, p, '192.0.2.7', 2);
    await expect(a.consume(p, '192.0.2.7')).rejects.toBeInstanceOf(RateLimitedError);
    await expect(b.consume(p, '192.0.2.7')).rejects.toBeInstanceOf(RateLimitedError);
    // answered by the shared store, not by the per-process fallback
    expect(a.degraded || b.degraded).toBe(false);
  });
});

describe('keys are hashed before they are stored', () => {
  it('no IP or email appears in the postgres table or in redis', async () => {
    const pgL = (await liveLimiter('postgres')).l;
    const keyPrefix = `${PREFIX}:hash`;
    const redisL = (await liveLimiter('redis', { keyPrefix })).l;
    const p = policy('t-hash', 5);
    await pgL.consume(p, 'jane.doe@example.com');
    await redisL.consume(p, 'jane.doe@example.com');
    const rows = await db.owner<{ key: string }[]>`select key from rate_limits`;
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.some((r) => r.key.includes('jane') || r.key.includes('10.0.0.1'))).toBe(false);
    const r = new Redis(REDIS_URL);
    try {
      const keys = await r.keys(`${keyPrefix}:*`);
      expect(keys).toHaveLength(1);
      expect(keys[0]).not.toContain('jane');
    } finally {
      r.disconnect();
    }
  });
});

describe('postgres store', () => {
  it('counts in an unlogged table (no WAL flush per counted request; a crash only resets the windows)', async () => {
    const [t] = await db.owner<{ persistence: string }[]>`select relpersistence as persistence from pg_class where relname = 'rate_limits'`;
    expect(t!.persistence).toBe('u');
    const pgL = (await liveLimiter('postgres')).l;
    const p = policy('t-unlogged', 2);
    await pgL.consume(p, 'caller');
    await pgL.consume(p, 'caller');
    await expect(pgL.consume(p, 'caller')).rejects.toMatchObject({ code: 'RATE_LIMITED' });
  });
});

describe('request quotas on the postgres store (batched policies)', () => {
  const rowPoints = async (l: { store: string }, keyPrefix: string, name: string) => {
    const rows = await db.owner<{ points: number }[]>`select points from rate_limits where key like ${`${keyPrefix}:${name}:%`}`;
    return rows.reduce((n, r) => n + r.points, 0);
  };

  it('counts in memory between flushes: one upsert for many requests, the budget exact within a process', async () => {
    const keyPrefix = `${PREFIX}:batched-${randomBytes(3).toString('hex')}`;
    const { l } = await liveLimiter('postgres', { keyPrefix, pgFlushMs: 60_000 });
    const p = policy('t-batched', 5, { batched: true });
    // the first request of a window asks the store; the next ones are decided here and sent later
    const states = await spend(l, p, 'user-1', 5);
    expect(states.map((s) => s.remaining)).toEqual([4, 3, 2, 1, 0]);
    expect(await rowPoints(l, keyPrefix, 't-batched')).toBe(1);
    const err = await l.consume(p, 'user-1').catch((e) => e);
    expect(err).toBeInstanceOf(RateLimitedError);
    expect(err.extensions).toMatchObject({ code: 'RATE_LIMITED', policy: 't-batched' });
    // get() sends what was counted: the row holds all five
    expect((await l.get(p, 'user-1'))?.remaining).toBe(0);
    expect(await rowPoints(l, keyPrefix, 't-batched')).toBe(5);
    expect(l.degraded).toBe(false);
  });

  it('two processes share the budget once each has flushed (overspend bounded by one flush interval)', async () => {
    const keyPrefix = `${PREFIX}:batched-shared-${randomBytes(3).toString('hex')}`;
    const a = (await liveLimiter('postgres', { keyPrefix, pgFlushMs: 20 })).l;
    const b = (await liveLimiter('postgres', { keyPrefix, pgFlushMs: 20 })).l;
    const p = policy('t-batched-shared', 4, { batched: true });
    await spend(a, p, '192.0.2.9', 2);
    await spend(b, p, '192.0.2.9', 2);
    await a.get(p, '192.0.2.9'); // flushed
    await b.get(p, '192.0.2.9');
    expect(await rowPoints(a, keyPrefix, 't-batched-shared')).toBe(4);
    // a knows the shared total after its next flush: both refuse
    await new Promise((r) => setTimeout(r, 60));
    await a.consume(p, '192.0.2.9').catch(() => undefined);
    await b.consume(p, '192.0.2.9').catch(() => undefined);
    await new Promise((r) => setTimeout(r, 60));
    await expect(a.consume(p, '192.0.2.9')).rejects.toBeInstanceOf(RateLimitedError);
    await expect(b.consume(p, '192.0.2.9')).rejects.toBeInstanceOf(RateLimitedError);
  });
});

describe.each([false, true])('postgres store that does not answer (batched: %s)', (batched) => {
  it('a rate_limits table held by a lock (or a query lost on a dying connection) times out into the fallback instead of stalling requests, and recovers', async () => {
    const { l } = await liveLimiter('postgres', { pgStoreTimeoutMs: 200 });
    const p = policy(`t-pg-hang-${batched}`, 1, { batched });
    const release = await holdInTransaction(db.owner, (sql) => sql`lock table rate_limits in access exclusive mode`);
    try {
      // the store cannot answer while the lock is held: the limit is decided per process, and the limiter says so
      await l.consume(p, 'stalled');
      await expect(l.consume(p, 'stalled')).rejects.toBeInstanceOf(RateLimitedError);
      expect(l.degraded).toBe(true);
    } finally {
      await release();
    }
    // the store answers again
    await expect(l.consume(p, 'fresh-key')).resolves.toMatchObject({ remaining: 0 });
    expect(l.degraded).toBe(false);
  });
});

describe('monthly quotas', () => {
  it('reset at the start of the next UTC month', async () => {
    expect(monthWindow(new Date('2026-11-30T23:59:00Z'))).toEqual({ label: '2026-11', secondsLeft: 60 });
    expect(monthWindow(new Date('2026-12-31T00:00:00Z'))).toEqual({ label: '2026-12', secondsLeft: 86_400 });
    let now = new Date('2026-11-30T23:58:00Z');
    const { l } = limiter('postgres', { now: () => now });
    const p: RateLimitPolicy = { name: 't-month', points: 2, durationSec: 31 * 86_400, window: 'month' };
    const s = await l.consume(p, 'key-1');
    expect(s.windowSec).toBe(120);
    await l.consume(p, 'key-1');
    const err = (await l.consume(p, 'key-1').catch((e) => e)) as RateLimitedError;
    expect(err).toBeInstanceOf(RateLimitedError);
    expect(err.retryAfter).toBeLessThanOrEqual(120);
    // December: a new month, a new budget
    now = new Date('2026-12-01T00:00:01Z');
    await expect(l.consume(p, 'key-1')).resolves.toMatchObject({ remaining: 1 });
  });
});

describe('headers', () => {
  it('report the most constrained policy and Retry-After when limited', () => {
    const minute = { policy: 'apikey-free-minute', limit: 60, remaining: 10, resetSec: 20, windowSec: 60 };
    const month = { policy: 'apikey-free-month', limit: 10_000, remaining: 9_000, resetSec: 86_400, windowSec: 2_592_000 };
    expect(rateLimitHeaders([minute, month])).toEqual({
      'RateLimit-Limit': '60',
      'RateLimit-Remaining': '10',
      'RateLimit-Reset': '20',
      'RateLimit-Policy': '60;w=60;name="apikey-free-minute", 10000;w=2592000;name="apikey-free-month"',
    });
    const limited = rateLimitHeaders([minute], { ...month, remaining: 0 });
    expect(limited['Retry-After']).toBe('86400');
    expect(limited['RateLimit-Remaining']).toBe('0');
    expect(rateLimitHeaders([])).toEqual({});
  });
});

/** A TCP proxy in front of the real Redis that the test can cut and restore. */
async function redisProxy(target: URL) {
  const sockets = new Set<net.Socket>();
  let mode: 'up' | 'down' = 'up';
  const server = net.createServer((c) => {
    if (mode === 'down') return c.destroy();
    const upstream = net.connect(Number(target.port || 6379), target.hostname);
    sockets.add(c).add(upstream);
    c.pipe(upstream).pipe(c);
    const end = () => {
      c.destroy();
      upstream.destroy();
      sockets.delete(c);
      sockets.delete(upstream);
    };
    c.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `redis://127.0.0.1:${port}`,
    down() {
      mode = 'down';
      for (const s of sockets) s.destroy();
    },
    up() {
      mode = 'up';
    },
    close() {
      mode = 'down';
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

async function metricValue(registry: client.Registry, name: string) {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  return m?.values.reduce((a, v) => a + Number(v.value), 0) ?? 0;
}

describe('Redis outage', () => {
  it('a Redis that is not there (closed port): limits still apply, per process, and it says so', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const { l, lines, registry } = limiter('redis', { redisUrl: `redis://127.0.0.1:${port}` });
    const p = policy('t-down', 2);
    await spend(l, p, '198.51.100.1', 2);
    await expect(l.consume(p, '198.51.100.1')).rejects.toBeInstanceOf(RateLimitedError);
    expect(l.degraded).toBe(true);
    expect(await metricValue(registry, 'carebase_ratelimit_store_degraded')).toBe(1);
    expect(await metricValue(registry, 'carebase_ratelimit_fallback_total')).toBe(3);
    const warnings = lines.filter((x) => String(x.msg).startsWith('rate-limit store unavailable'));
    expect(warnings).toHaveLength(1); // once per outage, not per request
    expect(warnings[0]).toMatchObject({ level: 'warn', store: 'redis' });
  });

  it('falls back while Redis is cut off and shares limits again once it is back, without a restart', async () => {
    const proxy = await redisProxy(new URL(REDIS_URL));
    try {
      const { l, lines, registry } = await liveLimiter('redis', { redisUrl: proxy.url, redisCommandTimeoutMs: 200 });
      const p = policy('t-flap', 100);
      await l.consume(p, 'k');
      expect(l.degraded).toBe(false);
      proxy.down();
      // requests keep being answered (by the per-process limiter) during the outage
      for (let i = 0; i < 5; i++) await l.consume(p, 'k');
      expect(l.degraded).toBe(true);
      expect(await metricValue(registry, 'carebase_ratelimit_store_degraded')).toBe(1);
      proxy.up();
      // ioredis reconnects by itself; the first call answered by Redis again clears the degraded state
      const deadline = Date.now() + 10_000;
      while (l.degraded && Date.now() < deadline) {
        await l.consume(p, 'k');
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(l.degraded).toBe(false);
      expect(await metricValue(registry, 'carebase_ratelimit_store_degraded')).toBe(0);
      expect(lines.some((x) => x.msg === 'rate-limit store recovered: shared limits enforced again')).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  it('a paused Redis (commands hang) times out into the fallback instead of stalling requests', async () => {
    // CLIENT PAUSE would stall every test file sharing this Redis; a proxy that accepts but never answers is the same to the client
    const hang = net.createServer(() => undefined);
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
    try {
      const port = (hang.address() as net.AddressInfo).port;
      const { l } = limiter('redis', { redisUrl: `redis://127.0.0.1:${port}`, redisCommandTimeoutMs: 100 });
      const p = policy('t-hang', 1);
      await l.consume(p, 'h');
      await expect(l.consume(p, 'h')).rejects.toBeInstanceOf(RateLimitedError);
      expect(l.degraded).toBe(true);
    } finally {
      hang.close();
    }
  });
});
