/**
 * Rate-limit policies. A policy is a budget of `points` per window of
 * `durationSec` for one key (an IP, a user id, an API key id, ...);
 * `blockDurationSec` keeps a key blocked for longer once it overspends
 * (lockouts). `window: 'month'` is a calendar-month quota (UTC): the key
 * resets at the start of the next month.
 */
export interface RateLimitPolicy {
  /** stable name: metrics label, key prefix and RateLimit-Policy name */
  name: string;
  points: number;
  durationSec: number;
  blockDurationSec?: number;
  window?: 'rolling' | 'month';
  /**
   * A request quota, counted per process and sent to the shared store in batches (postgres store: one upsert per
   * 100 ms for every key instead of one per request; see batched.ts). Ignored with a block duration.
   */
  batched?: boolean;
}

/** API key tiers: per-minute and per-calendar-month request quotas. */
export const API_KEY_TIERS = {
  free: { perMinute: 60, perMonth: 10_000 },
  standard: { perMinute: 600, perMonth: 1_000_000 },
  enterprise: { perMinute: 3_000, perMonth: 50_000_000 },
} as const satisfies Record<string, { perMinute: number; perMonth: number }>;
export type ApiKeyTier = keyof typeof API_KEY_TIERS;
export const API_KEY_TIER_NAMES = Object.keys(API_KEY_TIERS) as ApiKeyTier[];

export function isApiKeyTier(v: string): v is ApiKeyTier {
  return Object.hasOwn(API_KEY_TIERS, v);
}

/** Per-deployment numbers (config: RATE_LIMIT_*_PER_MINUTE). */
export interface RateLimitSettings {
  /** REST auth routes (/auth/*) and identity's login-like mutations, per client IP */
  authIpPerMinute: number;
  /** anonymous GraphQL requests, per client IP */
  anonIpPerMinute: number;
  /** authenticated user requests, per user */
  userPerMinute: number;
}

export const DEFAULT_SETTINGS: RateLimitSettings = { authIpPerMinute: 60, anonIpPerMinute: 300, userPerMinute: 1_200 };

/** The built-in policies for the given settings. */
export function builtInPolicies(s: RateLimitSettings) {
  const tiers = Object.fromEntries(
    API_KEY_TIER_NAMES.map((tier) => [
      tier,
      {
        minute: { name: `apikey-${tier}-minute`, points: API_KEY_TIERS[tier].perMinute, durationSec: 60, batched: true },
        month: { name: `apikey-${tier}-month`, points: API_KEY_TIERS[tier].perMonth, durationSec: 31 * 86_400, window: 'month', batched: true },
      } satisfies Record<string, RateLimitPolicy>,
    ]),
  ) as Record<ApiKeyTier, { minute: RateLimitPolicy; month: RateLimitPolicy }>;
  return {
    authIp: { name: 'auth-ip', points: s.authIpPerMinute, durationSec: 60 } satisfies RateLimitPolicy,
    anonIp: { name: 'anon-ip', points: s.anonIpPerMinute, durationSec: 60, batched: true } satisfies RateLimitPolicy,
    user: { name: 'user', points: s.userPerMinute, durationSec: 60, batched: true } satisfies RateLimitPolicy,
    apiKey: tiers,
  };
}

/** Seconds from `now` to the start of the next UTC calendar month, and the month's label (YYYY-MM). */
export function monthWindow(now: Date): { label: string; secondsLeft: number } {
  const next = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
  const label = `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
  return { label, secondsLeft: Math.max(1, Math.ceil((next - now.getTime()) / 1000)) };
}
