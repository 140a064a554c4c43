import { getColumns } from 'drizzle-orm';
import { bytea, pgTable, text, uuid } from 'drizzle-orm/pg-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createFieldCrypto,
  CryptoError,
  encryptedColumn,
  fieldContext,
  isEncryptedColumn,
  KmsTestServer,
  type FieldCrypto,
} from '../../../src/platform/crypto/index.js';
import { freshMetrics, kmsProvider } from './helpers.js';

const patients = pgTable('patients', {
  id: uuid('id').primaryKey(),
  tenantId: uuid('tenant_id').notNull(),
  displayId: text('display_id').notNull(),
  ssn: encryptedColumn('ssn'),
  dateOfBirth: encryptedColumn('date_of_birth').notNull(),
  ssnIndex: bytea('ssn_index'),
});
const tenantId = '6f1c2d3e-0000-4000-8000-000000000001';

let server: KmsTestServer;
let fc: FieldCrypto;
beforeAll(async () => {
  server = await KmsTestServer.start();
  const metrics = freshMetrics();
  fc = createFieldCrypto({ provider: kmsProvider(server, { metrics }), metrics });
});
afterAll(async () => {
  fc.close();
  await server.close();
});

describe('encryptedColumn (drizzle)', () => {
  it('is a bytea column, recognised as encrypted; plain bytea is not', () => {
    const cols = getColumns(patients);
    expect(cols.ssn.getSQLType()).toBe('bytea');
    expect(isEncryptedColumn(cols.ssn)).toBe(true);
    expect(isEncryptedColumn(cols.ssnIndex)).toBe(false);
    expect(isEncryptedColumn(cols.displayId)).toBe(false);
  });

  it('refuses to write anything but an envelope to the database', async () => {
    const col = getColumns(patients).ssn;
    expect(() => col.mapToDriverValue(Buffer.from('123-45-6789') as never)).toThrow(CryptoError);
    const env = await fc.encrypt('123-45-6789', fieldContext(patients, 'ssn', tenantId));
    expect(col.mapToDriverValue(env)).toBe(env);
  });

  it('reads Buffers and Postgres hex text (relational JSON) back as envelopes', async () => {
    const col = getColumns(patients).ssn;
    const env = await fc.encrypt('x', fieldContext(patients, 'ssn', tenantId));
    expect(Buffer.compare(col.mapFromDriverValue(env) as Buffer, env)).toBe(0);
    expect(Buffer.compare(col.mapFromDriverValue(`\\x${env.toString('hex')}` as never) as Buffer, env)).toBe(0);
  });
});

describe('encryptFields / decryptFields', () => {
  it('derive the context from the SQL table and column names, and round-trip a row', async () => {
    const sealed = await fc.encryptFields(patients, tenantId, { ssn: '123-45-6789', dateOfBirth: '1980-01-31' });
    expect(fc.keyIdOf(sealed.ssn)).toBe(server.defaultKey.arn);
    // the context is { tenant, 'patients', 'date_of_birth' } (SQL names), not the property name
    expect(await fc.decrypt(sealed.dateOfBirth, { tenantId, table: 'patients', column: 'date_of_birth' })).toBe('1980-01-31');
    await expect(fc.decrypt(sealed.dateOfBirth, { tenantId, table: 'patients', column: 'ssn' })).rejects.toMatchObject({ failure: 'DECRYPT_FAILED' });

    const row = { id: 'p1', tenantId, displayId: 'P-1', ssn: sealed.ssn, dateOfBirth: sealed.dateOfBirth, ssnIndex: null };
    const plain = await fc.decryptFields(patients, tenantId, row);
    expect(plain).toEqual({ ...row, ssn: '123-45-6789', dateOfBirth: '1980-01-31' });
    const typed: string | null = plain.ssn;
    expect(typed).toBe('123-45-6789');
  });

  it('pass null and undefined through', async () => {
    const sealed = await fc.encryptFields(patients, tenantId, { ssn: null });
    expect(sealed.ssn).toBeNull();
    expect(await fc.decryptFields(patients, tenantId, { ssn: null })).toEqual({ ssn: null });
  });

  it('refuse a column that is not encrypted', async () => {
    // @ts-expect-error displayId is not an encrypted column
    await expect(fc.encryptFields(patients, tenantId, { displayId: 'P-1' })).rejects.toMatchObject({ failure: 'INVALID_INPUT' });
  });

  it('decrypting a row under another tenant fails', async () => {
    const sealed = await fc.encryptFields(patients, tenantId, { ssn: '123-45-6789' });
    await expect(fc.decryptFields(patients, 'another-tenant', { ssn: sealed.ssn })).rejects.toMatchObject({ failure: 'DECRYPT_FAILED' });
  });
});
