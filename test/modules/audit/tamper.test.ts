import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import auditModule from '../../../src/modules/audit/index.js';
import identityModule from '../../../src/modules/identity/index.js';
import { auditWriterFor, checkpointKeys, principalEvent, verifyAllTenants } from '../../../src/platform/audit/index.js';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { appendEvents, asDba, asHeader, createTenant, testAuthModule } from './fixtures.js';
import { QUIET_ENV } from './fixtures.js';

let t: TestApp;

/** A fresh tenant with n events in its chain. */
async function tenantWithEvents(n: number): Promise<string> {
  const tenantId = await createTenant(t.db.owner);
  await appendEvents(t.db.sql, tenantId, n);
  return tenantId;
}

const tamper = (tenantId: string, fn: (tx: typeof t.db.owner) => Promise<unknown>) => asDba(t.db.owner, tenantId, fn);

async function verifyOverGraphql(tenantId: string) {
  const res = await t.gql<{ verifyAuditIntegrity: { ok: boolean; brokenAt: { seq: number; reason: string } | null } }>(
    '{ verifyAuditIntegrity { ok checked brokenAt { seq eventId reason } } }',
    undefined,
    asHeader({ id: randomUUID(), tenantId, roles: ['COMPLIANCE'], permissions: ['audit:read'], amr: ['pwd', 'otp'] }),
  );
  expect(res.body.errors).toBeUndefined();
  return res.body.data!.verifyAuditIntegrity;
}

beforeAll(async () => {
  t = await startTestApp({ env: QUIET_ENV, modules: [identityModule, testAuthModule, auditModule] });
});
afterAll(async () => {
  await t?.close();
});

describe('tamper resistance', () => {
  it('the app role can only append: UPDATE, DELETE, TRUNCATE and direct partition access are refused', async () => {
    const tenantId = await tenantWithEvents(3);
    const asApp = (q: (tx: typeof t.db.sql) => Promise<unknown>) =>
      t.db.sql.begin(async (tx) => {
        await tx`select set_config('app.tenant_id', ${tenantId}, true)`;
        return q(tx as unknown as typeof t.db.sql);
      });
    await expect(asApp((tx) => tx`update audit_events set action = 'nothing' where tenant_id = ${tenantId}`)).rejects.toMatchObject({ code: '42501' });
    await expect(asApp((tx) => tx`delete from audit_events where tenant_id = ${tenantId}`)).rejects.toMatchObject({ code: '42501' });
    await expect(asApp((tx) => tx`truncate audit_events`)).rejects.toMatchObject({ code: '42501' });
    const [part] = await t.db.owner<{ name: string }[]>`
      select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'audit_events'::regclass limit 1`;
    await expect(asApp((tx) => tx.unsafe(`select * from audit_partitions.${part!.name}`))).rejects.toMatchObject({ code: '42501' });
    // and it sees only its own tenant
    const [n] = await asApp((tx) => tx<{ n: number }[]>`select count(*)::int as n from audit_events`) as { n: number }[];
    expect(n!.n).toBe(3);
  });

  it('the triggers refuse UPDATE, DELETE and TRUNCATE even for the owner', async () => {
    const tenantId = await tenantWithEvents(2);
    await expect(t.db.owner`update audit_events set action = 'nothing' where tenant_id = ${tenantId}`).rejects.toThrow(/append-only/);
    await expect(t.db.owner`delete from audit_events where tenant_id = ${tenantId}`).rejects.toThrow(/append-only/);
    await expect(t.db.owner`truncate audit_events`).rejects.toThrow(/append-only/);
    const [part] = await t.db.owner<{ name: string }[]>`
      select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'audit_events'::regclass limit 1`;
    await expect(t.db.owner.unsafe(`truncate audit_partitions.${part!.name}`)).rejects.toThrow(/append-only/);
    const [row] = await t.db.owner<{ n: number }[]>`select count(*)::int as n from audit_events where tenant_id = ${tenantId}`;
    expect(row!.n).toBe(2);
  });

  it('rows chained by the database verify in Node, whatever their text (quotes, backslashes, unicode, many at once)', async () => {
    const tenantId = await createTenant(t.db.owner);
    const actor = { kind: 'user' as const, id: randomUUID(), tenantId, roles: ['PROVIDER', 'NURSE'] };
    const tricky = ['"quoted" \\ back\\slash', 'Zoë Ñúñez 患者 🩺', 'line\nbreak\ttab', "it's {json: [1]}", '\u00e9 literal', ''];
    const writer = auditWriterFor(t.db.sql);
    // one batch of many events (one append call) and several single ones, with text in every free-form column
    await writer.append(
      tricky.map((s, i) =>
        principalEvent(actor, { requestId: `req-${s}`, ip: '::1', userAgent: s }, { eventType: 'phi', action: 'read', outcome: 'allowed', resourceType: 'Patient', resourceId: s, patientId: randomUUID(), fields: [`Patient.${s}`, 'Patient.name'], operationName: s, detail: { note: s, n: i, ok: i % 2 === 0, none: null } }),
      ),
    );
    for (const s of tricky) {
      await writer.append([principalEvent(actor, { userAgent: s }, { eventType: 'security', action: 'login.success', outcome: 'allowed', resourceType: 'User', detail: { [s || 'empty']: s } })]);
    }
    const report = await verifyOverGraphql(tenantId);
    expect(report).toMatchObject({ ok: true, checked: tricky.length * 2, brokenAt: null });
  });

  it('detects a changed row (first broken link: HASH_MISMATCH at its seq)', async () => {
    const tenantId = await tenantWithEvents(5);
    expect(await verifyOverGraphql(tenantId)).toMatchObject({ ok: true, brokenAt: null });
    await tamper(tenantId, (tx) => tx`update audit_events set actor_id = 'someone-else' where tenant_id = ${tenantId} and seq = 3`);
    expect(await verifyOverGraphql(tenantId)).toMatchObject({ ok: false, brokenAt: { seq: 3, reason: 'HASH_MISMATCH' } });
  });

  it('detects a deleted row (SEQ_GAP)', async () => {
    const tenantId = await tenantWithEvents(5);
    await tamper(tenantId, (tx) => tx`delete from audit_events where tenant_id = ${tenantId} and seq = 2`);
    expect(await verifyOverGraphql(tenantId)).toMatchObject({ ok: false, brokenAt: { seq: 2, reason: 'SEQ_GAP' } });
  });

  it('detects reordered rows (PREV_HASH_MISMATCH)', async () => {
    const tenantId = await tenantWithEvents(5);
    await tamper(tenantId, async (tx) => {
      await tx`update audit_events set seq = -1 where tenant_id = ${tenantId} and seq = 2`;
      await tx`update audit_events set seq = 2 where tenant_id = ${tenantId} and seq = 3`;
      await tx`update audit_events set seq = 3 where tenant_id = ${tenantId} and seq = -1`;
    });
    expect(await verifyOverGraphql(tenantId)).toMatchObject({ ok: false, brokenAt: { seq: 2, reason: 'PREV_HASH_MISMATCH' } });
  });

  it('detects removed newest rows (TAIL_MISSING) and a recomputed row hash (next link breaks)', async () => {
    const tail = await tenantWithEvents(4);
    await tamper(tail, (tx) => tx`delete from audit_events where tenant_id = ${tail} and seq = 4`);
    expect(await verifyOverGraphql(tail)).toMatchObject({ ok: false, brokenAt: { seq: 4, reason: 'TAIL_MISSING' } });

    // a forger who fixes the changed row's own hash still breaks the link to the next row
    const forged = await tenantWithEvents(4);
    await tamper(forged, (tx) => tx`update audit_events set hash = sha256(hash) where tenant_id = ${forged} and seq = 2`);
    const r = await verifyOverGraphql(forged);
    expect(r.ok).toBe(false);
    expect(r.brokenAt?.seq).toBe(2);
  });

  it('npm run audit:verify reports each tenant and exits non-zero on a broken chain', async () => {
    const reports = await verifyAllTenants(t.db.owner, checkpointKeys(t.app.config).trusted);
    expect(reports.filter((r) => !r.ok).length).toBe(5);
    const run = promisify(execFile);
    const env = { ...process.env, DATABASE_URL: t.db.ownerUrl, DATABASE_APP_URL: t.db.appUrl, LOG_LEVEL: 'error', NODE_ENV: 'test' };
    const err = await run('node', ['--import', 'tsx', 'src/cli/audit-verify.ts'], { env }).then(
      () => null,
      (e: { code: number; stdout: string }) => e,
    );
    expect(err?.code).toBe(2);
    const lines = err!.stdout.trim().split('\n').map((l) => JSON.parse(l) as { ok?: boolean; broken?: number; brokenAt?: { reason: string } });
    expect(lines.at(-1)).toMatchObject({ broken: 5 });
    expect(lines.filter((l) => l.brokenAt).map((l) => l.brokenAt!.reason).sort()).toEqual(
      // the tail tenant now reads SEQ_GAP: verifyAuditIntegrity is itself audited, so a new row followed the hole
      ['HASH_MISMATCH', 'HASH_MISMATCH', 'PREV_HASH_MISMATCH', 'SEQ_GAP', 'SEQ_GAP'].sort(),
    );
  });

  it('an event naming several patients (patient_ids) verifies, and adding, dropping or moving one of its patients breaks the chain there', async () => {
    const edits = [
      (tx: typeof t.db.owner, id: string) => tx`update audit_events set patient_ids = patient_ids[1:2] where tenant_id = ${id} and seq = 2`,
      (tx: typeof t.db.owner, id: string) => tx`update audit_events set patient_ids = array_append(patient_ids, gen_random_uuid()) where tenant_id = ${id} and seq = 2`,
      // the same event rewritten as a single-patient one (v1 form), and a single-patient one given a second patient
      (tx: typeof t.db.owner, id: string) => tx`update audit_events set patient_id = patient_ids[1], patient_ids = '{}' where tenant_id = ${id} and seq = 2`,
      (tx: typeof t.db.owner, id: string) => tx`update audit_events set patient_ids = array[patient_id, gen_random_uuid()], patient_id = null where tenant_id = ${id} and seq = 1`,
    ];
    for (const edit of edits) {
      const tenantId = await createTenant(t.db.owner);
      const actor = { kind: 'user' as const, id: randomUUID(), tenantId, roles: ['PROVIDER'] };
      const read = (patientId: string | null, patientIds?: string[]) => ({
        ...principalEvent(actor, { requestId: randomUUID() }, { eventType: 'phi', action: 'read', outcome: 'allowed', resourceType: 'Patient', patientId, fields: ['Patient.name'] }),
        ...(patientIds ? { patientIds } : {}),
      });
      const page = [randomUUID(), randomUUID(), randomUUID()].sort();
      await auditWriterFor(t.db.sql).append([read(randomUUID()), read(null, page), read(randomUUID())]);
      expect(await verifyOverGraphql(tenantId)).toMatchObject({ ok: true, checked: 3, brokenAt: null });
      await tamper(tenantId, (tx) => edit(tx, tenantId));
      const seq = edit === edits[3] ? 1 : 2;
      expect(await verifyOverGraphql(tenantId)).toMatchObject({ ok: false, brokenAt: { seq, reason: 'HASH_MISMATCH' } });
    }
  });
});
