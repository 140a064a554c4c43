import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmsTestServer } from '../../../src/platform/crypto/index.js';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { adminSession, createTenantWithAdmin, userSession, type AuthSession } from '../../helpers/auth.js';
import { basePatient, CREATE, firstError, GET, gqlAs, ok, patientModules, patientTestEnv, REVEAL, SEARCH } from './helpers.js';

/**
 * The real AWS SDK path: the app's key provider is AWS KMS pointed at the KMS
 * test server (KMS_KEY_ID + KMS_ENDPOINT, credentials from the environment).
 * Creates and reveals through it, dumps the database and finds no SSN,
 * and a KMS outage refuses a create with KMS_UNAVAILABLE writing nothing.
 */

const run = promisify(execFile);
let t: TestApp;
let kms: KmsTestServer;
let frontDesk: AuthSession;
let billing: AuthSession;
const SSNS = ['456-78-9012', '457-18-2093', '458-28-3174'];

beforeAll(async () => {
  kms = await KmsTestServer.start();
  // the SDK's default credential chain reads these (the test server accepts any SigV4 signature)
  process.env.AWS_ACCESS_KEY_ID = 'test';
  process.env.AWS_SECRET_ACCESS_KEY = 'test';
  t = await startTestApp({ modules: patientModules, env: { ...patientTestEnv, KMS_KEY_ID: kms.defaultKey.arn, KMS_ENDPOINT: kms.endpoint, AWS_REGION: 'us-east-1' } });
  const clinic = await createTenantWithAdmin(t);
  await adminSession(t, clinic); // one sign-in (TOTP enrolment) before the parallel invitations
  [frontDesk, billing] = await Promise.all([userSession(t, clinic, 'FRONT_DESK'), userSession(t, clinic, 'BILLING')]);
}, 180_000);

afterAll(async () => {
  await t?.close();
  await kms?.close();
});

/** pg_dump of the test database when a pg_dump as new as the server exists, else COPY of every table (what the dump's data section holds). */
async function dumpDatabase(): Promise<{ method: string; text: string }> {
  const [server] = await t.db.owner<{ v: number }[]>`select current_setting('server_version_num')::int / 10000 as v`;
  const dirs = fs.existsSync('/usr/lib/postgresql') ? fs.readdirSync('/usr/lib/postgresql').map((v) => `/usr/lib/postgresql/${v}/bin/pg_dump`) : [];
  for (const bin of [process.env.PG_DUMP, 'pg_dump', ...dirs].filter((b): b is string => !!b)) {
    try {
      const { stdout: version } = await run(bin, ['--version']);
      const major = Number(/(\d+)(\.\d+)?/.exec(version)?.[1]);
      if (major >= server!.v) {
        const { stdout } = await run(bin, ['--no-owner', '--dbname', t.db.ownerUrl], { maxBuffer: 256 * 1024 * 1024 });
        return { method: `${bin} (${major})`, text: stdout };
      }
    } catch {
      // not installed here
    }
  }
  const client = postgres(t.db.ownerUrl, { max: 1, onnotice: () => undefined });
  let text = '';
  try {
    const tables = await client<{ schema: string; name: string }[]>`
      select schemaname as schema, tablename as name from pg_tables where schemaname not in ('pg_catalog', 'information_schema')`;
    for (const tb of tables) {
      const chunks: Buffer[] = [];
      for await (const chunk of await client.unsafe(`copy (select * from "${tb.schema}"."${tb.name}") to stdout`).readable()) chunks.push(chunk as Buffer);
      text += `-- ${tb.schema}.${tb.name}\n${Buffer.concat(chunks).toString('utf8')}`;
    }
    return { method: `COPY of ${tables.length} tables`, text };
  } finally {
    await client.end({ timeout: 1 });
  }
}

describe('patients on AWS KMS (test server)', () => {
  const ids: string[] = [];

  it('creates patients with SSNs through KMS envelopes and reveals one', async () => {
    for (const ssn of SSNS) {
      const p = ok(await gqlAs(t, frontDesk.headers)<{ createPatient: { id: string; ssnLast4: string } }>(CREATE, { input: basePatient({ ssn }) })).createPatient;
      expect(p.ssnLast4).toBe(ssn.slice(-4));
      ids.push(p.id);
    }
    expect(kms.callCount('GenerateDataKey')).toBeGreaterThan(0);
    // one data key serves many values (cache), not one KMS call per SSN
    expect(kms.callCount('GenerateDataKey')).toBeLessThan(SSNS.length * 3);
    const r = ok(await gqlAs(t, billing.headers)<{ revealPatientSsn: { ssn: string } }>(REVEAL, { patientId: ids[1], purpose: 'HPAYMT', reason: 'payer requires the SSN on the claim' }));
    expect(r.revealPatientSsn.ssn).toBe(SSNS[1]);
    const found = ok(await gqlAs(t, frontDesk.headers)<{ patients: { edges: { node: { id: string } }[] } }>(SEARCH, { filter: { ssn: SSNS[2] } })).patients.edges;
    expect(found.map((e) => e.node.id)).toEqual([ids[2]]);
    // the envelopes name the KMS key
    const [row] = await t.db.owner<{ ssn: Buffer }[]>`select ssn from patients where id = ${ids[0]!}`;
    expect(row!.ssn.toString('latin1')).toContain(kms.defaultKey.arn);
  });

  it('a database dump holds no SSN (formatted, digits, hex or base64) and the last 4 digits only as envelopes', async ({ annotate }) => {
    const { method, text } = await dumpDatabase();
    await annotate(`dump method: ${method}`);
    expect(text).toContain('patients'); // the dump is real
    expect(text).toContain('Ångström'); // names are plaintext on purpose (search); the dump holds table data
    const forms = (v: string) => [v, Buffer.from(v).toString('hex'), Buffer.from(v).toString('base64')];
    for (const ssn of SSNS) {
      for (const secret of [ssn, ssn.replace(/-/g, '')]) for (const f of forms(secret)) expect(text).not.toContain(f);
    }
    // no plaintext last4 column either: every ssn_last4 is an envelope
    const rows = await t.db.owner<{ l: Buffer }[]>`select ssn_last4 as l from patients where ssn_last4 is not null`;
    expect(rows.length).toBe(SSNS.length);
    for (const r of rows) expect(r.l.length).toBeGreaterThan(100);
  });

  it('KMS down: creating a patient with an SSN in a new tenant is KMS_UNAVAILABLE and writes nothing', async () => {
    const other = await createTenantWithAdmin(t);
    const desk = await userSession(t, other, 'FRONT_DESK');
    kms.setDown(true);
    let res;
    try {
      res = await gqlAs(t, desk.headers)(CREATE, { input: basePatient({ ssn: '459-38-4255' }) });
    } finally {
      kms.setDown(false);
    }
    expect(firstError(res).extensions?.code).toBe('KMS_UNAVAILABLE');
    expect(JSON.stringify(res.body)).not.toContain('459-38-4255');
    const [c] = await t.db.owner<{ n: number; counters: number }[]>`
      select (select count(*)::int from patients where tenant_id = ${other.id}) as n,
             (select count(*)::int from patient_mrn_counters where tenant_id = ${other.id}) as counters`;
    expect(c).toEqual({ n: 0, counters: 0 });
    // back up: the same create works
    const p = ok(await gqlAs(t, desk.headers)<{ createPatient: { id: string } }>(CREATE, { input: basePatient({ ssn: '459-38-4255' }) })).createPatient;
    expect(ok(await gqlAs(t, desk.headers)<{ patient: { ssnLast4: string } }>(GET, { id: p.id })).patient.ssnLast4).toBe('4255');
    expect(t.logText()).not.toContain('459-38-4255');
  });
});
