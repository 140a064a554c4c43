import type postgres from 'postgres';
import { lockoutKey } from './tokens.js';

/**
 * Progressive lockout after failed logins and failed MFA codes, per account
 * (tenant slug + email, whether or not the account exists, so a lock says
 * nothing about existence) and per client IP. Below the threshold nothing
 * happens; each failure past it locks for base * 2^(n - threshold - 1)
 * seconds, capped. A successful login clears the account counter (never the
 * IP counter); counters also reset after a quiet window. Counters live in
 * auth_lockouts, written outside the request transaction so a failed
 * (rolled back) login still counts.
 */
export interface LockoutPolicy {
  accountThreshold: number;
  ipThreshold: number;
  baseSeconds: number;
  maxSeconds: number;
  accountWindowSeconds: number;
  ipWindowSeconds: number;
}

export const DEFAULT_LOCKOUT: LockoutPolicy = {
  accountThreshold: 5,
  ipThreshold: 20,
  baseSeconds: 30,
  maxSeconds: 60 * 60,
  accountWindowSeconds: 24 * 60 * 60,
  ipWindowSeconds: 60 * 60,
};

export interface LockoutKey {
  key: string;
  scope: 'account' | 'ip';
}

export class Lockout {
  constructor(
    private readonly sql: postgres.Sql,
    readonly policy: LockoutPolicy,
    private readonly now: () => Date,
  ) {}

  static accountKey(tenantSlug: string, email: string): LockoutKey {
    return { key: lockoutKey('account', tenantSlug.trim().toLowerCase(), email.trim().toLowerCase()), scope: 'account' };
  }

  static userKey(tenantId: string, userId: string): LockoutKey {
    return { key: lockoutKey('user', tenantId, userId), scope: 'account' };
  }

  static ipKey(ip: string): LockoutKey {
    return { key: lockoutKey('ip', ip), scope: 'ip' };
  }

  /** Seconds until the longest of these locks ends, or 0 when none is locked. */
  async lockedFor(keys: LockoutKey[]): Promise<number> {
    const now = this.now();
    const [row] = await this.sql<{ until: Date | string | null }[]>`
      select max(locked_until) as until from auth_lockouts where key = any(${keys.map((k) => k.key)}) and locked_until > ${now}`;
    return row?.until ? Math.max(1, Math.ceil((new Date(row.until).getTime() - now.getTime()) / 1000)) : 0;
  }

  /** Counts one failure on each key; returns the seconds a lock now lasts (0 = not locked). */
  async recordFailure(keys: LockoutKey[]): Promise<number> {
    const now = this.now();
    let lockedFor = 0;
    for (const k of keys) {
      const threshold = k.scope === 'ip' ? this.policy.ipThreshold : this.policy.accountThreshold;
      const window = k.scope === 'ip' ? this.policy.ipWindowSeconds : this.policy.accountWindowSeconds;
      const windowStart = new Date(now.getTime() - window * 1000);
      const [row] = await this.sql<{ failures: number }[]>`
        insert into auth_lockouts as l (key, scope, failures, last_failure_at)
        values (${k.key}, ${k.scope}, 1, ${now})
        on conflict (key) do update set
          failures = case when l.last_failure_at < ${windowStart} then 1 else l.failures + 1 end,
          last_failure_at = ${now}
        returning failures`;
      const over = (row?.failures ?? 0) - threshold;
      if (over > 0) {
        const seconds = Math.min(this.policy.maxSeconds, this.policy.baseSeconds * 2 ** Math.min(over - 1, 30));
        await this.sql`update auth_lockouts set locked_until = ${new Date(now.getTime() + seconds * 1000)} where key = ${k.key}`;
        lockedFor = Math.max(lockedFor, seconds);
      }
    }
    return lockedFor;
  }

  async clear(keys: LockoutKey[]): Promise<void> {
    await this.sql`delete from auth_lockouts where key = any(${keys.map((k) => k.key)})`;
  }
}
