import { afterEach, describe, expect, it } from 'vitest';
import { checkPatientAccess, registerPatientAccessRule, type AccessPrincipal } from '../../src/platform/access/index.js';
import type { Db } from '../../src/platform/db/index.js';

// The rule registry is process-wide: each test registers its own rules and removes them.
const off: (() => void)[] = [];
afterEach(() => off.splice(0).forEach((f) => f()));

const principal: AccessPrincipal = { kind: 'user', id: 'u1', tenantId: 't1', roles: ['FRONT_DESK'], permissions: new Set(['patient:read']) };
const db = {} as Db;

function counted(vote: 'allow' | 'deny' | 'abstain', async: boolean) {
  const rule = Object.assign((() => (rule.calls++, async ? Promise.resolve(vote) : vote)) as any, { calls: 0 });
  return rule as ((...a: unknown[]) => 'allow' | 'deny' | 'abstain' | Promise<'allow' | 'deny' | 'abstain'>) & { calls: number };
}

describe('patient access rules: allow-only rules', () => {
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
