import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDbIndexKeyStore,
  createFieldCrypto,
  KmsTestServer,
  normalisers,
  type FieldCrypto,
} from '../../../src/platform/crypto/index.js';
import { withTenant } from '../../../src/platform/db/index.js';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.js';
import { createFixtures, testPatients } from './db-fixtures.js';
import { freshMetrics, kmsProvider } from './helpers.js';

const run = promisify(execFile);

let db: TestDatabase;
let server: KmsTestServer;
let fc: FieldCrypto;
let tenantId: string;
const marker = `control-${randomUUID()}`; // stored in plain text on purpose: proves the dump holds table data
const secrets = { ssn: '987-65-4321', dateOfBirth: '1961-07-04' };

beforeAll(async () => {
  db = await createTestDatabase();
  server = await KmsTestServer.start();
  [tenantId] = (await createFixtures(db, 1)) as [string];
  const metrics = freshMetrics();
  fc = createFieldCrypto({ provider: kmsProvider(server, { metrics }), indexKeys: createDbIndexKeyStore(db.sql), metrics });
});
afterAll(async () => {
  fc?.close();
  fc?.provider.close();
  await server?.close();
  await db?.drop();
});

/** Major version of a pg_dump binary, or undefined if it cannot run. */
async function pgDumpMajor(bin: string): Promise<number | undefined> {
  try {
    const { stdout } = await run(bin, ['--version']);
    return Number(/(\d+)(\.\d+)?/.exec(stdout)?.[1]);
  } catch {
    return undefined;
  }
}

/**
 * A dump of the whole test database: pg_dump when one on this machine is as
 * new as the server (pg_dump refuses older), else the same data pg_dump's
 * data section holds: the text form of every row of every table.
 */
async function dumpDatabase(): Promise<{ method: string; text: string }> {
  const [server] = await db.owner<{ v: number }[]>`select current_setting('server_version_num')::int / 10000 as v`;
  const dirs = fs.existsSync('/usr/lib/postgresql') ? fs.readdirSync('/usr/lib/postgresql').map((v) => `/usr/lib/postgresql/${v}/bin/pg_dump`) : [];
  for (const bin of [process.env.PG_DUMP, 'pg_dump', ...dirs].filter((b): b is string => !!b)) {
    const major = await pgDumpMajor(bin);
    if (major && major >= server!.v) {
      const { stdout } = await run(bin, ['--no-owner', '--dbname', db.ownerUrl], { maxBuffer: 256 * 1024 * 1024 });
      return { method: `${bin} (${major})`, text: stdout };
    }
  }
  const client = postgres(db.ownerUrl, { max: 1, onnotice: () => undefined });
  let text = '';
  let count = 0;
  try {
    const tables = await client<{ schema: string; name: string }[]>`
      select schemaname as schema, tablename as name from pg_tables where schemaname not in ('pg_catalog', 'information_schema')`;
    for (const t of tables) {
      // each row's text form: every column as PostgreSQL prints it (bytea as hex), like the data section of a dump.
      // (Not COPY ... TO STDOUT through postgres-js: its readable() stream stalls on some small tables.)
      const rows = await client.unsafe<{ r: string }[]>(`select t::text as r from "${t.schema}"."${t.name}" t`);
      text += `-- ${t.schema}.${t.name}\n${rows.map((x) => x.r).join('\n')}\n`;
    }
    count = tables.length;
  } finally {
    await client.end({ timeout: 1 });
  }
  return { method: `row text of ${count} tables (no pg_dump >= server ${server!.v} here)`, text };
}

describe('at rest', () => {
  it('a database dump after creating encrypted values contains no plaintext', { timeout: 120_000 }, async ({ annotate }) => {
    for (let i = 0; i < 20; i++) {
      const sealed = await fc.encryptFields(testPatients, tenantId, secrets);
      const ssnIndex = await fc.blindIndex(secrets.ssn, { tenantId, table: 'crypto_test_patients', column: 'ssn' }, normalisers.ssn);
      await withTenant(db.sql, tenantId, (tx) => tx.insert(testPatients).values({ id: randomUUID(), tenantId, displayId: marker, ...sealed, ssnIndex }));
    }
    const { method, text } = await dumpDatabase();
    await annotate(`dump method: ${method}`);
    expect(text).toContain(marker);
    expect(text).toContain('crypto_index_keys'); // the tenant index key is in the dump, as an envelope
    const forms = (v: string) => [v, Buffer.from(v).toString('hex'), Buffer.from(v).toString('base64')];
    for (const secret of [secrets.ssn, normalisers.ssn(secrets.ssn), secrets.dateOfBirth]) {
      for (const form of forms(secret)) expect(text).not.toContain(form);
    }
    // and the values are really there, encrypted
    const rows = await withTenant(db.sql, tenantId, (tx) => tx.select().from(testPatients));
    expect(rows).toHaveLength(20);
    expect(await fc.decryptFields(testPatients, tenantId, rows[0]!)).toMatchObject(secrets);
  });

  it('a KMS outage while creating leaves nothing written: no row, no index key', async () => {
    const [other] = (await createFixturesTenantOnly()) as [string];
    server.setDown(true);
    try {
      const attempt = withTenant(db.sql, other, async (tx) => {
        const sealed = await fc.encryptFields(testPatients, other, secrets);
        const ssnIndex = await fc.blindIndex(secrets.ssn, { tenantId: other, table: 'crypto_test_patients', column: 'ssn' }, normalisers.ssn);
        await tx.insert(testPatients).values({ id: randomUUID(), tenantId: other, displayId: 'x', ...sealed, ssnIndex });
      });
      await expect(attempt).rejects.toMatchObject({ code: 'KMS_UNAVAILABLE' });
    } finally {
      server.setDown(false);
    }
    const [counts] = await db.owner<{ patients: number; keys: number }[]>`
      select (select count(*)::int from crypto_test_patients where tenant_id = ${other}) as patients,
             (select count(*)::int from crypto_index_keys where tenant_id = ${other}) as keys`;
    expect(counts).toEqual({ patients: 0, keys: 0 });
  });
});

async function createFixturesTenantOnly(): Promise<string[]> {
  const id = randomUUID();
  await db.owner`insert into tenants (id, slug, name) values (${id}, ${`clinic-${id.slice(0, 8)}`}, 'Other clinic')`;
  return [id];
}
