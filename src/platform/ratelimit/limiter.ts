import { createHash } from 'node:crypto';
import client from 'prom-client';
import type postgres from 'postgres';
import { settledWithin } from '../deadline.js';
import { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { AppError, ErrorCode } from '../errors.js';
import type { Logger } from '../logger.js';
import { BatchedPgCounter } from './batched.js';
import { monthWindow, type RateLimitPolicy } from './policies.js';

export type RateLimitStoreKind = 'redis' | 'postgres' | 'memory';

/** Where a key stands in a policy after a request (for RateLimit-* headers). */
export interface RateLimitState {
  policy: string;
  limit: number;
  remaining: number;
  /** seconds until the window resets (or the block ends) */
  resetSec: number;
  windowSec: number;
}

/** RATE_LIMITED, with `retryAfter` (seconds) and the policy name in extensions. */
export class RateLimitedError extends AppError {
  constructor(readonly state: RateLimitState) {
    super(ErrorCode.RATE_LIMITED, 'Too many requests; retry later', { retryAfter: Math.max(1, state.resetSec), policy: state.policy });
  }
  get retryAfter(): number {
    return Math.max(1, this.state.resetSec);
  }
}

export interface RateLimiterOptions {
  store: RateLimitStoreKind;
  log: Logger;
  /** metrics registry (the app's); metrics are created once per registry */
  registry?: client.Registry;
  /** redis store: a URL (own connection) */
  redisUrl?: string;
  /** redis store: ms before a command counts as failed (then the per-process fallback answers) */
  redisCommandTimeoutMs?: number;
  /** postgres store: the app pool (table rate_limits, see tables.ts) */
  sql?: postgres.Sql;
  /** postgres store: ms before a call counts as failed (then the per-process fallback answers); default 1,000 */
  pgStoreTimeoutMs?: number;
  /** postgres store: how often the counts of `batched` policies are sent (ms; default 100) */
  pgFlushMs?: number;
  /** prefix of every key (redis: unique per deployment/test) */
  keyPrefix?: string;
  /** clock (tests) */
  now?: () => Date;
}

export interface RateLimiter {
  readonly store: RateLimitStoreKind;
  /** true while the shared store fails and the per-process fallback answers */
  readonly degraded: boolean;
  /**
   * Resolves once the store is connected (redis), or after `timeoutMs`
   * (default 2 s) without it: until then calls are answered by the fallback.
   * Never rejects; returns whether the store is ready.
   */
  ready(timeoutMs?: number): Promise<boolean>;
  /**
   * Spends `points` (default 1) of `policy` for `key`; resolves to the state
   * after spending or throws RateLimitedError. Keys are hashed before they
   * are stored, so an email or IP never reaches Redis or the table in clear.
   */
  consume(policy: RateLimitPolicy, key: string, points?: number): Promise<RateLimitState>;
  /** Current state without spending (null when the key has spent nothing in this window). */
  get(policy: RateLimitPolicy, key: string): Promise<RateLimitState | null>;
  /** Gives back points (e.g. a successful login clears part of its failures). */
  reward(policy: RateLimitPolicy, key: string, points?: number): Promise<void>;
  /** Forgets a key (e.g. reset the failure count after a successful login). */
  reset(policy: RateLimitPolicy, key: string): Promise<void>;
  close(): Promise<void>;
}

/** How long a postgres store call may take before the limit is decided in memory (the insurance limiter) instead. */
export const PG_STORE_TIMEOUT_MS = 1_000;

/**
 * Adapts postgres-js to the `{ query({ text, values }) }` client RateLimiterPostgres expects. Each call is bounded:
 * a query that does not settle in time (a slow or restarting database, a query lost on a dying connection) rejects,
 * so the request goes on under the per-process insurance limit rather than waiting at the rate limiter.
 */
function pgClient(sql: postgres.Sql, timeoutMs = PG_STORE_TIMEOUT_MS) {
  return {
    async query(q: { text: string; values?: unknown[] }) {
      const pending = sql.unsafe(q.text, (q.values ?? []) as postgres.ParameterOrJSON<never>[], { prepare: true }).execute();
      // settledWithin handles a late failure of the abandoned query
      if (!(await settledWithin(pending, timeoutMs))) throw new Error('rate-limit store: no answer in time');
      const rows = await pending;
      return { rows, rowCount: rows.count };
    },
  };
}

function metricsFor(registry: client.Registry) {
  const cached = (registry as unknown as { __carebaseRateLimit?: ReturnType<typeof build> }).__carebaseRateLimit;
  if (cached) return cached;
  function build() {
    return {
      decisions: new client.Counter({
        name: 'carebase_ratelimit_decisions_total',
        help: 'Rate-limit decisions by policy and outcome (allowed / limited)',
        labelNames: ['policy', 'outcome'] as const,
        registers: [registry],
      }),
      fallbacks: new client.Counter({
        name: 'carebase_ratelimit_fallback_total',
        help: 'Rate-limit calls answered by the per-process memory limiter because the shared store failed',
        labelNames: ['store'] as const,
        registers: [registry],
      }),
      degraded: new client.Gauge({
        name: 'carebase_ratelimit_store_degraded',
        help: '1 while the shared rate-limit store is failing and limits are enforced per process',
        labelNames: ['store'] as const,
        registers: [registry],
      }),
    };
  }
  const m = build();
  (registry as unknown as { __carebaseRateLimit?: typeof m }).__carebaseRateLimit = m;
  return m;
}

const hashKey = (key: string) => createHash('sha256').update(key).digest('base64url').slice(0, 32);

/**
 * Creates the rate limiter for one app: one rate-limiter-flexible limiter per
 * policy on the chosen store, each insured by a per-process memory limiter
 * (rate-limiter-flexible's insuranceLimiter) that answers while the store
 * fails. The switch to and from the fallback is logged once and exported as
 * metrics (carebase_ratelimit_store_degraded, carebase_ratelimit_fallback_total).
 */
export function createRateLimiter(opts: RateLimiterOptions): RateLimiter {
  const { store, log } = opts;
  const now = opts.now ?? (() => new Date());
  const prefix = opts.keyPrefix ?? 'carebase:rl';
  const registry = opts.registry ?? client.register;
  const metrics = metricsFor(registry);
  metrics.degraded.set({ store }, 0);

  let redis: Redis | undefined;
  if (store === 'redis') {
    if (!opts.redisUrl) throw new Error('redis rate-limit store needs a URL');
    redis = new Redis(opts.redisUrl, {
      enableOfflineQueue: false,
      commandTimeout: opts.redisCommandTimeoutMs ?? 250,
      maxRetriesPerRequest: 0,
      connectTimeout: 2_000,
      retryStrategy: (attempt) => Math.min(200 * attempt, 2_000),
      connectionName: 'carebase-ratelimit',
    });
    // connection errors are reported through the degraded state below, once per outage
    redis.on('error', () => undefined);
  }
  if (store === 'postgres' && !opts.sql) throw new Error('postgres rate-limit store needs the app pool');
  const pg = store === 'postgres' ? pgClient(opts.sql!, opts.pgStoreTimeoutMs) : undefined;

  // ---- degraded-state tracking: a call used the fallback iff the fallback counter moved during it ----
  let fallbackCount = 0;
  let degraded = false;
  const onFallback = () => {
    fallbackCount++;
    metrics.fallbacks.inc({ store });
    if (!degraded) {
      degraded = true;
      metrics.degraded.set({ store }, 1);
      log.warn({ store }, 'rate-limit store unavailable: enforcing limits per process (memory) until it recovers');
    }
  };
  const onPrimaryOk = () => {
    if (degraded) {
      degraded = false;
      metrics.degraded.set({ store }, 0);
      log.info({ store }, 'rate-limit store recovered: shared limits enforced again');
    }
  };

  class InsuranceLimiter extends RateLimiterMemory {
    override consume(key: string | number, points?: number, options?: { [key: string]: unknown }) {
      onFallback();
      return super.consume(key, points, options);
    }
    override get(key: string | number, options?: { [key: string]: unknown }) {
      onFallback();
      return super.get(key, options);
    }
    override reward(key: string | number, points?: number, options?: { [key: string]: unknown }) {
      onFallback();
      return super.reward(key, points, options);
    }
    override delete(key: string | number, options?: { [key: string]: unknown }) {
      onFallback();
      return super.delete(key, options);
    }
  }

  const limiters = new Map<string, RateLimiterAbstract>();
  /** each store limiter's per-process insurance (the batched counter decides with it when the store fails) */
  const insurances = new Map<RateLimiterAbstract, RateLimiterAbstract>();
  let cleanerAssigned = false;
  function limiterFor(policy: RateLimitPolicy): RateLimiterAbstract {
    const id = `${policy.name}:${policy.points}:${policy.durationSec}:${policy.blockDurationSec ?? 0}`;
    let l = limiters.get(id);
    if (l) return l;
    const base = { keyPrefix: `${prefix}:${policy.name}`, points: policy.points, duration: policy.durationSec, blockDuration: policy.blockDurationSec ?? 0 };
    if (store === 'memory') {
      l = new RateLimiterMemory(base);
    } else {
      const insuranceLimiter = new InsuranceLimiter(base);
      if (store === 'redis') {
        l = new RateLimiterRedis({ ...base, storeClient: redis, rejectIfRedisNotReady: true, insuranceLimiter });
      } else {
        // every policy shares the rate_limits table (migration); one limiter sweeps expired rows
        l = new RateLimiterPostgres({
          ...base,
          storeClient: pg,
          storeType: 'pool',
          tableName: 'rate_limits',
          tableCreated: true,
          clearExpiredByTimeout: !cleanerAssigned,
          insuranceLimiter,
        });
        cleanerAssigned = true;
      }
      insurances.set(l, insuranceLimiter);
    }
    limiters.set(id, l);
    return l;
  }

  // request quotas (`batched` policies without a block) on the postgres store: counted here, sent in one upsert per flush
  const batchedCounter =
    store === 'postgres' ? new BatchedPgCounter(pg!, { flushMs: opts.pgFlushMs ?? 100, now: () => now().getTime(), onStoreOk: onPrimaryOk }) : undefined;
  /** the row key RateLimiterPostgres uses for (policy, key): its keyPrefix, a colon, the key */
  function batchedKey(policy: RateLimitPolicy, rlKey: string): string | undefined {
    if (!batchedCounter || !policy.batched || policy.blockDurationSec) return undefined;
    return `${prefix}:${policy.name}:${rlKey}`;
  }

  function keyAndOptions(policy: RateLimitPolicy, key: string) {
    if (policy.window === 'month') {
      const m = monthWindow(now());
      return { rlKey: `${m.label}:${hashKey(key)}`, options: { customDuration: m.secondsLeft }, windowSec: m.secondsLeft };
    }
    return { rlKey: hashKey(key), options: {}, windowSec: policy.durationSec };
  }

  function stateOf(policy: RateLimitPolicy, res: RateLimiterRes, windowSec: number): RateLimitState {
    const resetMs = res.msBeforeNext >= 0 ? res.msBeforeNext : windowSec * 1000;
    return { policy: policy.name, limit: policy.points, remaining: Math.max(0, res.remainingPoints), resetSec: Math.ceil(resetMs / 1000), windowSec };
  }

  function forgetBatched(policy: RateLimitPolicy, rlKey: string) {
    const stored = batchedKey(policy, rlKey);
    if (stored) batchedCounter!.forget(stored);
  }

  async function tracked<T>(fn: () => Promise<T>): Promise<T> {
    const before = fallbackCount;
    try {
      const r = await fn();
      if (store !== 'memory' && fallbackCount === before) onPrimaryOk();
      return r;
    } catch (e) {
      if (e instanceof RateLimiterRes && store !== 'memory' && fallbackCount === before) onPrimaryOk();
      throw e;
    }
  }

  return {
    store,
    get degraded() {
      return degraded;
    },
    async ready(timeoutMs = 2_000) {
      if (!redis || redis.status === 'ready') return true;
      const r = redis;
      return new Promise<boolean>((resolve) => {
        const done = (ok: boolean) => {
          clearTimeout(timer);
          r.off('ready', onReady);
          resolve(ok);
        };
        const onReady = () => done(true);
        const timer = setTimeout(() => done(false), timeoutMs);
        r.on('ready', onReady);
      });
    },
    async consume(policy, key, points = 1) {
      const { rlKey, options, windowSec } = keyAndOptions(policy, key);
      const stored = batchedKey(policy, rlKey);
      try {
        const res = stored
          ? await tracked(() =>
              batchedCounter!.consume(stored, points, policy.points, windowSec * 1000, () =>
                insurances.get(limiterFor(policy))!.consume(rlKey, points, options),
              ),
            )
          : await tracked(() => limiterFor(policy).consume(rlKey, points, options));
        metrics.decisions.inc({ policy: policy.name, outcome: 'allowed' });
        return stateOf(policy, res, windowSec);
      } catch (e) {
        if (e instanceof RateLimiterRes) {
          metrics.decisions.inc({ policy: policy.name, outcome: 'limited' });
          throw new RateLimitedError({ ...stateOf(policy, e, windowSec), remaining: 0 });
        }
        throw e;
      }
    },
    async get(policy, key) {
      const { rlKey, windowSec } = keyAndOptions(policy, key);
      const stored = batchedKey(policy, rlKey);
      if (stored) await batchedCounter!.sent(); // what this process counted is in the row
      const res = await tracked(() => limiterFor(policy).get(rlKey));
      return res ? stateOf(policy, res, windowSec) : null;
    },
    async reward(policy, key, points = 1) {
      const { rlKey, options } = keyAndOptions(policy, key);
      await tracked(() => limiterFor(policy).reward(rlKey, points, options));
      forgetBatched(policy, rlKey);
    },
    async reset(policy, key) {
      const { rlKey } = keyAndOptions(policy, key);
      await tracked(() => limiterFor(policy).delete(rlKey));
      forgetBatched(policy, rlKey);
    },
    async close() {
      await batchedCounter?.close().catch(() => undefined);
      for (const l of limiters.values()) {
        const t = (l as unknown as { _clearExpiredTimeoutId?: NodeJS.Timeout })._clearExpiredTimeoutId;
        if (t) clearTimeout(t);
      }
      if (redis) {
        await redis.quit().catch(() => redis!.disconnect());
      }
    },
  };
}
