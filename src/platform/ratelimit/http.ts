import type { FastifyReply } from 'fastify';
import { AppError } from '../errors.js';
import { rateLimitHeaders } from './headers.js';
import { RateLimitedError, type RateLimitState } from './limiter.js';
import { isApiKeyTier, type RateLimitPolicy } from './policies.js';
import type { AppRateLimiter } from './index.js';

/** Who a request counts against (structurally the schema's Principal). */
export interface RateLimitSubject {
  kind: 'user' | 'apiKey';
  id: string;
  tier?: string;
}

/** The policies and keys one GraphQL request is counted against. */
export function requestChecks(rl: AppRateLimiter, principal: RateLimitSubject | null, ip: string): [RateLimitPolicy, string][] {
  const p = rl.policies;
  if (!principal) return [[p.anonIp, ip]];
  if (principal.kind === 'apiKey') {
    // an unknown tier (should not happen: the column is checked) gets the smallest quota
    const tier = principal.tier && isApiKeyTier(principal.tier) ? principal.tier : 'free';
    return [
      [p.apiKey[tier].minute, principal.id],
      [p.apiKey[tier].month, principal.id],
    ];
  }
  return [[p.user, principal.id]];
}

/**
 * Spends one point of each check and puts RateLimit-* headers on the reply.
 * On the first exhausted policy, adds Retry-After and throws
 * RateLimitedError (RATE_LIMITED, extensions.retryAfter; HTTP 429). A check
 * that fails for another reason is not swallowed (the store already fell
 * back to memory if it could).
 */
export async function enforceRateLimits(rl: AppRateLimiter, checks: readonly [RateLimitPolicy, string][], reply: FastifyReply): Promise<RateLimitState[]> {
  const states: RateLimitState[] = [];
  for (const [policy, key] of checks) {
    try {
      states.push(await rl.limiter.consume(policy, key));
    } catch (e) {
      if (e instanceof RateLimitedError) {
        for (const [h, v] of Object.entries(rateLimitHeaders(states, e.state))) reply.header(h, v);
        throw new AppError(e.code, e.message, { ...e.extensions, http: { status: 429 } });
      }
      throw e;
    }
  }
  for (const [h, v] of Object.entries(rateLimitHeaders(states))) reply.header(h, v);
  return states;
}
