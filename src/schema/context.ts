import type { Config } from '../config.js';
import type { RequestScope } from '../platform/scope/index.js';
import type { Logger } from '../platform/logger.js';
import type { JobSystem } from '../platform/jobs/runtime.js';
import type { AppRateLimiter } from '../platform/ratelimit/index.js';

/** Who is calling. Filled by the identity module's authenticator; null = anonymous. */
export interface Principal {
  kind: 'user' | 'apiKey';
  id: string;
  tenantId: string;
  roles: string[];
  permissions: ReadonlySet<string>;
  sessionId?: string;
  amr?: string[];
  /** API keys: quota tier (free / standard / enterprise, see platform/ratelimit API_KEY_TIERS) */
  tier?: string;
}

/**
 * A GraphQL request's context: its request scope (platform/scope: principal,
 * `tx` / `db()` the request's single lazy transaction, `recordPhiAccess`,
 * `requireEntitled`, deadline) plus what only GraphQL resolvers use.
 */
export interface RequestContext extends RequestScope<Principal> {
  readonly ip: string;
  config: Config;
  log: Logger;
  enabledModules: readonly string[];
  enabledPhase: number;
  /** headers a resolver wants on the HTTP response (e.g. Set-Cookie, Retry-After) */
  responseHeaders: Map<string, string | string[]>;
  /** queues and the dead-letter queue (platform/jobs); absent where jobs are not started */
  jobs?: JobSystem;
  /** rate limiting: `ctx.rateLimit.limiter.consume(ctx.rateLimit.policies.authIp, ctx.ip)` */
  rateLimit: AppRateLimiter;
}
