import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAccessModule } from '../../../src/modules/access/index.js';
import { modules as allModules } from '../../../src/modules/index.js';
import { AuthScopeError, permissionsForRoles, ROLE_PERMISSIONS, rootOperations, USER_ROLES, type RootOperation } from '../../../src/platform/access/index.js';
import { buildSchema, type ModuleManifest } from '../../../src/schema/index.js';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { createTenant, testIdentity, userHeaders } from './fixtures.js';
import { probeOperation, scopesAllow, type Caller } from './matrix.js';

/**
 * Runs every Query and Mutation field of the schema (enumerated from the
 * schema, so a new field is covered without touching this file) as every
 * role, as an anonymous caller and as an API key holding everything API
 * keys may hold, and compares allow/deny with the permission table.
 */

let t: TestApp;
let tenant: string;
let apiKey: string;

interface Subject {
  name: string;
  caller: Caller;
  headers: Record<string, string>;
}
const subjects: Subject[] = [];

// the real module list, with the test principal stand-in in place of identity until its test helper exists
const modules: ModuleManifest[] = [testIdentity, ...allModules.filter((m) => m.name !== 'identity' && m.name !== 'access'), createAccessModule()];

beforeAll(async () => {
  t = await startTestApp({
    modules,
    env: { RATE_LIMIT_ANON_IP_PER_MINUTE: '100000', RATE_LIMIT_USER_PER_MINUTE: '100000' },
  });
  tenant = await createTenant(t.db.owner);
  for (const role of USER_ROLES) {
    const u = userHeaders(tenant, [role]);
    subjects.push({ name: role, caller: { authenticated: true, permissions: permissionsForRoles([role]) }, headers: u.headers });
  }
  subjects.push({ name: 'anonymous', caller: { authenticated: false, permissions: new Set() }, headers: {} });
  // an API key with every permission a key may hold (created through the API by an admin who holds them all)
  const creator = userHeaders(tenant, ['ADMIN', 'PROVIDER', 'BILLING']);
  const res = await t.gql<{ createApiKey: { key: string; apiKey: { permissions: string[] } } }>(
    'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { key apiKey { permissions } } }',
    { input: { name: 'matrix', permissions: [...ROLE_PERMISSIONS.API_CLIENT], tier: 'ENTERPRISE' } },
    creator.headers,
  );
  expect(res.body.errors).toBeUndefined();
  apiKey = res.body.data!.createApiKey.key;
  expect(new Set(res.body.data!.createApiKey.apiKey.permissions)).toEqual(new Set(ROLE_PERMISSIONS.API_CLIENT));
  subjects.push({ name: 'API key', caller: { authenticated: true, permissions: new Set(ROLE_PERMISSIONS.API_CLIENT) }, headers: { authorization: `ApiKey ${apiKey}` } });
});
afterAll(async () => {
  await t?.close();
});

/** A refusal by scope-auth (the builder's unauthorizedError), as opposed to an error of the resolver. */
function refusedByScopes(errors: { message: string; path?: unknown[]; extensions?: Record<string, unknown> }[] | undefined, field: string) {
  const e = errors?.find((x) => x.path?.[0] === field);
  if (!e) return undefined;
  if (e.extensions?.code === 'UNAUTHENTICATED' && e.message === 'Authentication required') return 'UNAUTHENTICATED';
  if (e.extensions?.code === 'FORBIDDEN' && e.message === 'Not allowed') return 'FORBIDDEN';
  return undefined;
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
        const refused = refusedByScopes(res.body.errors, op.name);
        const allowed = refused === undefined;
        if (allowed !== expected) mismatches.push(`${op.type} ${op.name} as ${s.name}: expected ${expected ? 'allow' : 'deny'}, got ${refused ?? 'allowed'}`);
        if (!allowed && refused !== (s.caller.authenticated ? 'FORBIDDEN' : 'UNAUTHENTICATED')) {
          mismatches.push(`${op.type} ${op.name} as ${s.name}: refused with ${refused}`);
        }
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
  });

  it('every permission the schema requires exists in the table, and every role grants only known permissions', () => {
    for (const [role, perms] of Object.entries(ROLE_PERMISSIONS)) {
      expect(permissionsForRoles([role]).size, role).toBe(new Set(perms).size);
    }
    expect(permissionsForRoles(['NOT_A_ROLE']).size).toBe(0);
  });
});

describe('deny by default at build time', () => {
  const probe = (fields: (b: Parameters<NonNullable<ModuleManifest['schema']>>[0]) => void): ModuleManifest => ({
    name: 'probe',
    phase: 0,
    description: 'probe',
    dependsOn: [],
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
    expect(scopesAllow(op.authScopes, { authenticated: true, permissions: permissionsForRoles(['COMPLIANCE']) })).toBe(true);
    expect(scopesAllow(op.authScopes, { authenticated: true, permissions: permissionsForRoles(['ADMIN']) })).toBe(false);
  });
});

describe('authorization before validation', () => {
  it('an unauthorised caller is refused before its arguments are checked (no validation rules leak)', async () => {
    const bad = { input: { patientId: randomUUID(), reason: 'short', durationMinutes: 999 } };
    const q = 'mutation($input: InvokeBreakGlassInput!) { invokeBreakGlass(input: $input) { id } }';
    expect((await t.gql(q, bad)).body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect((await t.gql(q, bad, userHeaders(tenant, ['FRONT_DESK']).headers)).body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    // an authorised caller gets the validation error
    expect((await t.gql(q, bad, userHeaders(tenant, ['NURSE']).headers)).body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });
});
