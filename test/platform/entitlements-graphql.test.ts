/**
 * Entitlements on GraphQL fields a module adds to another module's types (not only its root fields), and the
 * audit of a GraphQL entitlement refusal (a security event, like a refusal at a route), over HTTP.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModuleManifest } from '../../src/schema/index.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createTenant, signTestToken, testAuthModule } from '../helpers/realtime.js';

interface Clinic {
  id: string;
}

/** a core module (always entitled) with a type other modules extend */
const host: ModuleManifest = {
  name: 'host',
  phase: 0,
  description: 'test-only: a core module with an extensible type',
  dependsOn: [],
  entitlement: null,
  permissions: { permissions: { 'host:read': 'Read the host' }, roles: {} },
  schema: (builder) => {
    builder.objectRef<Clinic>('HostClinic').implement({ fields: (t) => ({ id: t.exposeID('id') }) });
    builder.queryField('hostClinic', (t) => t.field({ type: 'HostClinic' as never, authScopes: { permission: 'host:read' }, resolve: () => ({ id: 'c1' }) as never }));
  },
};

/** a module behind its own entitlement that adds fields to the host's type (by name and by ref) */
const guest: ModuleManifest = {
  name: 'guest',
  phase: 0,
  description: "test-only: adds fields to another module's type",
  dependsOn: [],
  permissions: { permissions: { 'guest:read': 'Read guest data' }, roles: {} },
  schema: (builder) => {
    builder.objectField('HostClinic' as never, 'guestNote', (t) => (t as { string(o: unknown): unknown }).string({ nullable: true, resolve: () => 'guest data' }) as never);
    builder.objectFields('HostClinic' as never, (t) => ({ guestCount: (t as { int(o: unknown): unknown }).int({ nullable: true, resolve: () => 3 }) as never }));
  },
};

let db: TestDatabase;
let t: TestApp;
let entitled: string;
let unentitled: string;

beforeAll(async () => {
  db = await createTestDatabase();
  entitled = await createTenant(db.sql);
  unentitled = await createTenant(db.sql);
  await db.owner`insert into tenant_entitlements (tenant_id, modules) values (${unentitled}, '{}')`;
  t = await startTestApp({ db, modules: [testAuthModule, host, guest] });
}, 60_000);

afterAll(async () => {
  await t?.close();
  await db?.drop();
});

const headers = async (tenantId: string, requestId: string) => ({
  authorization: `Bearer ${await signTestToken({ userId: randomUUID(), tenantId, permissions: ['host:read', 'guest:read'] })}`,
  'x-request-id': requestId,
});

describe('fields a module adds to another module\'s type', () => {
  it('answer for an entitled tenant', async () => {
    const res = await t.gql<{ hostClinic: { id: string; guestNote: string; guestCount: number } }>('{ hostClinic { id guestNote guestCount } }', {}, await headers(entitled, randomUUID()));
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data?.hostClinic).toEqual({ id: 'c1', guestNote: 'guest data', guestCount: 3 });
  });

  it('answer FEATURE_NOT_ENTITLED for a tenant without the module, the host fields still answer, and the refusal is audited once per field', async () => {
    const requestId = randomUUID();
    const res = await t.gql<{ hostClinic: { id: string } | null }>('{ hostClinic { id guestNote guestCount } }', {}, await headers(unentitled, requestId));
    const codes = (res.body.errors ?? []).map((e) => [e.path?.join('.'), e.extensions?.code]);
    expect(codes).toEqual(
      expect.arrayContaining([
        ['hostClinic.guestNote', 'FEATURE_NOT_ENTITLED'],
        ['hostClinic.guestCount', 'FEATURE_NOT_ENTITLED'],
      ]),
    );
    // the host's own query alone is untouched
    const own = await t.gql<{ hostClinic: { id: string } }>('{ hostClinic { id } }', {}, await headers(unentitled, randomUUID()));
    expect(own.body.data?.hostClinic).toEqual({ id: 'c1' });
    // durable before the answer: a security event per refused field
    const rows = await db.owner<{ event_type: string; action: string; outcome: string; tenant_id: string; detail: Record<string, unknown> }[]>`
      select event_type, action, outcome, tenant_id, detail from audit_events where request_id = ${requestId} and action = 'feature_not_entitled' order by seq`;
    expect(rows.map((r) => [r.event_type, r.outcome, r.tenant_id, r.detail.feature, r.detail.field]).sort()).toEqual([
      ['security', 'denied', unentitled, 'guest', 'HostClinic.guestCount'],
      ['security', 'denied', unentitled, 'guest', 'HostClinic.guestNote'],
    ]);
  });
});
