import { randomUUID } from 'node:crypto';
import {
  getNamedType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isObjectType,
  isScalarType,
  type GraphQLArgument,
  type GraphQLInputType,
  type GraphQLOutputType,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modules as allModules } from '../../../src/modules/index.js';
import { rootOperations, type RootOperation } from '../../../src/platform/access/index.js';
import { permissionCatalog } from '../../../src/schema/index.js';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { createUser, loginAs, type TestTenant } from '../../helpers/auth.js';
import { accessTestEnv, createTenant, signedIn } from './fixtures.js';
import { sampleValue, scopesAllow } from './matrix.js';

/**
 * Every Query and Mutation field that takes an id (an ID/UUID argument, or an
 * ID/UUID field of an input object, at any depth), enumerated from the
 * schema: called by a user of tenant A who holds every tenant permission,
 * once with a random UUID and once with each real id of tenant B (one row of
 * every tenant-owned table), it must answer NOT_FOUND (a list filtered by
 * such an id: an empty list) and change nothing in either tenant.
 */

let t: TestApp;
let tenantA: TestTenant;
let tenantB: TestTenant;
let headersA: Record<string, string>;
/** real ids of tenant A by argument name, for the id arguments not under test in a call */
const ownIds: Record<string, string> = {};
/** one real id of every tenant-owned table of tenant B */
let foreignIds: { table: string; id: string }[] = [];
let tenantTables: string[] = [];

/** Every tenant role but PATIENT (self scope) and PLATFORM_ADMIN (platform tenant only): every tenant permission. */
const ALL_TENANT_ROLES = ['ADMIN', 'PROVIDER', 'NURSE', 'FRONT_DESK', 'BILLING', 'COMPLIANCE'];

/** The only hand-written values: required (or meaningful optional) non-id arguments the generic sample would not pass. */
const EXPLICIT_ARGS: Record<string, Record<string, unknown>> = {
  revealPatientSsn: { purpose: 'TREAT', reason: 'schema walk: id check of every operation' },
  invokeBreakGlass: { input: { reason: 'schema walk: id check of every operation', durationMinutes: 30 } },
  updatePatient: { version: 1, input: { language: 'en' } },
  mergePatients: { input: { sourceVersion: 1, targetVersion: 1 } },
  setPatientAuditFlag: { flag: 'VIP' },
};

const isIdScalar = (type: GraphQLInputType) => {
  const named = getNamedType(type);
  return isScalarType(named) && (named.name === 'UUID' || named.name === 'ID');
};

/** Paths (argument name, then input field names) of every id inside a field's arguments. */
function idPaths(args: readonly GraphQLArgument[]): { path: string[]; required: boolean }[] {
  const out: { path: string[]; required: boolean }[] = [];
  const walk = (type: GraphQLInputType, path: string[], required: boolean, seen: Set<string>) => {
    if (isIdScalar(type)) {
      out.push({ path, required: required && isNonNullType(type) });
      return;
    }
    const named = getNamedType(type);
    if (!isInputObjectType(named) || seen.has(named.name)) return;
    for (const f of Object.values(named.getFields())) walk(f.type, [...path, f.name], required && isNonNullType(type), new Set([...seen, named.name]));
  };
  for (const a of args) walk(a.type, [a.name], true, new Set());
  return out;
}

/** A value for every required argument (and every id argument): ids of tenant A by name, samples otherwise, then the explicit table. */
function baseVariables(op: RootOperation): Record<string, unknown> {
  const vars: Record<string, unknown> = {};
  const fill = (type: GraphQLInputType, name: string): unknown => {
    if (isIdScalar(type)) return isListType(isNonNullType(type) ? type.ofType : type) ? [ownIds[name] ?? randomUUID()] : (ownIds[name] ?? randomUUID());
    const named = getNamedType(type);
    if (isInputObjectType(named) && !isListType(isNonNullType(type) ? type.ofType : type)) {
      const o: Record<string, unknown> = {};
      for (const f of Object.values(named.getFields())) {
        if ((isNonNullType(f.type) && f.defaultValue === undefined) || isIdScalar(f.type)) o[f.name] = fill(f.type, f.name);
      }
      return o;
    }
    return sampleValue(type);
  };
  for (const a of op.field.args) {
    if ((isNonNullType(a.type) && a.defaultValue === undefined) || idPaths([a]).length) vars[a.name] = fill(a.type, a.name);
  }
  const merge = (target: Record<string, unknown>, extra: Record<string, unknown>) => {
    for (const [k, v] of Object.entries(extra)) {
      if (v && typeof v === 'object' && !Array.isArray(v) && target[k] && typeof target[k] === 'object') merge(target[k] as Record<string, unknown>, v as Record<string, unknown>);
      else target[k] = v;
    }
  };
  merge(vars, EXPLICIT_ARGS[op.name] ?? {});
  return vars;
}

function withValue(vars: Record<string, unknown>, path: string[], value: string): Record<string, unknown> {
  const copy = structuredClone(vars);
  let o = copy;
  for (const k of path.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>;
  const last = path.at(-1)!;
  o[last] = Array.isArray(o[last]) ? [value] : value;
  return copy;
}

function isListResult(type: GraphQLOutputType): boolean {
  const inner = isNonNullType(type) ? type.ofType : type;
  if (isListType(inner)) return true;
  const named = getNamedType(type);
  return isObjectType(named) && 'edges' in named.getFields();
}

function document(op: RootOperation): string {
  const defs = op.field.args.map((a) => `$${a.name}: ${String(a.type)}`).join(', ');
  const args = op.field.args.map((a) => `${a.name}: $${a.name}`).join(', ');
  const named = getNamedType(op.field.type);
  const selection = isObjectType(named) ? ('edges' in named.getFields() ? ' { edges { cursor } }' : ' { __typename }') : '';
  return `${op.type} IdProbe_${op.name}${defs ? `(${defs})` : ''} { ${op.name}${args ? `(${args})` : ''}${selection} }`;
}

/**
 * A digest of the rows of every tenant-owned table of both tenants. Left out: what every call or the background work
 * appends to or updates (audit events with their chain head and inbox, rate-limit counters, session last-seen times,
 * anomaly state and checkpoints, the outbox and security events the relay and the audit drain process). In tables
 * with created_at only rows older than the walk count: the anomaly check may add alerts meanwhile (a call that wrongly
 * succeeded is caught by its answer anyway).
 */
const BACKGROUND = new Set(['audit_events', 'audit_chain_heads', 'audit_inbox', 'rate_limits', 'sessions', 'audit_anomaly_state', 'audit_checkpoints', 'outbox', 'security_events']);
let tablesWithCreatedAt = new Set<string>();
async function snapshot(before: Date): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const table of tenantTables) {
    if (BACKGROUND.has(table)) continue;
    const older = tablesWithCreatedAt.has(table) ? 'and x.created_at < $3' : 'and $3::timestamptz is not null';
    const [row] = await t.db.owner.unsafe<{ d: string }[]>(
      `select md5(coalesce(string_agg(x::text, '|' order by x::text), '')) as d from "${table}" x where tenant_id in ($1, $2) ${older}`,
      [tenantA.id, tenantB.id, before.toISOString()],
    );
    out[table] = row!.d;
  }
  return out;
}

beforeAll(async () => {
  t = await startTestApp({ modules: allModules, env: accessTestEnv });
  tenantA = await createTenant(t);
  tenantB = await createTenant(t);

  // tenant B: one of everything an id can name (through the API, as its own users)
  const everyB = await signedIn(t, tenantB, ALL_TENANT_ROLES);
  const gqlB = async (query: string, variables: Record<string, unknown>) => {
    const res = await t.gql(query, variables, everyB.headers);
    expect(res.body.errors, JSON.stringify(res.body.errors)).toBeUndefined();
    return res.body.data as Record<string, unknown>;
  };
  const patientB = (await gqlB('mutation($i: CreatePatientInput!) { createPatient(input: $i) { id } }', { i: { givenName: 'Bea', familyName: 'Other', dateOfBirth: '1970-01-02' } })).createPatient as { id: string };
  await gqlB('mutation($i: InvokeBreakGlassInput!) { invokeBreakGlass(input: $i) { id } }', { i: { patientId: patientB.id, reason: 'tenant B fixture for the id walk' } });
  await gqlB('mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { key } }', { i: { name: 'b-key', permissions: ['patient:read'] } });
  await gqlB('mutation($p: UUID!) { setPatientAuditFlag(patientId: $p, flag: EMPLOYEE) }', { p: patientB.id });
  await t.db.owner`insert into audit_alerts (tenant_id, rule, severity, window_start, window_end, event_count, detail)
                   values (${tenantB.id}, 'HIGH_VOLUME', 'medium', now() - interval '1 hour', now(), 1, '{}'::jsonb)`;

  // tenant A: the caller, and real ids for the id arguments not under test
  const everyA = await createUser(t, tenantA, ALL_TENANT_ROLES);
  headersA = (await loginAs(t, everyA)).headers;
  // a PATIENT user: the one kind of user every operation taking a userId accepts (care team: role OTHER; account link)
  const otherA = await createUser(t, tenantA, ['PATIENT']);
  const patientA = await t.gql<{ createPatient: { id: string } }>('mutation($i: CreatePatientInput!) { createPatient(input: $i) { id } }', { i: { givenName: 'Al', familyName: 'Own', dateOfBirth: '1980-03-04' } }, headersA);
  Object.assign(ownIds, { userId: otherA.id, patientId: patientA.body.data!.createPatient.id, targetId: patientA.body.data!.createPatient.id });

  tenantTables = (
    await t.db.owner<{ table_name: string }[]>`
      select c.table_name from information_schema.columns c join information_schema.tables tb using (table_schema, table_name)
       where c.table_schema = 'public' and c.column_name = 'tenant_id' and tb.table_type = 'BASE TABLE' order by 1`
  ).map((r) => r.table_name);
  const withId = await t.db.owner<{ table_name: string }[]>`
    select table_name from information_schema.columns where table_schema = 'public' and column_name = 'id' and data_type = 'uuid'
       and table_name = any(${tenantTables}::text[]) order by 1`;
  tablesWithCreatedAt = new Set(
    (await t.db.owner<{ table_name: string }[]>`select table_name from information_schema.columns where table_schema = 'public' and column_name = 'created_at'`).map((r) => r.table_name),
  );
  foreignIds = [];
  for (const { table_name: table } of withId) {
    const rows = await t.db.owner.unsafe<{ id: string }[]>(`select id from "${table}" where tenant_id = $1 order by id limit 1`, [tenantB.id]);
    if (rows[0]) foreignIds.push({ table, id: rows[0].id });
  }
}, 120_000);
afterAll(async () => {
  await t?.close();
});

describe('every id-taking operation, walked from the schema', () => {
  it("answers NOT_FOUND (lists: nothing) for a random id and for each of another tenant's real ids, and changes nothing", async () => {
    // the fixtures cover the kinds of ids operations take
    expect(foreignIds.map((f) => f.table)).toEqual(expect.arrayContaining(['patients', 'users', 'break_glass_grants', 'api_keys', 'audit_alerts', 'sessions']));
    const caller = { authenticated: true, user: true, permissions: permissionCatalog(allModules).forRoles(ALL_TENANT_ROLES) };
    const ops = rootOperations(t.app.schema).filter((o) => o.type !== 'subscription' && idPaths(o.field.args).length > 0);
    const probed: string[] = [];
    const notHeld: string[] = [];
    const problems: string[] = [];
    const probedIds: string[] = [];
    const walkStart = new Date();
    const before = await snapshot(walkStart);
    for (const op of [...ops.filter((o) => o.type === 'query'), ...ops.filter((o) => o.type === 'mutation')]) {
      if (typeof op.authScopes !== 'object' || !scopesAllow(op.authScopes, caller)) {
        notHeld.push(op.name);
        continue;
      }
      probed.push(op.name);
      const base = baseVariables(op);
      const query = document(op);
      for (const { path, required } of idPaths(op.field.args)) {
        for (const probe of [{ table: 'random', id: randomUUID() }, ...foreignIds]) {
          probedIds.push(probe.id);
          const res = await t.gql<Record<string, unknown>>(query, withValue(base, path, probe.id), headersA);
          const label = `${op.type} ${op.name}(${path.join('.')}) with ${probe.table === 'random' ? 'a random id' : `tenant B's ${probe.table}.id`}`;
          const err = res.body.errors?.[0];
          if (isListResult(op.field.type) && !required) {
            // an optional id that filters a list: the documented equivalent of NOT_FOUND is an empty list
            const value = res.body.data?.[op.name] as unknown[] | { edges: unknown[] } | undefined;
            const items = Array.isArray(value) ? value : value?.edges;
            if (err || !items || items.length > 0) problems.push(`${label}: expected an empty list, got ${JSON.stringify(res.body).slice(0, 200)}`);
          } else if (err?.extensions?.code !== 'NOT_FOUND') {
            problems.push(`${label}: expected NOT_FOUND, got ${JSON.stringify(res.body).slice(0, 200)}`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
    expect(await snapshot(walkStart)).toEqual(before);
    // no id of the walk (none is a patient of tenant A) became a "patient accessed" row in tenant A's audit log: the
    // report of such an id (auditEvents filter.patientId) once recorded one, and the next report of it found that row
    const named = await t.db.owner<{ patient_id: string; resource_type: string | null; action: string }[]>`
      select distinct patient_id, resource_type, action from audit_events where tenant_id = ${tenantA.id} and patient_id = any(${probedIds}::uuid[])`;
    expect(named).toEqual([]);
    // the walk reached the operations the end-to-end client found (a schema change cannot silently drop one)
    expect(probed).toEqual(expect.arrayContaining(['setPatientAuditFlag', 'patient', 'updatePatient', 'mergePatients', 'revealPatientSsn', 'invokeBreakGlass', 'endBreakGlass', 'revokeApiKey', 'acknowledgeAuditAlert', 'setUserRoles']));
    expect(notHeld).toEqual([]);
  }, 300_000);
});
