import { sql } from 'drizzle-orm';
import type { Db } from '../db/tenancy.js';
import { AppError, ErrorCode } from '../errors.js';

/** How long a tenant's entitlements are cached in a process (they change rarely: a plan change). */
export const ENTITLEMENTS_TTL_MS = 30_000;
const MAX_CACHED_TENANTS = 10_000;

/** What a module declares (ModuleManifest.name / .entitlement). */
export interface EntitledModule {
  name: string;
  /** entitlement key; default the module name; null = core module, always entitled */
  entitlement?: string | null;
}

/** The entitlement key of a module: null for core modules (always entitled). */
export function entitlementKey(m: EntitledModule): string | null {
  return m.entitlement === undefined ? m.name : m.entitlement;
}

export function notEntitled(key: string): AppError {
  return new AppError(ErrorCode.FEATURE_NOT_ENTITLED, "This feature is not part of your organisation's plan", { feature: key });
}

/**
 * Per-tenant entitlements (table tenant_entitlements; no row = every enabled
 * module), checked at every door on top of the process-wide FEATURES. Cached
 * per tenant for ENTITLEMENTS_TTL_MS: a cached answer is synchronous, a miss
 * reads the row through the caller's own tenant transaction (RLS applies).
 */
export class Entitlements {
  private readonly cache = new Map<string, { until: number; keys: ReadonlySet<string> | null }>();
  private readonly byModule: ReadonlyMap<string, string | null>;

  constructor(
    modules: readonly EntitledModule[],
    private readonly ttlMs = ENTITLEMENTS_TTL_MS,
  ) {
    this.byModule = new Map(modules.map((m) => [m.name, entitlementKey(m)]));
  }

  /** The entitlement key of an enabled module (null: core, or not a module, e.g. the platform). */
  keyOf(module: string): string | null {
    return this.byModule.get(module) ?? null;
  }

  /**
   * Throws FEATURE_NOT_ENTITLED when the tenant lacks `key`. Synchronous
   * (undefined) when the answer is cached; otherwise a promise that reads it
   * with `db` (a transaction scoped to that tenant).
   */
  require(tenantId: string, key: string | null, db: () => Promise<Db>): void | Promise<void> {
    if (key === null) return;
    const hit = this.cache.get(tenantId);
    if (hit && hit.until > Date.now()) {
      if (hit.keys && !hit.keys.has(key)) throw notEntitled(key);
      return;
    }
    return this.load(tenantId, db).then((keys) => {
      if (keys && !keys.has(key)) throw notEntitled(key);
    });
  }

  /** Forget cached entitlements (one tenant, or all): the next check reads them again. */
  invalidate(tenantId?: string): void {
    if (tenantId) this.cache.delete(tenantId);
    else this.cache.clear();
  }

  private async load(tenantId: string, db: () => Promise<Db>): Promise<ReadonlySet<string> | null> {
    const rows = await (await db()).execute<{ modules: string[] }>(sql`select modules from tenant_entitlements where tenant_id = ${tenantId}`);
    const keys = rows[0] ? new Set(rows[0].modules) : null;
    if (this.cache.size >= MAX_CACHED_TENANTS) this.cache.clear();
    this.cache.set(tenantId, { until: Date.now() + this.ttlMs, keys });
    return keys;
  }
}
