/**
 * Rate limiting (rate-limiter-flexible): Redis when REDIS_URL is set,
 * PostgreSQL (table rate_limits) for an external database without Redis,
 * memory for the embedded single-process default; RATE_LIMIT_STORE
 * overrides. See docs/security.md "Rate limits".
 */
import type client from 'prom-client';
import type postgres from 'postgres';
import type { Config } from '../../config.js';
import type { Logger } from '../logger.js';
import { createRateLimiter, type RateLimiter, type RateLimitStoreKind } from './limiter.js';
import { builtInPolicies } from './policies.js';

export {
  createRateLimiter,
  RateLimitedError,
  type RateLimiter,
  type RateLimiterOptions,
  type RateLimitState,
  type RateLimitStoreKind,
} from './limiter.js';
export { rateLimitHeaders } from './headers.js';
export { enforceRateLimits, requestChecks, type RateLimitSubject } from './http.js';
export {
  API_KEY_TIERS,
  API_KEY_TIER_NAMES,
  DEFAULT_SETTINGS,
  builtInPolicies,
  isApiKeyTier,
  monthWindow,
  type ApiKeyTier,
  type RateLimitPolicy,
  type RateLimitSettings,
} from './policies.js';

/** The store a config selects (see module comment). */
export function rateLimitStoreFor(config: Pick<Config, 'redisUrl' | 'databaseUrl' | 'rateLimit'>): RateLimitStoreKind {
  if (config.rateLimit.store) return config.rateLimit.store;
  if (config.redisUrl) return 'redis';
  return config.databaseUrl ? 'postgres' : 'memory';
}

/** The app's limiter and its built-in policies, from config. */
export function createAppRateLimiter(config: Config, deps: { log: Logger; sql: postgres.Sql; registry: client.Registry }) {
  const store = rateLimitStoreFor(config);
  if (store === 'redis' && !config.redisUrl) throw new Error('RATE_LIMIT_STORE=redis needs REDIS_URL');
  const limiter: RateLimiter = createRateLimiter({
    store,
    log: deps.log,
    registry: deps.registry,
    redisUrl: config.redisUrl,
    sql: deps.sql,
    keyPrefix: `${config.rateLimit.keyPrefix}:rl`,
  });
  return { limiter, policies: builtInPolicies(config.rateLimit) };
}

export type AppRateLimiter = ReturnType<typeof createAppRateLimiter>;
