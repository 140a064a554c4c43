import { createHash, randomBytes } from 'node:crypto';
import client from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTenant } from '../../../src/platform/db/index.js';
import { createLogger } from '../../../src/platform/logger.js';
import { builtInPolicies, createRateLimiter, DEFAULT_SETTINGS } from '../../../src/platform/ratelimit/index.js';
import { sql } from 'drizzle-orm';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import type { TestTenant } from '../../helpers/auth.js';
import { accessModules, accessTestEnv, createTenant, signedIn, type TestUser } from './fixtures.js';

let clock = Date.now();
let t: TestApp;
let tenantA: TestTenant;
let tenantB: TestTenant;
let adminA: TestUser;
let adminB: TestUser;

const CREATE = `mutation Create($input: CreateApiKeyInput!) {
  createApiKey(input: $input) { key apiKey { id name prefix permissions tier status createdBy lastUsedAt } }
}`;

interface Created {
  key: string;
  apiKey: { id: string; name: string; prefix: string; permissions: string[]; tier: string; status: string; createdBy: string; lastUsedAt: string | null };
}

async function createKey(admin: TestUser, input: Record<string, unknown>): Promise<Created> {
  const res = await t.gql<{ createApiKey: Created }>(CREATE, { input: { name: 'Photo partner', ...input } }, admin.headers);
  expect(res.body.errors).toBeUndefined();
  return res.body.data!.createApiKey;
}

const apiKeyHeader = (key: string) => ({ authorization: `ApiKey ${key}` });
const countKeys = async () => (await t.db.owner<{ n: number }[]>`select count(*)::int as n from api_keys`)[0]!.n;

beforeAll(async () => {
  t = await startTestApp({ modules: accessModules(() => new Date(clock)), env: accessTestEnv });
  tenantA = await createTenant(t);
  tenantB = await createTenant(t);
  adminA = await signedIn(t, tenantA, ['ADMIN']);
  adminB = await signedIn(t, tenantB, ['ADMIN']);
});
afterAll(async () => {
  await t?.close();
});

describe('creating API keys', () => {
  it('an admin creates a key: shown once, stored as prefix + SHA-256 only', async () => {
    const created = await createKey(adminA, { permissions: ['patient:read', 'patient:write'], tier: 'FREE' });
    expect(created.key).toMatch(/^cb_test_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    expect(created.apiKey).toMatchObject({ permissions: ['patient:read', 'patient:write'], tier: 'FREE', status: 'ACTIVE', createdBy: adminA.userId });
    expect(created.key.split('_')[2]).toBe(created.apiKey.prefix);
    const [row] = await t.db.owner<{ prefix: string; secret_hash: Buffer; tenant_id: string }[]>`select prefix, secret_hash, tenant_id from api_keys where id = ${created.apiKey.id}`;
    expect(row!.tenant_id).toBe(tenantA.id);
    expect(row!.secret_hash.equals(createHash('sha256').update(created.key).digest())).toBe(true);
    // no column holds the secret part
    const secret = created.key.slice(`cb_test_${row!.prefix}_`.length);
    const dump = JSON.stringify(await t.db.owner`select * from api_keys`);
    expect(dump).not.toContain(secret);
    // the key is not readable again, and never logged
    const again = await t.gql('{ apiKeys { key } }', {}, adminA.headers);
    expect(again.body.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(t.logText()).not.toContain(secret);
  });

  it('a key holds only permissions its creator holds and API keys may hold', async () => {
    const before = await countKeys();
    const notMine = await t.gql(CREATE, { input: { name: 'x', permissions: ['patient:clinical:read'] } }, adminA.headers);
    expect(notMine.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const notForKeys = await t.gql(CREATE, { input: { name: 'x', permissions: ['apikey:manage'] } }, adminA.headers);
    expect(notForKeys.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'permissions' });
    const unknown = await t.gql(CREATE, { input: { name: 'x', permissions: ['patient:everything'] } }, adminA.headers);
    expect(unknown.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'permissions' });
    const empty = await t.gql(CREATE, { input: { name: 'x', permissions: [] } }, adminA.headers);
    expect(empty.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const past = await t.gql(CREATE, { input: { name: 'x', permissions: ['patient:read'], expiresAt: new Date(clock - 1000).toISOString() } }, adminA.headers);
    expect(past.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'expiresAt' });
    const nurse = await t.gql(CREATE, { input: { name: 'x', permissions: ['patient:read'] } }, (await signedIn(t, tenantA, ['NURSE'])).headers);
    expect(nurse.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const anon = await t.gql(CREATE, { input: { name: 'x', permissions: ['patient:read'] } });
    expect(anon.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(await countKeys()).toBe(before);
  });

  it('an admin who is also a provider can grant clinical scopes', async () => {
    const both = await signedIn(t, tenantA, ['ADMIN', 'PROVIDER']);
    const created = await createKey(both, { permissions: ['patient:clinical:read', 'patient:read'] });
    expect(created.apiKey.permissions).toEqual(['patient:clinical:read', 'patient:read']);
    expect(created.apiKey.tier).toBe('STANDARD');
  });
});

describe('authenticating with an API key', () => {
  let key: Created;
  beforeAll(async () => {
    key = await createKey(adminA, { permissions: ['patient:read'] });
  });

  it('works in Authorization: ApiKey and X-API-Key, with exactly its scope', async () => {
    for (const headers of [apiKeyHeader(key.key), { 'x-api-key': key.key }]) {
      const res = await t.gql<{ myPermissions: string[] }>('{ myPermissions }', {}, headers);
      expect(res.status).toBe(200);
      expect(res.body.data?.myPermissions).toEqual(['patient:read']);
    }
    // scoped: a key cannot manage keys, even one made by an admin
    const list = await t.gql('{ apiKeys { id } }', {}, apiKeyHeader(key.key));
    expect(list.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const make = await t.gql(CREATE, { input: { name: 'x', permissions: ['patient:read'] } }, apiKeyHeader(key.key));
    expect(make.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it('refuses unknown, malformed and tampered keys with UNAUTHENTICATED (never as anonymous)', async () => {
    const tampered = key.key.slice(0, -1) + (key.key.endsWith('A') ? 'B' : 'A');
    const unknown = `cb_test_${randomBytes(6).toString('hex')}_${randomBytes(32).toString('base64url')}`;
    for (const bad of [tampered, unknown, 'cb_test_nothex_x', 'hello', '']) {
      for (const headers of [apiKeyHeader(bad), { 'x-api-key': bad }]) {
        // serverInfo is public: a bad credential must still be refused, not downgraded to anonymous
        const res = await t.gql('{ serverInfo { version } }', {}, headers);
        expect(res.status).toBe(401);
        expect(res.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
        expect(res.body.errors?.[0]?.message).toBe('Invalid API key');
      }
    }
    expect(t.logText()).not.toContain(tampered);
  });

  it('a revoked key is refused at once; revoking is idempotent', async () => {
    const k = await createKey(adminA, { permissions: ['patient:read'] });
    expect((await t.gql('{ myPermissions }', {}, apiKeyHeader(k.key))).status).toBe(200);
    const rev = await t.gql<{ revokeApiKey: { status: string } }>('mutation($id: UUID!) { revokeApiKey(id: $id) { status } }', { id: k.apiKey.id }, adminA.headers);
    expect(rev.body.data?.revokeApiKey.status).toBe('REVOKED');
    const res = await t.gql('{ myPermissions }', {}, apiKeyHeader(k.key));
    expect(res.status).toBe(401);
    expect(res.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(res.body.errors?.[0]?.message).toBe('API key has been revoked');
    const again = await t.gql<{ revokeApiKey: { status: string } }>('mutation($id: UUID!) { revokeApiKey(id: $id) { status } }', { id: k.apiKey.id }, adminA.headers);
    expect(again.body.data?.revokeApiKey.status).toBe('REVOKED');
    const listed = await t.gql<{ apiKeys: { id: string }[] }>('{ apiKeys { id } }', {}, adminA.headers);
    expect(listed.body.data?.apiKeys.map((x) => x.id)).not.toContain(k.apiKey.id);
    const all = await t.gql<{ apiKeys: { id: string; status: string }[] }>('{ apiKeys(includeRevoked: true) { id status } }', {}, adminA.headers);
    expect(all.body.data?.apiKeys.find((x) => x.id === k.apiKey.id)?.status).toBe('REVOKED');
    // both ends of the key's life are security events (for the audit chain), once each, without the key
    const sec = await t.db.owner<{ type: string; actor_id: string }[]>`
      select type, actor_id from security_events where details->>'apiKeyId' = ${k.apiKey.id} order by created_at, type`;
    expect(sec).toEqual([
      { type: 'api_key.created', actor_id: adminA.userId },
      { type: 'api_key.revoked', actor_id: adminA.userId },
    ]);
    expect(JSON.stringify(await t.db.owner`select details from security_events`)).not.toContain(k.key);
  });

  it('an expired key is refused', async () => {
    const k = await createKey(adminA, { permissions: ['patient:read'], expiresAt: new Date(clock + 60_000).toISOString() });
    expect((await t.gql('{ myPermissions }', {}, apiKeyHeader(k.key))).status).toBe(200);
    clock += 61_000;
    const res = await t.gql('{ myPermissions }', {}, apiKeyHeader(k.key));
    expect(res.body.errors?.[0]).toMatchObject({ message: 'API key has expired', extensions: { code: 'UNAUTHENTICATED' } });
  });

  it('a key of a suspended tenant is refused', async () => {
    const tenantC = await createTenant(t);
    const k = await createKey(await signedIn(t, tenantC, ['ADMIN']), { permissions: ['patient:read'] });
    await t.db.owner`update tenants set status = 'suspended' where id = ${tenantC.id}`;
    const res = await t.gql('{ myPermissions }', {}, apiKeyHeader(k.key));
    expect(res.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('records last use, at most once a minute', async () => {
    const k = await createKey(adminA, { permissions: ['patient:read'] });
    const lastUsed = async () => (await t.db.owner<{ at: Date | null }[]>`select last_used_at as at from api_keys where id = ${k.apiKey.id}`)[0]!.at;
    const waitFor = async (pred: (d: Date | null) => boolean) => {
      for (let i = 0; i < 100 && !pred(await lastUsed()); i++) await new Promise((r) => setTimeout(r, 20));
      return lastUsed();
    };
    await t.gql('{ myPermissions }', {}, apiKeyHeader(k.key));
    const first = await waitFor((d) => d !== null);
    expect(first?.getTime()).toBe(clock);
    clock += 30_000;
    await t.gql('{ myPermissions }', {}, apiKeyHeader(k.key));
    await new Promise((r) => setTimeout(r, 200));
    expect((await lastUsed())?.getTime()).toBe(first!.getTime());
    clock += 31_000;
    await t.gql('{ myPermissions }', {}, apiKeyHeader(k.key));
    expect((await waitFor((d) => d!.getTime() !== first!.getTime()))?.getTime()).toBe(clock);
  });

  it('the table stays behind RLS for the app role; only the lookup function crosses tenants', async () => {
    const none = await withTenant(t.db.sql, null, (db) => db.execute(sql`select id from api_keys`));
    expect(none).toHaveLength(0);
    const other = await withTenant(t.db.sql, tenantB.id, (db) => db.execute(sql`select id from api_keys`));
    expect(other).toHaveLength(0);
    const [fn] = await t.db.owner<{ definer: boolean; public_exec: boolean }[]>`
      select prosecdef as definer, has_function_privilege('public', oid, 'execute') as public_exec from pg_proc where proname = 'carebase_api_key_lookup'`;
    expect(fn).toEqual({ definer: true, public_exec: false });
    await expect(t.db.sql`delete from api_keys`).rejects.toMatchObject({ code: '42501' });
  });
});

describe('tier quotas', () => {
  it('free tier: 60 requests a minute, then RATE_LIMITED with Retry-After; RateLimit-* headers on every response', async () => {
    const k = await createKey(adminA, { permissions: ['patient:read'], tier: 'FREE' });
    let last: Awaited<ReturnType<TestApp['gql']>> | undefined;
    for (let i = 0; i < 60; i++) {
      last = await t.gql('{ myPermissions }', {}, apiKeyHeader(k.key));
      expect(last.status).toBe(200);
    }
    expect(last!.headers.get('ratelimit-limit')).toBe('60');
    expect(last!.headers.get('ratelimit-remaining')).toBe('0');
    expect(last!.headers.get('ratelimit-policy')).toContain('10000;w=');
    const limited = await t.gql('{ myPermissions }', {}, apiKeyHeader(k.key));
    expect(limited.status).toBe(429);
    expect(limited.body.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', policy: 'apikey-free-minute' });
    const retryAfter = Number(limited.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(limited.body.errors?.[0]?.extensions?.retryAfter).toBe(retryAfter);
    // another key of the same tenant has its own budget
    const other = await createKey(adminA, { permissions: ['patient:read'], tier: 'FREE' });
    expect((await t.gql('{ myPermissions }', {}, apiKeyHeader(other.key))).status).toBe(200);
  });

  it('free tier: the monthly quota ends with RATE_LIMITED until next month', async () => {
    const k = await createKey(adminA, { permissions: ['patient:read'], tier: 'FREE' });
    // spend most of the month through the shared store (what other API processes would have done)
    const other = createRateLimiter({ store: 'postgres', sql: t.db.sql, log: createLogger('silent'), registry: new client.Registry(), keyPrefix: 'carebase:rl' });
    try {
      await other.consume(builtInPolicies(DEFAULT_SETTINGS).apiKey.free.month, k.apiKey.id, 9_999);
    } finally {
      await other.close();
    }
    expect((await t.gql('{ myPermissions }', {}, apiKeyHeader(k.key))).status).toBe(200);
    const limited = await t.gql('{ myPermissions }', {}, apiKeyHeader(k.key));
    expect(limited.status).toBe(429);
    expect(limited.body.errors?.[0]?.extensions?.policy).toBe('apikey-free-month');
    const now = new Date();
    const secondsToNextMonth = (Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1) - now.getTime()) / 1000;
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(secondsToNextMonth - 120);
    expect(Number(limited.headers.get('retry-after'))).toBeLessThanOrEqual(Math.ceil(secondsToNextMonth) + 1);
  });

  it('moving a key to another tier changes its quota', async () => {
    const k = await createKey(adminA, { permissions: ['patient:read'], tier: 'FREE' });
    const res = await t.gql<{ setApiKeyTier: { tier: string } }>('mutation($id: UUID!) { setApiKeyTier(id: $id, tier: ENTERPRISE) { tier } }', { id: k.apiKey.id }, adminA.headers);
    expect(res.body.data?.setApiKeyTier.tier).toBe('ENTERPRISE');
    const used = await t.gql('{ myPermissions }', {}, apiKeyHeader(k.key));
    expect(used.headers.get('ratelimit-policy')).toContain('3000;w=60');
  });

  it('lists the tiers', async () => {
    const res = await t.gql<{ apiKeyTiers: { tier: string; perMinute: number; perMonth: number }[] }>('{ apiKeyTiers { tier perMinute perMonth } }', {}, adminA.headers);
    expect(res.body.data?.apiKeyTiers).toEqual([
      { tier: 'FREE', perMinute: 60, perMonth: 10_000 },
      { tier: 'STANDARD', perMinute: 600, perMonth: 1_000_000 },
      { tier: 'ENTERPRISE', perMinute: 3_000, perMonth: 50_000_000 },
    ]);
  });
});

describe('tenant isolation', () => {
  it("another tenant's key ids are refused in every mutation and never listed", async () => {
    const k = await createKey(adminA, { permissions: ['patient:read'] });
    const before = (await t.db.owner`select revoked_at, tier from api_keys where id = ${k.apiKey.id}`)[0];
    const revoke = await t.gql('mutation($id: UUID!) { revokeApiKey(id: $id) { id } }', { id: k.apiKey.id }, adminB.headers);
    expect(revoke.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    const tier = await t.gql('mutation($id: UUID!) { setApiKeyTier(id: $id, tier: FREE) { id } }', { id: k.apiKey.id }, adminB.headers);
    expect(tier.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect((await t.db.owner`select revoked_at, tier from api_keys where id = ${k.apiKey.id}`)[0]).toEqual(before);
    const listed = await t.gql<{ apiKeys: { id: string }[] }>('{ apiKeys(includeRevoked: true) { id } }', {}, adminB.headers);
    expect(listed.body.data?.apiKeys.map((x) => x.id)).not.toContain(k.apiKey.id);
    // and the key itself acts only inside its tenant
    const res = await t.gql<{ myPermissions: string[] }>('{ myPermissions }', {}, apiKeyHeader(k.key));
    expect(res.status).toBe(200);
  });
});
