import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importPatientsCsv } from '../../../src/modules/patients/index.js';
import { dropLegacySsn, encryptLegacySsn, verifyLegacySsn } from '../../../src/modules/patients/legacy-ssn.js';
import { createDbIndexKeyStore, createFieldCrypto, LocalKeyProvider, type FieldCrypto } from '../../../src/platform/crypto/index.js';
import { createLogger } from '../../../src/platform/logger.js';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.js';

/**
 * Legacy CSV import (resumable, row errors by line, encrypts on the way in,
 * never logs values), the CLI end to end, and the migration of an existing
 * plaintext SSN column (encrypt, verify, drop).
 */

const run = promisify(execFile);
let db: TestDatabase;
let dir: string;
let crypto: FieldCrypto;
let tenantId: string;
const lines: string[] = [];
const log = createLogger(
  'info',
  new Writable({
    write(chunk, _e, cb) {
      lines.push(String(chunk));
      cb();
    },
  }),
);

async function tenant(slug: string): Promise<string> {
  const id = randomUUID();
  await db.owner`insert into tenants (id, slug, name) values (${id}, ${slug}, ${`Clinic ${slug}`})`;
  return id;
}

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'carebase-import-'));
  crypto = createFieldCrypto({ provider: LocalKeyProvider.open({ dataDir: dir, isProduction: false }), indexKeys: createDbIndexKeyStore(db.sql) });
  tenantId = await tenant(`import-${randomUUID().slice(0, 8)}`);
});
afterAll(async () => {
  crypto?.close();
  await db?.drop();
  await fs.rm(dir, { recursive: true, force: true });
});

const HEADER = 'given_name,family_name,date_of_birth,ssn,phone_mobile,email,address_line1,city,state,postal_code';
// physical lines: 1 header, 2.., line 6 spans lines 6-7 (quoted newline in the address)
const ROWS = [
  'Ada,Lovelace,1915-12-10,111-22-3333,+442071234567,ada@example.test,1 Analytical Way,London,,E1 6AN', // 2 (GB postcode: country defaults to US -> invalid zip)
  'Alan,Turing,1912-06-23,222-33-4444,415-555-0101,alan@example.test,2 Bletchley Rd,Oakland,CA,94607', // 3 ok
  'Grace,Hopper,1906-12-09,000-12-3456,,grace@example.test,,,,', // 4 invalid ssn area
  'Edsger,Dijkstra,1930-02-31,333-44-5555,,,,,,', // 5 invalid date
  'Barbara,Liskov,1939-11-07,444-55-6666,,barbara@example.test,"3 Abstraction Ave\nSuite 9",Boston,MA,02139', // 6-7 ok (multi-line)
  'Donald,Knuth,1938-01-10,555-66-7777,,not-an-email,,,,', // 8 invalid email
  'Alan,Turing-Copy,1912-06-23,222-33-4444,,,,,,', // 9 duplicate SSN of line 3
  'Frances,Allen,1932-08-04,,,,,,,', // 10 ok, no SSN
  'Niklaus,Wirth,1934-02-15,666-77-8888,,,,,,', // 11 invalid ssn area 666
  'Radia,Perlman,1951-12-18,777-88-9999,+1 (650) 555-0199,,,,,', // 12 ok
];
const PLAINTEXT = ['111-22-3333', '222-33-4444', '444-55-6666', '555-66-7777', '777-88-9999', '333-44-5555', '666-77-8888', '000-12-3456'];

describe('CSV import', () => {
  let file: string;
  beforeAll(async () => {
    file = path.join(dir, 'legacy.csv');
    await fs.writeFile(file, `${HEADER}\n${ROWS.join('\n')}\n`);
  });

  it('imports in batches, resumes after an interruption at the checkpoint, reports row errors by line', async () => {
    const first = await importPatientsCsv({ sql: db.sql, crypto, tenantId, file, log, batchSize: 3, maxBatches: 1 });
    expect(first.status).toBe('running');
    expect(first.checkpointLine).toBe(4); // rows on lines 2-4
    const afterFirst = (await db.owner<{ n: number }[]>`select count(*)::int as n from patients where tenant_id = ${tenantId}`)[0]!.n;
    expect(afterFirst).toBe(1); // Turing (Lovelace's postcode and Hopper's SSN are refused)

    const second = await importPatientsCsv({ sql: db.sql, crypto, tenantId, file, log, batchSize: 3 });
    expect(second).toMatchObject({ status: 'completed', resumed: true, checkpointLine: 12, imported: 4, rejected: 6 });
    expect(second.errors.map((e) => [e.line, e.field])).toEqual([
      [2, 'postal_code'],
      [4, 'ssn'],
      [5, 'date_of_birth'],
      [8, 'email'],
      [9, 'ssn'],
      [11, 'ssn'],
    ]);
    expect(second.errors.find((e) => e.line === 9)?.code).toMatch(/duplicate/);

    const rows = await db.owner<{ family_name: string; mrn: string; ssn: Buffer | null; ssn_index: Buffer | null; phone_digits: string[]; address: { line1: string } | null }[]>`
      select family_name, mrn, ssn, ssn_index, phone_digits, address from patients where tenant_id = ${tenantId} order by family_name`;
    expect(rows.map((r) => r.family_name)).toEqual(['Allen', 'Liskov', 'Perlman', 'Turing']);
    expect(rows.find((r) => r.family_name === 'Liskov')?.address?.line1).toBe('3 Abstraction Ave Suite 9');
    expect(rows.find((r) => r.family_name === 'Perlman')?.phone_digits).toEqual(['16505550199']);
    expect(rows.find((r) => r.family_name === 'Allen')?.ssn).toBeNull();
    // SSNs went in encrypted, with their blind index, and decrypt back
    const turing = rows.find((r) => r.family_name === 'Turing')!;
    expect(turing.ssn_index).not.toBeNull();
    expect(await crypto.decrypt(turing.ssn!, { tenantId, table: 'patients', column: 'ssn' })).toBe('222334444');
    expect(new Set(rows.map((r) => r.mrn)).size).toBe(4);

    // running the same file again changes nothing
    const again = await importPatientsCsv({ sql: db.sql, crypto, tenantId, file, log });
    expect(again).toMatchObject({ status: 'completed', imported: 4 });
    const n = (await db.owner<{ n: number }[]>`select count(*)::int as n from patients where tenant_id = ${tenantId}`)[0]!.n;
    expect(n).toBe(4);
    const events = await db.owner<{ n: number }[]>`select count(*)::int as n from outbox where type = 'patient.created' and tenant_id = ${tenantId}`;
    expect(events[0]!.n).toBe(4);
  });

  it('never logs or stores a value: logs and the error report hold line numbers, columns and rules only', async () => {
    const text = lines.join('');
    expect(text).toContain('patients import');
    const [imp] = await db.owner<{ errors: unknown }[]>`select errors from patient_imports where tenant_id = ${tenantId}`;
    const stored = JSON.stringify(imp!.errors);
    for (const v of [...PLAINTEXT, ...PLAINTEXT.map((s) => s.replace(/-/g, '')), 'Lovelace', 'not-an-email', '1930-02-31', 'E1 6AN']) {
      expect(text).not.toContain(v);
      expect(stored).not.toContain(v);
    }
  });

  it('a malformed CSV stops with the line and CSV error code, keeping the good rows before it; --continue picks up after them', async () => {
    const t2 = await tenant(`import-${randomUUID().slice(0, 8)}`);
    const bad = path.join(dir, 'bad.csv');
    await fs.writeFile(bad, `${HEADER}\nOk,One,1970-01-01,,,,,,,\nBroken,"Quote,1970-01-01,,,,,,,\n`);
    const r = await importPatientsCsv({ sql: db.sql, crypto, tenantId: t2, file: bad, log });
    expect(r.status).toBe('failed');
    expect(r.errors.at(-1)?.code).toMatch(/^malformed CSV \(CSV_/);
    expect(JSON.stringify(r.errors)).not.toContain('Broken');
    const fixed = path.join(dir, 'fixed.csv');
    await fs.writeFile(fixed, `${HEADER}\nOk,One,1970-01-01,,,,,,,\nFixed,Quote,1970-01-01,,,,,,,\n`);
    const c = await importPatientsCsv({ sql: db.sql, crypto, tenantId: t2, file: fixed, log, continueImportId: r.importId });
    expect(c).toMatchObject({ status: 'completed', imported: 2 });
    const names = await db.owner<{ given_name: string }[]>`select given_name from patients where tenant_id = ${t2} order by given_name`;
    expect(names.map((x) => x.given_name)).toEqual(['Fixed', 'Ok']);
  });

  it('npm run patients:import works end to end (CLI) and refuses an unknown column', async () => {
    const slug = `cli-${randomUUID().slice(0, 8)}`;
    const t3 = await tenant(slug);
    const csv = path.join(dir, 'cli.csv');
    await fs.writeFile(csv, `${HEADER}\nMary,Jackson,1921-04-09,123-12-1234,,,,,,\n`);
    const env = { ...process.env, DATABASE_URL: db.ownerUrl, DATABASE_APP_URL: db.appUrl, DATA_DIR: dir, LOG_LEVEL: 'info', KMS_KEY_ID: '' };
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/modules/patients/cli.ts', 'import', '--tenant', slug, csv], { env });
    expect(stdout).toMatch(/completed; imported 1, rejected 0/);
    expect(stdout).not.toContain('123-12-1234');
    const n = (await db.owner<{ n: number }[]>`select count(*)::int as n from patients where tenant_id = ${t3} and ssn is not null`)[0]!.n;
    expect(n).toBe(1);
    const badHeader = path.join(dir, 'cli-bad.csv');
    await fs.writeFile(badHeader, 'given_name,family_name,date_of_birth,favourite_colour\nA,B,1970-01-01,blue\n');
    const failed = await run(process.execPath, ['--import', 'tsx', 'src/modules/patients/cli.ts', 'import', '--tenant', slug, badHeader], { env }).catch((e: { code: number; stderr: string }) => e);
    expect((failed as { code: number }).code).toBe(1);
    expect((failed as { stderr: string }).stderr).toMatch(/unknown columns favourite_colour/);
  }, 120_000);
});

describe('migrating a plaintext SSN column', () => {
  let t4: string;
  const legacy = ['321-65-4987', '432-76-5198', '543-87-6219'];
  beforeAll(async () => {
    t4 = await tenant(`legacy-${randomUUID().slice(0, 8)}`);
    await db.owner.unsafe('alter table patients add column legacy_ssn text');
    for (const [i, ssn] of legacy.entries()) {
      await db.owner.begin(async (tx) => {
        await tx`select set_config('app.tenant_id', ${t4}, true)`;
        await tx`insert into patients (tenant_id, mrn, given_name, family_name, date_of_birth, legacy_ssn)
                 values (${t4}, ${`9${String(i).padStart(6, '0')}0`}, 'Legacy', ${`Row${'abc'[i]}`}, '1960-01-01', ${ssn})`;
      });
    }
    // one value that is not a valid SSN
    await db.owner.begin(async (tx) => {
      await tx`select set_config('app.tenant_id', ${t4}, true)`;
      await tx`insert into patients (tenant_id, mrn, given_name, family_name, date_of_birth, legacy_ssn) values (${t4}, '99999990', 'Legacy', 'Invalid', '1960-01-01', '999-99-9999')`;
    });
  });

  it('encrypt (resumable, idempotent), verify, refuse to drop while anything is off, then drop', async () => {
    const opts = { owner: db.owner, crypto, column: 'legacy_ssn', batchSize: 2 };
    const e1 = await encryptLegacySsn(opts);
    expect(e1).toMatchObject({ encrypted: 3, invalid: 1 });
    expect((await encryptLegacySsn(opts)).encrypted).toBe(0); // nothing left to do
    const v1 = await verifyLegacySsn(opts);
    expect(v1).toMatchObject({ checked: 4, missing: 1, mismatched: 0 });
    expect((await dropLegacySsn(opts)).dropped).toBe(false);
    // a tampered envelope is caught by verify
    await db.owner`update patients p set ssn_last4 = q.ssn_last4 from patients q where p.family_name = 'Rowa' and q.family_name = 'Rowb' and p.tenant_id = ${t4} and q.tenant_id = ${t4}`;
    expect((await verifyLegacySsn(opts)).mismatched).toBe(1);
    // fix: a person corrects the invalid value, the tampered row is re-encrypted
    await db.owner`update patients set legacy_ssn = '654-32-1987' where family_name = 'Invalid' and tenant_id = ${t4}`;
    await db.owner`update patients set ssn = null, ssn_last4 = null, ssn_index = null where family_name = 'Rowa' and tenant_id = ${t4}`;
    expect((await encryptLegacySsn(opts)).encrypted).toBe(2);
    expect(await verifyLegacySsn(opts)).toMatchObject({ checked: 4, missing: 0, mismatched: 0 });
    const d = await dropLegacySsn({ ...opts, vacuum: true });
    expect(d).toMatchObject({ dropped: true, vacuumed: true });
    const cols = await db.owner`select 1 from information_schema.columns where table_name = 'patients' and column_name = 'legacy_ssn'`;
    expect(cols).toHaveLength(0);
    // the data is still there, encrypted, and searchable by blind index
    const rows = await db.owner<{ ssn: Buffer; tenant_id: string }[]>`select ssn, tenant_id from patients where tenant_id = ${t4} order by family_name`;
    const plain = await Promise.all(rows.map((r) => crypto.decrypt(r.ssn, { tenantId: t4, table: 'patients', column: 'ssn' })));
    expect(plain.sort()).toEqual(['321654987', '432765198', '543876219', '654321987']);
    // and no table holds the plaintext any more (COPY of every table, as the dump's data section)
    let text = '';
    for (const tb of await db.owner<{ n: string }[]>`select tablename as n from pg_tables where schemaname = 'public'`) {
      const chunks: Buffer[] = [];
      for await (const c of await db.owner.unsafe(`copy (select * from "${tb.n}") to stdout`).readable()) chunks.push(c as Buffer);
      text += Buffer.concat(chunks).toString('utf8');
    }
    expect(text).toContain('Legacy');
    for (const s of [...legacy, '654-32-1987']) expect(text).not.toContain(s);
  });
});
