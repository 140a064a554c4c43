import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importPatientsCsv } from '../../../src/modules/patients/index.js';
import { createDbIndexKeyStore, createFieldCrypto, LocalKeyProvider, type FieldCrypto } from '../../../src/platform/crypto/index.js';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { adminSession, createTenantWithAdmin, createUser, loginAs, userSession, type AuthSession, type TestTenant } from '../../helpers/auth.js';
import { basePatient, CREATE, firstError, GET, ok, patientModules, patientTestEnv } from './helpers.js';

/**
 * One duplicate rule on every way in: a second patient with the SSN of a
 * patient of the clinic is refused as a possible duplicate (CONFLICT,
 * reason POSSIBLE_DUPLICATE) by createPatient and by the CSV import alike;
 * createPatient goes ahead when the caller states why (audited), and the
 * records are merged with mergePatients (audited, outbox event, the merged
 * id points to the survivor).
 */

let t: TestApp;
let clinic: TestTenant;
let other: TestTenant;
let desk: AuthSession;
let provider: AuthSession;
let otherDesk: AuthSession;
let crypto: FieldCrypto;
let dir: string;

const SSN = '372-41-9086';
const REASON = 'Twin brother registered at the same visit, confirmed by ID';
type P = { id: string; version: number; status: string; mergedInto: string | null };

const countPatients = async (tenantId: string) => (await t.db.owner<{ n: number }[]>`select count(*)::int as n from patients where tenant_id = ${tenantId}`)[0]!.n;

beforeAll(async () => {
  t = await startTestApp({ modules: patientModules, env: patientTestEnv });
  clinic = await createTenantWithAdmin(t);
  other = await createTenantWithAdmin(t);
  await Promise.all([adminSession(t, clinic), adminSession(t, other)]);
  [desk, otherDesk] = await Promise.all([userSession(t, clinic, 'FRONT_DESK'), userSession(t, other, 'FRONT_DESK')]);
  provider = await loginAs(t, await createUser(t, clinic, 'PROVIDER'));
  // the import runs outside the API (CLI / job) with the app's keys: same data dir, same blind-index keys
  crypto = createFieldCrypto({ provider: LocalKeyProvider.open({ dataDir: t.app.config.dataDir, isProduction: false }), indexKeys: createDbIndexKeyStore(t.db.sql) });
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'carebase-dup-'));
}, 120_000);
afterAll(async () => {
  crypto?.close();
  await t?.close();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

describe('possible duplicates', () => {
  let first: P;

  it('createPatient refuses a second patient with the same SSN in one clinic: CONFLICT POSSIBLE_DUPLICATE, nothing written', async () => {
    first = ok(await t.gql<{ createPatient: P }>(CREATE, { input: basePatient({ ssn: SSN }) }, desk.headers)).createPatient;
    const before = await countPatients(clinic.id);
    const again = await t.gql(CREATE, { input: basePatient({ givenName: 'Zoe', ssn: '372419086' }) }, desk.headers);
    expect(firstError(again).extensions).toMatchObject({ code: 'CONFLICT', reason: 'POSSIBLE_DUPLICATE', field: 'ssn', existingPatientId: first.id });
    expect(JSON.stringify(again.body)).not.toContain('9086');
    // a caller who may not read the existing record is told there is one, not which
    const byProvider = await t.gql(CREATE, { input: basePatient({ ssn: SSN }) }, provider.headers);
    expect(firstError(byProvider).extensions).toMatchObject({ code: 'CONFLICT', reason: 'POSSIBLE_DUPLICATE', existingPatientId: null });
    expect(await countPatients(clinic.id)).toBe(before);
    // another clinic is another register
    ok(await t.gql(CREATE, { input: basePatient({ ssn: SSN }) }, otherDesk.headers));
  });

  it('the CSV import applies the same rule: the row is refused as POSSIBLE_DUPLICATE', async () => {
    const file = path.join(dir, 'dup.csv');
    await fs.writeFile(file, `given_name,family_name,date_of_birth,ssn\nZoe,Angstrom,1984-02-29,${SSN}\nNew,Person,1990-05-06,\n`);
    const log = t.app.log;
    const res = await importPatientsCsv({ sql: t.db.sql, crypto, tenantId: clinic.id, file, log });
    expect(res).toMatchObject({ status: 'completed', imported: 1, rejected: 1 });
    expect(res.errors).toEqual([{ line: 2, field: 'ssn', code: expect.stringMatching(/^POSSIBLE_DUPLICATE/) }]);
  });

  it('createPatient goes ahead with a stated reason: the override is kept for compliance and audited (ids only)', async () => {
    const short = await t.gql(CREATE, { input: basePatient({ ssn: SSN, duplicateOverrideReason: 'twin' }) }, desk.headers);
    expect(firstError(short).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'duplicateOverrideReason' });
    const second = ok(await t.gql<{ createPatient: P }>(CREATE, { input: basePatient({ givenName: 'Zeb', ssn: SSN, duplicateOverrideReason: REASON }) }, desk.headers)).createPatient;
    expect(second.id).not.toBe(first.id);

    const [override] = await t.db.owner<{ patient_id: string; duplicate_of: string; actor_id: string; reason: string }[]>`
      select patient_id, duplicate_of, actor_id, reason from patient_duplicate_overrides where patient_id = ${second.id}`;
    expect(override).toEqual({ patient_id: second.id, duplicate_of: first.id, actor_id: desk.user.id, reason: REASON });
    const [audit] = await t.db.owner<{ detail: Record<string, unknown>; fields: string[] }[]>`
      select detail, fields from audit_events where patient_id = ${second.id} and action = 'create'`;
    expect(audit!.detail).toMatchObject({ duplicateOverride: true, possibleDuplicateOf: first.id });
    expect(audit!.fields).toContain('Patient.duplicateOverrideReason');
    const [event] = await t.db.owner<{ payload: Record<string, unknown> }[]>`select payload from outbox where type = 'patient.created' and aggregate_id = ${second.id}`;
    expect(event!.payload).toEqual({ patientId: second.id, possibleDuplicateOf: first.id });
    // the reason text is evidence for compliance: never in the audit log, events or logs
    const everywhere = JSON.stringify(await t.db.owner`select detail from audit_events where tenant_id = ${clinic.id}`) + JSON.stringify(event) + t.logText();
    expect(everywhere).not.toContain('Twin brother');
  });

  it('mergePatients folds the duplicate into the survivor: audited with its reason kept, outbox event, the merged id points to the survivor', async () => {
    const dup = ok(await t.gql<{ createPatient: P }>(CREATE, { input: basePatient({ givenName: 'Zoey', ssn: SSN, duplicateOverrideReason: REASON }) }, desk.headers)).createPatient;
    const MERGE = 'mutation($input: MergePatientsInput!) { mergePatients(input: $input) { mergedPatientId mergeId patient { id } } }';
    const merged = ok(
      await t.gql<{ mergePatients: { mergedPatientId: string; mergeId: string; patient: { id: string } } }>(
        MERGE,
        { input: { sourceId: dup.id, targetId: first.id, sourceVersion: dup.version, targetVersion: first.version, reason: 'Same person: registered twice at the front desk' } },
        desk.headers,
      ),
    ).mergePatients;
    expect(merged).toMatchObject({ mergedPatientId: dup.id, patient: { id: first.id } });
    const read = ok(await t.gql<{ patient: P }>(GET, { id: dup.id }, desk.headers)).patient;
    expect(read).toMatchObject({ status: 'MERGED', mergedInto: first.id });
    const [row] = await t.db.owner<{ reason: string }[]>`select reason from patient_merges where id = ${merged.mergeId}`;
    expect(row!.reason).toBe('Same person: registered twice at the front desk');
    const [ev] = await t.db.owner<{ payload: Record<string, unknown> }[]>`select payload from outbox where type = 'patient.merged' and aggregate_id = ${first.id}`;
    expect(ev!.payload).toMatchObject({ patientId: first.id, mergedPatientId: dup.id, mergeId: merged.mergeId });
    const audited = await t.db.owner<{ patient_id: string }[]>`select patient_id from audit_events where action = 'update' and fields @> array['Patient.mergedInto'] and patient_id in (${dup.id}, ${first.id})`;
    expect(new Set(audited.map((a) => a.patient_id))).toEqual(new Set([dup.id, first.id]));
    // a merged record is no longer a duplicate candidate; the survivor still is
    const again = await t.gql(CREATE, { input: basePatient({ ssn: SSN }) }, desk.headers);
    expect(firstError(again).extensions).toMatchObject({ reason: 'POSSIBLE_DUPLICATE', existingPatientId: first.id });
  });
});
