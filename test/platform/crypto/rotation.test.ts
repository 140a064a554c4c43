import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tables } from '../../../src/db/schema.js';
import {
  createDbIndexKeyStore,
  createFieldCrypto,
  KmsTestServer,
  KmsUnavailableError,
  normalisers,
  rotationStatus,
  RotationError,
  runRotation,
  type FieldCrypto,
  type TestKey,
} from '../../../src/platform/crypto/index.js';
import { withTenant } from '../../../src/platform/db/index.js';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.js';
import { createFixtures, testPatients } from './db-fixtures.js';
import { freshMetrics, kmsProvider } from './helpers.js';

let db: TestDatabase;
let server: KmsTestServer;
let tenantIds: string[];
const cryptos: FieldCrypto[] = [];
const expected = new Map<string, { tenantId: string; ssn: string; dob: string | null }>();
const indexes = new Map<string, Buffer>();
const allTables = () => [...Object.values(tables), testPatients];

function cryptoFor(key: TestKey, cache?: { maxUses: number }): FieldCrypto {
  const metrics = freshMetrics();
  const fc = createFieldCrypto({ provider: kmsProvider(server, { keyId: key.arn, metrics }), indexKeys: createDbIndexKeyStore(db.sql), metrics, cache });
  cryptos.push(fc);
  return fc;
}

async function insertPatient(fc: FieldCrypto, tenantId: string, id = randomUUID()) {
  const ssn = `${String(100 + expected.size).padStart(3, '0')}-45-6789`;
  const dob = expected.size % 3 === 0 ? null : `19${String(expected.size % 90).padStart(2, '0')}-01-31`;
  const sealed = await fc.encryptFields(testPatients, tenantId, { ssn, dateOfBirth: dob });
  const ssnIndex = await fc.blindIndex(ssn, { tenantId, table: 'crypto_test_patients', column: 'ssn' }, normalisers.ssn);
  await withTenant(db.sql, tenantId, (tx) => tx.insert(testPatients).values({ id, tenantId, displayId: `P-${expected.size}`, ...sealed, ssnIndex }));
  expected.set(id, { tenantId, ssn, dob });
  return id;
}

/** Reads every patient through the app role (RLS, per tenant) and checks it decrypts to what was written. */
async function checkAllDecrypt(fc: FieldCrypto) {
  let n = 0;
  for (const tenantId of tenantIds) {
    const rows = await withTenant(db.sql, tenantId, (tx) => tx.select().from(testPatients).where(eq(testPatients.tenantId, tenantId)));
    for (const row of rows) {
      const plain = await fc.decryptFields(testPatients, tenantId, row);
      const want = expected.get(row.id)!;
      expect([plain.ssn, plain.dateOfBirth]).toEqual([want.ssn, want.dob]);
      n++;
    }
  }
  expect(n).toBe(expected.size);
}

async function keysInUse(): Promise<Record<string, number>> {
  const s = await rotationStatus(db.owner, allTables());
  const out: Record<string, number> = {};
  for (const e of s.envelopes) out[e.keyId] = (out[e.keyId] ?? 0) + e.count;
  return out;
}

let key1: TestKey;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await KmsTestServer.start();
  tenantIds = await createFixtures(db, 3);
  key1 = server.defaultKey;
  const fc = cryptoFor(key1);
  for (let i = 0; i < 240; i++) await insertPatient(fc, tenantIds[i % 3]!);
  for (const t of tenantIds) indexes.set(t, await fc.blindIndex('123-45-6789', { tenantId: t, table: 'crypto_test_patients', column: 'ssn' }, normalisers.ssn));
});
afterAll(async () => {
  for (const fc of cryptos) {
    fc.close();
    fc.provider.close();
  }
  await server?.close();
  await db?.drop();
});

describe('re-encrypt job', () => {
  let key2: TestKey;
  const valuesUnderKey1 = () => 240 + 160 + 3; // ssn + non-null date_of_birth + one index key per tenant

  it('moves every envelope to the new key in batches; old rows still decrypt during it', async () => {
    expect(await keysInUse()).toEqual({ [key1.arn]: valuesUnderKey1() });
    key2 = server.createKey();
    const fc2 = cryptoFor(key2);
    const seen: Array<Record<string, number>> = [];
    const result = await runRotation({
      sql: db.owner,
      crypto: fc2,
      tables: allTables(),
      batchSize: 50,
      onProgress: async () => {
        seen.push(await keysInUse());
        await checkAllDecrypt(cryptoFor(key2)); // a reader in another process, mid-rotation
      },
    });
    expect(result).toMatchObject({ status: 'completed', resumed: false, remaining: 0, conflicts: 0, valuesReencrypted: valuesUnderKey1(), rowsUpdated: 243 });
    expect(seen.some((s) => (s[key1.arn] ?? 0) > 0 && (s[key2.arn] ?? 0) > 0)).toBe(true); // mid-rotation: both keys in use
    expect(await keysInUse()).toEqual({ [key2.arn]: valuesUnderKey1() });
    await checkAllDecrypt(cryptoFor(key2));

    const keys = await db.owner<{ key_id: string; status: string }[]>`select key_id, status from crypto_keys order by version`;
    expect(keys).toEqual([
      { key_id: key2.arn, status: 'active' },
      { key_id: key1.arn, status: 'retired' },
    ]);
    // the tenant index keys were re-wrapped, not replaced: blind indexes are unchanged
    const fc = cryptoFor(key2);
    for (const t of tenantIds) {
      expect((await fc.blindIndex('123456789', { tenantId: t, table: 'crypto_test_patients', column: 'ssn' }, normalisers.ssn)).equals(indexes.get(t)!)).toBe(true);
    }
  });

  it('is idempotent: running again changes nothing and calls KMS for nothing but the key id', async () => {
    server.resetCounts();
    const before = await db.owner`select id, ssn, date_of_birth from crypto_test_patients order by id`;
    const result = await runRotation({ sql: db.owner, crypto: cryptoFor(key2), tables: allTables(), batchSize: 50 });
    expect(result).toMatchObject({ status: 'completed', valuesReencrypted: 0, rowsUpdated: 0, remaining: 0 });
    expect(await db.owner`select id, ssn, date_of_birth from crypto_test_patients order by id`).toEqual(before);
    expect(server.callCount('GenerateDataKey') + server.callCount('Decrypt')).toBe(0);
  });

  it('stops on a KMS outage without half-written batches, and resumes where it stopped', async () => {
    const key3 = server.createKey();
    const fc3 = cryptoFor(key3, { maxUses: 10 }); // small cache: every batch needs KMS
    let batches = 0;
    const err = await runRotation({
      sql: db.owner,
      crypto: fc3,
      tables: allTables(),
      batchSize: 50,
      onProgress: () => {
        if (++batches === 3) server.setDown(true);
      },
    }).catch((e: unknown) => e);
    server.setDown(false);
    expect(err).toBeInstanceOf(KmsUnavailableError);
    const [job] = await db.owner<{ id: string; status: string; error: string; values_reencrypted: number }[]>`
      select id, status, error, values_reencrypted from crypto_rotation_jobs where target_key_id = ${key3.arn}`;
    expect(job).toMatchObject({ status: 'failed', error: 'KMS_UNAVAILABLE' });
    // exactly the committed batches moved: 3 index keys + 2 patient batches of 50 rows
    const moved = (await keysInUse())[key3.arn]!;
    expect(moved).toBe(job!.values_reencrypted);
    expect(job!.values_reencrypted).toBeGreaterThan(3);
    await checkAllDecrypt(cryptoFor(key3));

    const resumed = await runRotation({ sql: db.owner, crypto: fc3, tables: allTables(), batchSize: 50 });
    expect(resumed).toMatchObject({ jobId: job!.id, resumed: true, status: 'completed', remaining: 0, valuesReencrypted: valuesUnderKey1() });
    expect(await keysInUse()).toEqual({ [key3.arn]: valuesUnderKey1() });
    key2 = key3;
  });

  it('reports incomplete when writers add values under an old key behind it, and a second run finishes', async () => {
    const key4 = server.createKey();
    const oldWriter = cryptoFor(key2);
    let inserted = false;
    const result = await runRotation({
      sql: db.owner,
      crypto: cryptoFor(key4),
      tables: allTables(),
      batchSize: 50,
      onProgress: async (p) => {
        if (p.table === 'crypto_test_patients' && !inserted) {
          inserted = true; // lowest possible uuid: behind the job's cursor
          await insertPatient(oldWriter, tenantIds[0]!, '00000000-0000-4000-8000-000000000000');
        }
      },
    });
    expect(result.status).toBe('incomplete');
    expect(result.remaining).toBe(1);
    const again = await runRotation({ sql: db.owner, crypto: cryptoFor(key4), tables: allTables(), batchSize: 50 });
    expect(again).toMatchObject({ status: 'completed', resumed: false, valuesReencrypted: 1, remaining: 0 });
    await checkAllDecrypt(cryptoFor(key4));
    key2 = key4;
  });

  it('never overwrites a value changed between its read and its write (compare-and-set)', async () => {
    const key5 = server.createKey();
    const writer = cryptoFor(key2);
    const inner = cryptoFor(key5);
    let raced = '';
    const racing: FieldCrypto = {
      ...inner,
      async reencrypt(envelope, ctx) {
        const next = await inner.reencrypt(envelope, ctx);
        if (!raced && ctx.table === 'crypto_test_patients' && ctx.column === 'ssn') {
          const [row] = await db.owner<{ id: string }[]>`select id from crypto_test_patients where ssn = ${envelope}`;
          raced = row!.id;
          const fresh = await writer.encrypt('999-99-9999', ctx); // a concurrent update by the app, under the old key
          await db.owner`update crypto_test_patients set ssn = ${fresh} where id = ${raced}`;
          expected.get(raced)!.ssn = '999-99-9999';
        }
        return next;
      },
    };
    const result = await runRotation({ sql: db.owner, crypto: racing, tables: allTables(), batchSize: 50 });
    expect(result).toMatchObject({ status: 'incomplete', conflicts: 1, remaining: 1 });
    await checkAllDecrypt(cryptoFor(key5)); // the concurrent value survived
    expect((await runRotation({ sql: db.owner, crypto: inner, tables: allTables() })).status).toBe('completed');
  });

  it('refuses a role subject to RLS (it would silently see no rows) and a second concurrent job', async () => {
    const fc = cryptoFor(key2);
    await expect(runRotation({ sql: db.sql, crypto: fc, tables: allTables() })).rejects.toBeInstanceOf(RotationError);
    const holder = await db.owner.reserve();
    await holder`select pg_advisory_lock(7264011301)`;
    try {
      await expect(runRotation({ sql: db.owner, crypto: fc, tables: allTables() })).rejects.toThrow(/another re-encrypt job is running/);
    } finally {
      await holder`select pg_advisory_unlock(7264011301)`;
      holder.release();
    }
  });

  it('records key versions for status', async () => {
    const s = await rotationStatus(db.owner, allTables());
    expect(s.keys.filter((k) => k.status === 'active')).toHaveLength(1);
    expect(s.jobs.length).toBeGreaterThan(0);
    const [active] = await db.owner<{ key_id: string }[]>`select key_id from crypto_keys where status = 'active'`;
    expect(s.envelopes.every((e) => e.keyId === active!.key_id)).toBe(true);
  });
});
