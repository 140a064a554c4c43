import type { RateLimitState } from './limiter.js';

/**
 * Response headers for the policies a request was counted against, in the
 * style of draft-ietf-httpapi-ratelimit-headers (RateLimit-Limit /
 * -Remaining / -Reset for the most constrained policy, RateLimit-Policy
 * listing each `limit;w=window`), plus Retry-After (seconds) when limited.
 */
export function rateLimitHeaders(states: readonly RateLimitState[], limited?: RateLimitState): Record<string, string> {
  const all = limited ? [...states.filter((s) => s.policy !== limited.policy), limited] : [...states];
  if (all.length === 0) return {};
  const tightest = limited ?? all.reduce((a, b) => (b.remaining / b.limit < a.remaining / a.limit ? b : a));
  const headers: Record<string, string> = {
    'RateLimit-Limit': String(tightest.limit),
    'RateLimit-Remaining': String(tightest.remaining),
    'RateLimit-Reset': String(Math.max(0, tightest.resetSec)),
    'RateLimit-Policy': all.map((s) => `${s.limit};w=${s.windowSec};name="${s.policy}"`).join(', '),
  };
  if (limited) headers['Retry-After'] = String(Math.max(1, limited.resetSec));
  return headers;
}
