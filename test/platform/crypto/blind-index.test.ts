import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createFieldCrypto,
  createMemoryIndexKeyStore,
  INDEX_KEY_CONTEXT,
  isEnvelope,
  KmsTestServer,
  normalisers,
} from '../../../src/platform/crypto/index.js';
import { AppError } from '../../../src/platform/errors.js';
import { freshMetrics, kmsProvider } from './helpers.js';

let server: KmsTestServer;
beforeAll(async () => {
  server = await KmsTestServer.start();
});
afterAll(() => server.close());

function setup() {
  const metrics = freshMetrics();
  const store = createMemoryIndexKeyStore();
  const provider = kmsProvider(server, { metrics });
  return { fc: createFieldCrypto({ provider, indexKeys: store, metrics }), store, provider };
}

const A = { tenantId: 'tenant-a', table: 'patients', column: 'ssn' };
const B = { ...A, tenantId: 'tenant-b' };

describe('blind index', () => {
  it('is deterministic per tenant across formatting, and differs across tenants and columns', async () => {
    const { fc, store } = setup();
    const a1 = await fc.blindIndex('123-45-6789', A, normalisers.ssn);
    const a2 = await fc.blindIndex(' 123 45 6789 ', A, normalisers.ssn);
    expect(a1.length).toBe(32);
    expect(a1.equals(a2)).toBe(true);
    expect(a1.equals(await fc.blindIndex('123-45-6780', A, normalisers.ssn))).toBe(false);
    const b = await fc.blindIndex('123-45-6789', B, normalisers.ssn);
    expect(b.equals(a1)).toBe(false);
    const otherColumn = await fc.blindIndex('123-45-6789', { ...A, column: 'medicare_id' }, normalisers.ssn);
    expect(otherColumn.equals(a1)).toBe(false);
    expect(store.entries.size).toBe(2);
  });

  it('keeps each tenant key envelope-encrypted in the store; another process with the same store gets the same index', async () => {
    const first = setup();
    const idx = await first.fc.blindIndex('Jane.Doe@Example.org', A, normalisers.email);
    const stored = first.store.entries.get(A.tenantId)!;
    expect(isEnvelope(stored)).toBe(true);
    expect(stored.length).toBeGreaterThan(32 + 12 + 16);

    const metrics = freshMetrics();
    const second = createFieldCrypto({ provider: kmsProvider(server, { metrics }), indexKeys: first.store, metrics });
    expect((await second.blindIndex('  jane.doe@example.org', A, normalisers.email)).equals(idx)).toBe(true);
    // the stored key is bound to its tenant: it does not open as another tenant's key
    await expect(second.decrypt(stored, { tenantId: B.tenantId, ...INDEX_KEY_CONTEXT })).rejects.toMatchObject({ failure: 'DECRYPT_FAILED' });
  });

  it('concurrent first use creates one key per tenant', async () => {
    const { fc, store } = setup();
    const results = await Promise.all(Array.from({ length: 20 }, () => fc.blindIndex('x', { ...A, tenantId: 'tenant-c' })));
    expect(results.every((r) => r.equals(results[0]!))).toBe(true);
    expect(store.entries.size).toBe(1);
  });
});

describe('normalisers', () => {
  it('normalise SSN, phone, e-mail, text and dates', () => {
    expect(normalisers.ssn('123-45-6789')).toBe('123456789');
    expect(normalisers.ssn('１２３ ４５ ６７８９')).toBe('123456789');
    expect(normalisers.phone('+1 (555) 010-9999')).toBe('15550109999');
    expect(normalisers.email('  Jane.Doe@Example.ORG ')).toBe('jane.doe@example.org');
    expect(normalisers.text('  Zoë   MARTÍNEZ ')).toBe('zoë martínez');
    expect(normalisers.text('Zoe\u0308')).toBe(normalisers.text('Zoë'));
    expect(normalisers.date(' 2024-02-29 ')).toBe('2024-02-29');
    expect(normalisers.exact('Zoe\u0308')).toBe('Zoë');
  });

  it('reject malformed input with BAD_USER_INPUT and no value in the message', () => {
    const cases: Array<[(v: string) => string, string]> = [
      [normalisers.ssn, '123-45-678'],
      [normalisers.phone, '12345'],
      [normalisers.email, 'not-an-email'],
      [normalisers.date, '2023-02-29'],
    ];
    for (const [normalise, value] of cases) {
      let error: unknown;
      try {
        normalise(value);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(AppError);
      expect((error as AppError).code).toBe('BAD_USER_INPUT');
      expect((error as AppError).message).not.toContain(value);
    }
  });
});
