import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { and, desc, eq, isNull, sql } from 'drizzle-orm';
import type { FastifyRequest } from 'fastify';
import type postgres from 'postgres';
import type { PermissionCatalog } from '../../platform/access/index.js';
import { withTenant } from '../../platform/db/index.js';
import { AppError, badInput, ErrorCode, forbidden, notFound } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import { API_KEY_TIERS, isApiKeyTier, type ApiKeyTier } from '../../platform/ratelimit/index.js';
import type { Principal, RequestContext } from '../../schema/index.js';
import { recordAccessEvent } from './events.js';
import { apiKeys } from './tables.js';

/**
 * API keys: `cb_live_<prefix>_<secret>` (cb_test_ outside production).
 * prefix = 12 hex chars (48 bits, unique, the lookup handle); secret = 32
 * random bytes, base64url. Stored: the prefix and SHA-256 over the whole key.
 * The secret has 256 bits of entropy, so a fast hash is enough (no
 * dictionary to guess from); comparison is constant-time.
 */
export const API_KEY_PATTERN = /^cb_(live|test)_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

export type ApiKeyRow = typeof apiKeys.$inferSelect;

/** What API keys may be granted at most: the permissions the enabled modules give the API_CLIENT role. */
export const apiKeyGrantable = (catalog: PermissionCatalog): ReadonlySet<string> => catalog.ofRole('API_CLIENT');

const hashKey = (key: string) => createHash('sha256').update(key, 'utf8').digest();

export function generateApiKey(live: boolean): { key: string; prefix: string; hash: Buffer } {
  const prefix = randomBytes(6).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const key = `cb_${live ? 'live' : 'test'}_${prefix}_${secret}`;
  return { key, prefix, hash: hashKey(key) };
}

export function apiKeyStatus(row: Pick<ApiKeyRow, 'revokedAt' | 'expiresAt'>, now: Date): 'ACTIVE' | 'REVOKED' | 'EXPIRED' {
  if (row.revokedAt) return 'REVOKED';
  if (row.expiresAt && row.expiresAt.getTime() <= now.getTime()) return 'EXPIRED';
  return 'ACTIVE';
}

function requireUser(ctx: RequestContext): Principal {
  const p = ctx.principal;
  if (!p) throw new AppError(ErrorCode.UNAUTHENTICATED, 'Authentication required');
  if (p.kind !== 'user') throw forbidden('Only users can manage API keys');
  return p;
}

export interface CreateApiKeyInput {
  name: string;
  permissions: readonly string[];
  tier: ApiKeyTier;
  expiresAt?: Date | null;
}

/** Creates a key; the returned `key` is the only time the secret exists outside the caller. */
export async function createApiKey(ctx: RequestContext, input: CreateApiKeyInput, now: Date, catalog: PermissionCatalog): Promise<{ apiKey: ApiKeyRow; key: string }> {
  const p = requireUser(ctx);
  const permissions = [...new Set(input.permissions)].sort();
  if (permissions.length === 0) throw badInput('grant at least one permission', 'permissions');
  for (const perm of permissions) {
    if (!catalog.isPermission(perm)) throw badInput('unknown permission', 'permissions');
    if (!apiKeyGrantable(catalog).has(perm)) throw badInput(`${perm} cannot be granted to an API key`, 'permissions');
  }
  // a key never holds more than the admin who creates it
  if (permissions.some((perm) => !p.permissions.has(perm))) throw forbidden('An API key can hold only permissions you hold yourself');
  if (!isApiKeyTier(input.tier)) throw badInput('unknown tier', 'tier');
  if (input.expiresAt && input.expiresAt.getTime() <= now.getTime()) throw badInput('expiresAt must be in the future', 'expiresAt');
  const { key, prefix, hash } = generateApiKey(ctx.config.isProduction);
  const db = await ctx.db();
  const [row] = await db
    .insert(apiKeys)
    .values({ tenantId: p.tenantId, name: input.name, prefix, secretHash: hash, permissions, tier: input.tier, createdBy: p.id, createdAt: now, expiresAt: input.expiresAt ?? null })
    .returning();
  await recordAccessEvent(ctx, db, { type: 'api_key.created', details: { apiKeyId: row!.id, prefix, tier: input.tier, permissions } });
  ctx.log.info({ reqId: ctx.requestId, tenantId: p.tenantId, apiKeyId: row!.id, prefix, actorId: p.id }, 'api key created');
  return { apiKey: row!, key };
}

export async function listApiKeys(ctx: RequestContext, includeRevoked: boolean): Promise<ApiKeyRow[]> {
  const p = requireUser(ctx);
  const db = await ctx.db();
  return db
    .select()
    .from(apiKeys)
    .where(and(eq(apiKeys.tenantId, p.tenantId), includeRevoked ? undefined : isNull(apiKeys.revokedAt)))
    .orderBy(desc(apiKeys.createdAt), desc(apiKeys.id));
}

async function findKey(ctx: RequestContext, tenantId: string, id: string): Promise<ApiKeyRow> {
  const db = await ctx.db();
  const [row] = await db.select().from(apiKeys).where(and(eq(apiKeys.tenantId, tenantId), eq(apiKeys.id, id)));
  if (!row) throw notFound('API key');
  return row;
}

/** Revokes a key (idempotent); it stops working at once, in every process. */
export async function revokeApiKey(ctx: RequestContext, id: string, now: Date): Promise<ApiKeyRow> {
  const p = requireUser(ctx);
  const row = await findKey(ctx, p.tenantId, id);
  if (row.revokedAt) return row;
  const db = await ctx.db();
  const [updated] = await db
    .update(apiKeys)
    .set({ revokedAt: now, revokedBy: p.id })
    .where(and(eq(apiKeys.tenantId, p.tenantId), eq(apiKeys.id, id)))
    .returning();
  await recordAccessEvent(ctx, db, { type: 'api_key.revoked', details: { apiKeyId: id, prefix: row.prefix } });
  ctx.log.info({ reqId: ctx.requestId, tenantId: p.tenantId, apiKeyId: id, actorId: p.id }, 'api key revoked');
  return updated!;
}

export async function setApiKeyTier(ctx: RequestContext, id: string, tier: ApiKeyTier): Promise<ApiKeyRow> {
  const p = requireUser(ctx);
  if (!isApiKeyTier(tier)) throw badInput('unknown tier', 'tier');
  const row = await findKey(ctx, p.tenantId, id);
  if (row.revokedAt) throw new AppError(ErrorCode.CONFLICT, 'API key is revoked');
  const db = await ctx.db();
  const [updated] = await db.update(apiKeys).set({ tier }).where(and(eq(apiKeys.tenantId, p.tenantId), eq(apiKeys.id, id))).returning();
  if (row.tier !== tier) await recordAccessEvent(ctx, db, { type: 'api_key.tier_changed', details: { apiKeyId: id, from: row.tier, to: tier } });
  return updated!;
}

export const tierInfo = () => (Object.keys(API_KEY_TIERS) as ApiKeyTier[]).map((tier) => ({ tier, ...API_KEY_TIERS[tier] }));

// ---------------------------------------------------------------- authentication

interface LookupRow {
  key_id: string;
  key_tenant_id: string;
  key_secret_hash: Buffer;
  key_permissions: string[];
  key_tier: string;
  key_revoked_at: Date | string | null;
  key_expires_at: Date | string | null;
  tenant_status: string | null;
}

/** The credential in `Authorization: ApiKey <key>` or `X-API-Key: <key>`; undefined when neither is present. */
export function apiKeyFromRequest(req: FastifyRequest): string | undefined {
  const auth = req.headers.authorization;
  if (typeof auth === 'string') {
    const m = /^ApiKey(?:\s+(.*))?$/i.exec(auth.trim());
    if (m) return (m[1] ?? '').trim();
  }
  const x = req.headers['x-api-key'];
  if (typeof x === 'string') return x.trim();
  if (Array.isArray(x)) throw invalidKey();
  return undefined;
}

const invalidKey = () => new AppError(ErrorCode.UNAUTHENTICATED, 'Invalid API key');
const DUMMY_HASH = hashKey('cb_test_000000000000_dummy');

export interface ApiKeyAuthenticator {
  authenticate(key: string, ip: string): Promise<Principal>;
  /** waits for pending last-used writes */
  close(): Promise<void>;
}

/**
 * Verifies a presented key: prefix lookup through the SECURITY DEFINER
 * function (the tenant is not known yet), constant-time hash comparison,
 * then revocation, expiry and tenant status. Any failure is UNAUTHENTICATED
 * (never anonymous). Last use is recorded at most once a minute per key and
 * process, after the response path (not awaited by the request).
 */
export function createApiKeyAuthenticator(opts: { sql: postgres.Sql; log: Logger; now: () => Date; permissions: PermissionCatalog; lastUsedEveryMs?: number }): ApiKeyAuthenticator {
  const grantable = apiKeyGrantable(opts.permissions);
  const lastWritten = new Map<string, number>();
  const pending = new Set<Promise<unknown>>();
  const every = opts.lastUsedEveryMs ?? 60_000;

  function touch(keyId: string, tenantId: string) {
    const at = opts.now();
    const prev = lastWritten.get(keyId);
    if (prev !== undefined && at.getTime() - prev < every) return;
    lastWritten.set(keyId, at.getTime());
    if (lastWritten.size > 10_000) lastWritten.delete(lastWritten.keys().next().value!);
    const write = withTenant(opts.sql, tenantId, (db) =>
      db
        .update(apiKeys)
        .set({ lastUsedAt: at })
        .where(and(eq(apiKeys.tenantId, tenantId), eq(apiKeys.id, keyId), sql`(${apiKeys.lastUsedAt} is null or ${apiKeys.lastUsedAt} < ${new Date(at.getTime() - every)})`)),
    )
      .catch((e: { code?: string }) => {
        lastWritten.delete(keyId);
        opts.log.warn({ apiKeyId: keyId, pgCode: e?.code }, 'api key last-used update failed');
      })
      .finally(() => pending.delete(write));
    pending.add(write);
  }

  return {
    async authenticate(key, _ip) {
      const m = API_KEY_PATTERN.exec(key);
      if (!m) throw invalidKey();
      const presented = hashKey(key);
      const rows = await opts.sql<LookupRow[]>`select * from carebase_api_key_lookup(${m[2]!})`;
      const row = rows[0];
      // compare against something even when the prefix is unknown (no timing oracle on prefixes)
      const stored = row?.key_secret_hash ?? DUMMY_HASH;
      const match = stored.length === presented.length && timingSafeEqual(stored, presented);
      if (!row || !match) throw invalidKey();
      const now = opts.now();
      if (row.key_revoked_at) throw new AppError(ErrorCode.UNAUTHENTICATED, 'API key has been revoked');
      if (row.key_expires_at && new Date(row.key_expires_at).getTime() <= now.getTime()) throw new AppError(ErrorCode.UNAUTHENTICATED, 'API key has expired');
      if (row.tenant_status !== 'active') throw new AppError(ErrorCode.UNAUTHENTICATED, 'API key is not valid for an active tenant');
      touch(row.key_id, row.key_tenant_id);
      // never more than API_CLIENT allows, even if the table changed since the key was created
      const permissions = new Set(row.key_permissions.filter((perm) => grantable.has(perm)));
      return { kind: 'apiKey', id: row.key_id, tenantId: row.key_tenant_id, roles: ['API_CLIENT'], permissions, tier: row.key_tier };
    },
    async close() {
      await Promise.allSettled([...pending]);
    },
  };
}
