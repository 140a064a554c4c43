import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { invitePlatformAdmin, PLATFORM_TENANT_ID } from '../../../src/modules/identity/index.js';
import { modules as allModules } from '../../../src/modules/index.js';
import { AuthScopeError, ROLES, rootOperations, USER_ROLES, type RootOperation } from '../../../src/platform/access/index.js';
import { buildSchema, permissionCatalog, type ModuleManifest } from '../../../src/schema/index.js';

/** The permission table of the app as src/modules/index.ts composes it (the platform's and every module's vocabulary). */
const catalog = permissionCatalog(allModules);
const permissionsForRoles = (roles: readonly string[]) => catalog.forRoles(roles);
const API_CLIENT = [...catalog.ofRole('API_CLIENT')];
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { acceptInvitation, createUser, loginAs, strongPassword, type TestTenant, type TestUser } from '../../helpers/auth.js';
import { accessTestEnv, createTenant, signedIn } from './fixtures.js';
import { probeOperation, scopesAllow, type Caller } from './matrix.js';

/**
 * Runs every Query and Mutation field of the schema (enumerated from the
 * schema, so a new field is covered without touching this file) as every
 * role, as an anonymous caller and as an API key holding everything API
 * keys may hold, and compares allow/deny with the permission table.
 */

let t: TestApp;
let tenant: TestTenant;
let apiKey: string;

interface Subject {
  name: string;
  caller: Caller;
  headers: Record<string, string>;
  /** signs in again (a probed mutation such as logout may end the session) */
  relogin?: () => Promise<Record<string, string>>;
}
const subjects: Subject[] = [];

beforeAll(async () => {
  // the app exactly as src/modules/index.ts composes it
  t = await startTestApp({ modules: allModules, env: accessTestEnv });
  tenant = await createTenant(t);
  for (const role of USER_ROLES) {
    let user: TestUser;
    if (role === 'PLATFORM_ADMIN') {
      // exists only in the platform tenant, always together with ADMIN there
      const email = `matrix-platform-${randomUUID().slice(0, 8)}@example.test`;
      const p = await invitePlatformAdmin(t.db.sql, { email });
      const password = strongPassword();
      await acceptInvitation(t, p.invitationToken, password);
      user = { id: p.adminUserId, tenantId: PLATFORM_TENANT_ID, tenantSlug: 'platform', email, password, roles: ['PLATFORM_ADMIN'], recoveryCodes: [] };
    } else {
      user = await createUser(t, tenant, [role]);
    }
    const session = await loginAs(t, user);
    subjects.push({
      name: role,
      caller: { authenticated: true, user: true, permissions: permissionsForRoles(user.roles) },
      headers: session.headers,
      relogin: async () => (await loginAs(t, user)).headers,
    });
  }
  subjects.push({ name: 'anonymous', caller: { authenticated: false, user: false, permissions: new Set() }, headers: {} });
  // an API key with every permission a key may hold (created through the API by an admin who holds them all)
  const creator = await signedIn(t, tenant, ['ADMIN', 'PROVIDER', 'BILLING']);
  const res = await t.gql<{ createApiKey: { key: string; apiKey: { permissions: string[] } } }>(
    'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { key apiKey { permissions } } }',
    { input: { name: 'matrix', permissions: API_CLIENT, tier: 'ENTERPRISE' } },
    creator.headers,
  );
  expect(res.body.errors).toBeUndefined();
  apiKey = res.body.data!.createApiKey.key;
  expect(new Set(res.body.data!.createApiKey.apiKey.permissions)).toEqual(new Set(API_CLIENT));
  subjects.push({ name: 'API key', caller: { authenticated: true, user: false, permissions: new Set(API_CLIENT) }, headers: { authorization: `ApiKey ${apiKey}` } });
});
afterAll(async () => {
  await t?.close();
});

type GqlErrors = { message: string; path?: unknown[]; extensions?: Record<string, unknown> }[] | undefined;

/**
 * How the root field answered: refused by scope-auth (the builder's
 * unauthorizedError: FORBIDDEN "Not allowed" for a principal, UNAUTHENTICATED
 * "Authentication required" for an anonymous caller; scope-auth never refuses
 * a public field), or refused with UNAUTHENTICATED by its resolver although
 * the scopes admitted the caller, or answered (data or another error, e.g.
 * NOT_FOUND for the placeholder ids).
 */
function outcome(errors: GqlErrors, field: string, caller: Caller, isPublic: boolean): 'denied' | 'resolver-unauthenticated' | 'answered' {
  const e = errors?.find((x) => x.path?.[0] === field);
  if (!e) return 'answered';
  const code = e.extensions?.code;
  if (caller.authenticated) {
    if (code === 'FORBIDDEN' && e.message === 'Not allowed') return 'denied';
    if (code === 'UNAUTHENTICATED' && !isPublic) return 'resolver-unauthenticated';
    return 'answered';
  }
  if (!isPublic && code === 'UNAUTHENTICATED' && e.message === 'Authentication required') return 'denied';
  return 'answered';
}

describe('permission matrix', () => {
  it('every root field, as every role, anonymous and an API key, is allowed exactly as the permission table says', async () => {
    const ops = rootOperations(t.app.schema).filter((o) => o.type !== 'subscription');
    expect(ops.length).toBeGreaterThan(5);
    const mismatches: string[] = [];
    const table: Record<string, string[]> = {};
    // queries first: mutations may change what later calls see
    const ordered = [...ops.filter((o) => o.type === 'query'), ...ops.filter((o) => o.type === 'mutation')];
    for (const op of ordered) {
      const { query, variables } = probeOperation(op);
      for (const s of subjects) {
        const expected = scopesAllow(op.authScopes, s.caller);
        const res = await t.gql(query, variables, s.headers);
        const requestError = res.body.errors?.find((e) => !e.path);
        if (requestError) {
          mismatches.push(`${op.type} ${op.name} as ${s.name}: request failed (${String(requestError.extensions?.code)}: ${requestError.message})`);
          continue;
        }
        if (op.type === 'mutation' && s.relogin) {
          const still = await t.gql('{ myPermissions }', {}, s.headers);
          if (still.status === 401) s.headers = await s.relogin(); // e.g. logout ended this session
        }
        const isPublic = (op.authScopes as Record<string, unknown> | undefined)?.public === true;
        const got = outcome(res.body.errors, op.name, s.caller, isPublic);
        if (got === 'resolver-unauthenticated') {
          // e.g. a field about the caller's own session declared { authenticated: true } that refuses API keys: declare { user: true }
          mismatches.push(`${op.type} ${op.name} as ${s.name}: admitted by its authScopes, then refused UNAUTHENTICATED by the resolver`);
          continue;
        }
        const allowed = got === 'answered';
        if (allowed !== expected) mismatches.push(`${op.type} ${op.name} as ${s.name}: expected ${expected ? 'allow' : 'deny'}, got ${allowed ? 'allowed' : 'denied'}`);
        if (allowed) (table[`${op.type} ${op.name}`] ??= []).push(s.name);
      }
    }
    expect(mismatches).toEqual([]);

    // anchors: the evaluator and the table agree with what the issue asks for
    expect(table['mutation createApiKey']).toEqual(['ADMIN']);
    expect(table['mutation invokeBreakGlass']).toEqual(['PROVIDER', 'NURSE']);
    expect(table['mutation endBreakGlass']).toEqual(['PROVIDER', 'NURSE', 'COMPLIANCE']);
    expect(table['query breakGlassGrants']).toEqual(['COMPLIANCE']);
    expect(table['query myPermissions']).toEqual([...USER_ROLES, 'API key']);
    expect(table['query serverInfo']).toEqual([...USER_ROLES, 'anonymous', 'API key']);
    // nothing but public fields is open to anonymous callers
    const anonymous = Object.entries(table).filter(([, who]) => who.includes('anonymous')).map(([op]) => op);
    const publicOps = ops.filter((o) => (o.authScopes as Record<string, unknown>)?.public === true).map((o) => `${o.type} ${o.name}`);
    expect(anonymous.sort()).toEqual(publicOps.sort());
  }, 300_000);

  it('every permission the schema requires exists in the table, and every role grants only known permissions', () => {
    for (const role of ROLES) {
      for (const p of catalog.ofRole(role)) expect(catalog.isPermission(p), `${role} ${p}`).toBe(true);
    }
    expect(permissionsForRoles(['NOT_A_ROLE']).size).toBe(0);
    // the platform declares no module's names: permissions of modules that do not exist are unknown
    for (const p of ['rx:read', 'claims:read', 'appointment:read']) expect(catalog.isPermission(p), p).toBe(false);
    // a module may grant only its own permissions, and a name is declared once
    const identity = allModules.find((m) => m.name === 'identity')!;
    expect(() => permissionCatalog([identity, { ...identity, name: 'copy', permissions: { permissions: { 'user:read': 'again' } } }])).toThrow(/declared by identity and copy/);
    expect(() => permissionCatalog([identity, { ...identity, name: 'greedy', permissions: { permissions: {}, roles: { ADMIN: ['user:read'] } } }])).toThrow(/does not declare/);
  });
});

describe('deny by default at build time', () => {
  const probe = (fields: (b: Parameters<NonNullable<ModuleManifest['schema']>>[0]) => void): ModuleManifest => ({
    name: 'probe',
    phase: 0,
    description: 'probe',
    dependsOn: [],
    // built alone: the probe declares the permissions its fields name (as the patients and audit modules do)
    permissions: { permissions: { 'patient:read': 'probe', 'audit:export': 'probe' } },
    schema: fields,
  });

  it('a root field without authScopes stops the schema build', () => {
    const open = probe((b) => b.queryField('openField', (t) => t.string({ resolve: () => 'x' })));
    expect(() => buildSchema([open])).toThrow(AuthScopeError);
    expect(() => buildSchema([open])).toThrow(/query openField declares no authScopes/);
    const mutation = probe((b) => b.mutationField('openMutation', (t) => t.string({ resolve: () => 'x' })));
    expect(() => buildSchema([mutation])).toThrow(/mutation openMutation declares no authScopes/);
  });

  it('a root field requiring a permission that is not in the table stops the build', () => {
    const typo = probe((b) => b.queryField('typo', (t) => t.string({ authScopes: { permission: 'patient:raed' }, resolve: () => 'x' })));
    expect(() => buildSchema([typo])).toThrow(/requires unknown permission "patient:raed"/);
    const nested = probe((b) =>
      b.queryField('nested', (t) => t.string({ authScopes: { $any: { permission: 'patient:read', $all: { permission: 'nope' } } }, resolve: () => 'x' })),
    );
    expect(() => buildSchema([nested])).toThrow(/unknown permission "nope"/);
  });

  it('the probe generator covers a new field without changes here', () => {
    const extra = probe((b) =>
      b.mutationField('probeField', (t) => t.string({ authScopes: { permission: 'audit:export' }, args: { id: t.arg({ type: 'UUID', required: true }) }, resolve: () => randomUUID() })),
    );
    const ops = rootOperations(buildSchema([extra]));
    const op = ops.find((o) => o.name === 'probeField') as RootOperation;
    expect(probeOperation(op).query).toBe('mutation Probe_probeField($id: UUID!) { probeField(id: $id) }');
    expect(scopesAllow(op.authScopes, { authenticated: true, user: true, permissions: permissionsForRoles(['COMPLIANCE']) })).toBe(true);
    expect(scopesAllow(op.authScopes, { authenticated: true, user: true, permissions: permissionsForRoles(['ADMIN']) })).toBe(false);
  });
});

describe('authorization before validation', () => {
  it('an unauthorised caller is refused before its arguments are checked (no validation rules leak)', async () => {
    const bad = { input: { patientId: randomUUID(), reason: 'short', durationMinutes: 999 } };
    const q = 'mutation($input: InvokeBreakGlassInput!) { invokeBreakGlass(input: $input) { id } }';
    expect((await t.gql(q, bad)).body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect((await t.gql(q, bad, (await signedIn(t, tenant, ['FRONT_DESK'])).headers)).body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    // an authorised caller gets the validation error
    expect((await t.gql(q, bad, (await signedIn(t, tenant, ['NURSE'])).headers)).body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });
});
