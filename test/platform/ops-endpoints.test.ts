import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { dropRedisPrefix, testAuthModule } from '../helpers/realtime.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { jobsModule } from './fixtures/jobs-module.js';

/**
 * The operational endpoints answer whatever is down: with Redis (jobs, rate
 * limits, realtime) unreachable behind a proxy, /metrics still answers (the
 * queue gauges show their last known counts, marked stale), and so do
 * /healthz and /readyz. Each request has a client timeout: a hang fails the
 * test instead of passing slowly.
 */
const REDIS = new URL(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379');
const PREFIX = `cbtest-ops-${randomBytes(4).toString('hex')}`;
let t: TestApp;
let proxy: Awaited<ReturnType<typeof startTcpProxy>>;

/** a hung endpoint rejects with TimeoutError */
const get = (path: string) => fetch(`${t.url}${path}`, { signal: AbortSignal.timeout(5_000) });

beforeAll(async () => {
  proxy = await startTcpProxy({ host: REDIS.hostname, port: Number(REDIS.port || 6379) });
  t = await startTestApp({
    modules: [testAuthModule, jobsModule],
    env: { JOB_WORKERS: 'inline', REDIS_URL: proxy.url(REDIS.toString()), JOBS_KEY_PREFIX: PREFIX, RATE_LIMIT_STORE: 'redis' },
  });
});

afterAll(async () => {
  proxy?.up();
  await t?.close();
  await proxy?.close();
  await dropRedisPrefix(REDIS.toString(), PREFIX).catch(() => undefined);
});

describe('operational endpoints while Redis is down', () => {
  it('/metrics answers with the last known queue counts marked stale; /healthz and /readyz answer', { timeout: 60_000 }, async () => {
    const before = await (await get('/metrics')).text();
    expect(before).toMatch(/carebase_jobs\{queue="testJobs\.[^"]+",state="waiting"\} \d+/);

    proxy.down();
    for (let i = 0; i < 2; i++) {
      const res = await get('/metrics');
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).toMatch(/carebase_jobs\{queue="testJobs\.[^"]+",state="waiting"\} \d+/);
      expect(text).toContain('carebase_jobs_counts_stale 1');
    }
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(200);

    proxy.up();
    // once Redis answers again the counts are fresh
    let text = '';
    for (let i = 0; i < 100 && !text.includes('carebase_jobs_counts_stale 0'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      text = await (await get('/metrics')).text();
    }
    expect(text).toContain('carebase_jobs_counts_stale 0');
  });
});

describe('/readyz while the request pool is busy', () => {
  it('answers ready: the probe has a connection of its own, a loaded server is not reported down', { timeout: 30_000 }, async () => {
    // every connection of the request pool held (a burst of requests, a restart's reconnect backlog)
    const held: Awaited<ReturnType<typeof t.db.sql.reserve>>[] = [];
    const taking = Array.from({ length: 10 }, () => t.db.sql.reserve().then((c) => held.push(c)));
    await Promise.all(taking);
    try {
      const waiting = t.db.sql`select 1`.execute(); // queued behind them
      const res = await get('/readyz');
      expect(res.status, await res.clone().text()).toBe(200);
      expect(await res.json()).toMatchObject({ status: 'ready' });
      for (const c of held.splice(0)) c.release();
      await waiting;
    } finally {
      for (const c of held) c.release();
    }
  });
});
