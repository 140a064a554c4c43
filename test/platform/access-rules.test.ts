import { afterEach, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import { createAccessScope, type AccessPrincipal, type AccessRule } from '../../src/platform/access/index.js';
import type { Db } from '../../src/platform/db/index.js';

// One access scope (as a module creates one); each test adds its own rules and removes them.
const scope = createAccessScope<string>({ resource: 'record', permission: (a) => `record:${a}` });
const registerPatientAccessRule = scope.addPerId.bind(scope);
const checkPatientAccess = scope.check.bind(scope);
const off: (() => void)[] = [];
afterEach(() => off.splice(0).forEach((f) => f()));

const principal: AccessPrincipal = { kind: 'user', id: 'u1', tenantId: 't1', roles: ['FRONT_DESK'], permissions: new Set(['record:read']) };
const db = {} as Db;

function counted(vote: 'allow' | 'deny' | 'abstain', async: boolean) {
  const rule = Object.assign((() => (rule.calls++, async ? Promise.resolve(vote) : vote)) as any, { calls: 0 });
  return rule as ((...a: unknown[]) => 'allow' | 'deny' | 'abstain' | Promise<'allow' | 'deny' | 'abstain'>) & { calls: number };
}

describe('access scope: allow-only rules', () => {
  it('skips an allow-only rule when another rule allowed synchronously', async () => {
    const tenantWide = counted('allow', false);
    const breakGlass = counted('allow', true);
    off.push(registerPatientAccessRule('t.tenantWide', tenantWide), registerPatientAccessRule('t.breakGlass', breakGlass, { allowOnly: true }));
    expect(await checkPatientAccess(principal, 'p1', 'read', db)).toEqual({ allowed: true, outcome: 'allow', rule: 't.tenantWide' });
    expect(breakGlass.calls).toBe(0);
  });

  it('runs allow-only rules when nothing allowed at once, and a deny still wins over them', async () => {
    const abstain = counted('abstain', false);
    const careTeam = counted('allow', true);
    off.push(registerPatientAccessRule('t.abstain', abstain), registerPatientAccessRule('t.careTeam', careTeam, { allowOnly: true }));
    expect(await checkPatientAccess(principal, 'p1', 'read', db)).toEqual({ allowed: true, outcome: 'allow', rule: 't.careTeam' });
    expect(careTeam.calls).toBe(1);

    const self = counted('deny', true);
    off.push(registerPatientAccessRule('t.self', self));
    expect(await checkPatientAccess(principal, 'p1', 'read', db)).toEqual({ allowed: false, outcome: 'deny', rule: 't.self' });
  });

  it('a synchronous allow does not skip a rule that may deny', async () => {
    const tenantWide = counted('allow', false);
    const self = counted('deny', true);
    off.push(registerPatientAccessRule('t.tenantWide', tenantWide), registerPatientAccessRule('t.self', self));
    expect((await checkPatientAccess(principal, 'p1', 'read', db)).outcome).toBe('deny');
    expect(self.calls).toBe(1);
  });

  it('re-registering a name drops the old rule from the allow-only set', async () => {
    const first = counted('allow', true);
    off.push(registerPatientAccessRule('t.same', first, { allowOnly: true }));
    const second = counted('abstain', true);
    off.push(registerPatientAccessRule('t.same', second), registerPatientAccessRule('t.tenantWide', counted('allow', false)));
    await checkPatientAccess(principal, 'p1', 'read', db);
    expect(second.calls).toBe(1);
  });
});

describe('access scope: one rule definition gives the per-id check and the SQL for lists', () => {
  const dialect = new PgDialect();
  const render = (q: ReturnType<typeof scope.where>) => (q === undefined ? undefined : dialect.sqlToQuery(q).sql);
  const tenantWide: AccessRule = { name: 't.tenantWide', vote: (p) => (p.roles.includes('FRONT_DESK') ? 'allow' : 'abstain') };
  const team: AccessRule = { name: 't.team', allowOnly: true, vote: (p) => ({ allowIf: (id) => sql`exists (select 1 from team where record_id = ${id} and user_id = ${p.id})` }) };
  const own: AccessRule = { name: 't.own', vote: (p) => (p.roles.includes('PATIENT') ? { allowIf: (id) => sql`${id} = ${p.id}`, denyUnless: (id) => sql`${id} = ${p.id}` } : 'abstain') };
  const nurse: AccessPrincipal = { ...principal, roles: ['NURSE'] };
  const patient: AccessPrincipal = { ...principal, roles: ['PATIENT'] };
  const rows = (row: Record<string, unknown>) => ({ execute: async () => [row] }) as unknown as Db;

  it('a tenant-wide allow needs no query and no list condition', async () => {
    off.push(scope.add(tenantWide), scope.add(team), scope.add(own));
    expect(await checkPatientAccess(principal, 'p1', 'read', db)).toEqual({ allowed: true, outcome: 'allow', rule: 't.tenantWide' });
    expect(scope.where(principal, 'read', sql`r.id`)).toBeUndefined();
    expect(render(scope.where({ ...principal, permissions: new Set() }, 'read', sql`r.id`))).toBe('false');
  });

  it('conditions run as one query per id, and as the same conditions over the id column for lists', async () => {
    off.push(scope.add(tenantWide), scope.add(team), scope.add(own));
    expect(await checkPatientAccess(nurse, 'p1', 'read', rows({ a0: true, r0: null, d0: false }))).toEqual({ allowed: true, outcome: 'allow', rule: 't.team' });
    expect(await checkPatientAccess(nurse, 'p1', 'read', rows({ a0: false, r0: null, d0: false }))).toEqual({ allowed: false, outcome: 'default' });
    expect(render(scope.where(nurse, 'read', sql`r.id`))).toBe('exists (select 1 from team where record_id = r.id and user_id = $1)');
    // a rule that denies everything outside its condition wins over any allow
    expect(await checkPatientAccess(patient, 'p1', 'read', rows({ a0: true, r0: null, d0: false, a1: false, r1: null, d1: true }))).toEqual({ allowed: false, outcome: 'deny', rule: 't.own' });
    expect(render(scope.where(patient, 'read', sql`r.id`))).toBe('(r.id = $1 and (exists (select 1 from team where record_id = r.id and user_id = $2) or r.id = $3))');
  });

  it('a per-id rule has no SQL form: lists refuse to use the scope', () => {
    off.push(registerPatientAccessRule('t.perId', () => 'abstain'));
    expect(() => scope.where(principal, 'read', sql`r.id`)).toThrow(/no SQL form/);
  });
});
