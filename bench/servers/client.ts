import type postgres from 'postgres';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import type { createTenantWithAdmin } from '../../test/helpers/auth.js';

/**
 * What a bench server needs to set itself up through its own GraphQL: a client of the app at `url` shaped like the
 * tests' TestApp (so the sign-in helpers of test/helpers/auth.ts work), and a bounded-concurrency map.
 */
export function benchClient(url: string, sql: postgres.Sql) {
  const gql = async <T = Record<string, unknown>>(query: string, variables: Record<string, unknown> = {}, headers: Record<string, string> = {}) => {
    const res = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-proto': 'https', ...headers },
      body: JSON.stringify({ query, variables }),
    });
    return { status: res.status, headers: res.headers, body: (await res.json()) as { data?: T; errors?: { message: string }[] } };
  };
  const t = { gql, db: { sql } } as unknown as Parameters<typeof createTenantWithAdmin>[0];
  return { gql, t };
}

/** runs fn over xs, `n` at a time (argon2id is 4 at a time on the libuv pool anyway) */
export async function limited<X, Y>(xs: readonly X[], n: number, fn: (x: X, i: number) => Promise<Y>): Promise<Y[]> {
  const out: Y[] = new Array(xs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, xs.length) }, async () => {
      for (let i = next++; i < xs.length; i = next++) out[i] = await fn(xs[i]!, i);
    }),
  );
  return out;
}

/**
 * The real app for a load scenario, listening on a free loopback port: the environment as given (DATABASE_URL,
 * DATA_DIR, ...), per-IP sign-in limits out of the way of the setup's many sign-ins, jobs inline unless set.
 */
export async function startBenchApp(defaultDataDir: string) {
  const config = loadConfig({
    RATE_LIMIT_AUTH_IP_PER_MINUTE: '1000000',
    RATE_LIMIT_ANON_IP_PER_MINUTE: '1000000',
    ...process.env,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    DATA_DIR: process.env.DATA_DIR ?? defaultDataDir,
    JOB_WORKERS: process.env.JOB_WORKERS ?? 'inline',
  });
  const app = await createApp(config);
  const url = await app.listen();
  return { config, app, url, ...benchClient(url, app.database.sql) };
}

