import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { createTenantWithAdmin, userSession, type AuthSession } from '../../helpers/auth.js';
import { basePatient, CREATE, patientModules, patientTestEnv } from './helpers.js';

/**
 * A replayed idempotent mutation discloses the same PHI as the original:
 * the replay is audited (durably, before the response) as a read of the same
 * patient and fields, and the stored outcome never leaks its audit summary.
 */
let t: TestApp;
let desk: AuthSession;
beforeAll(async () => {
  t = await startTestApp({ modules: patientModules, env: patientTestEnv });
  const clinic = await createTenantWithAdmin(t);
  desk = await userSession(t, clinic, 'FRONT_DESK');
});
afterAll(async () => {
  await t?.close();
});

describe('idempotent replay of a PHI mutation', () => {
  it('returns the stored patient once more and records an audit event for the replay', async () => {
    const key = `create-${randomUUID()}`;
    const headers = { ...desk.headers, 'idempotency-key': key };
    const first = await t.gql<{ createPatient: { id: string; givenName: string } }>(CREATE, { input: basePatient() }, headers);
    expect(first.body.errors).toBeUndefined();
    const patientId = first.body.data!.createPatient.id;
    const again = await t.gql<{ createPatient: { id: string } }>(CREATE, { input: basePatient() }, headers);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
    expect(JSON.stringify(again.body)).not.toContain('_disclosed');
    const created = await t.db.owner<{ n: number }[]>`select count(*)::int as n from patients where id = ${patientId}`;
    expect(created[0]!.n).toBe(1);
    const replays = await t.db.owner<{ action: string; fields: string[] }[]>`
      select action, fields from audit_events where resource_type = 'IdempotentReplay' and patient_id = ${patientId}`;
    expect(replays).toHaveLength(1);
    expect(replays[0]!.action).toBe('read');
    expect(replays[0]!.fields.length).toBeGreaterThan(0);
  });
});
