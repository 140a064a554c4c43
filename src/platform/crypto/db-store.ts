import { eq } from 'drizzle-orm';
import type postgres from 'postgres';
import { withTenant } from '../db/index.js';
import type { IndexKeyStore } from './blind-index.js';
import type { EncryptedValue } from './column.js';
import { cryptoIndexKeys } from './tables.js';

/**
 * Blind-index keys in crypto_index_keys, read and created through the app
 * pool in a short transaction of their own, scoped to the tenant (RLS).
 * Concurrent first uses race on the primary key; the first insert wins and
 * every caller gets the stored key.
 */
export function createDbIndexKeyStore(pool: postgres.Sql): IndexKeyStore {
  const read = async (db: Parameters<Parameters<typeof withTenant>[2]>[0], tenantId: string) =>
    (await db.select({ key: cryptoIndexKeys.key }).from(cryptoIndexKeys).where(eq(cryptoIndexKeys.tenantId, tenantId)))[0]?.key;
  return {
    get: (tenantId) => withTenant(pool, tenantId, (db) => read(db, tenantId)),
    putIfAbsent: (tenantId, envelope) =>
      withTenant(pool, tenantId, async (db) => {
        await db
          .insert(cryptoIndexKeys)
          .values({ tenantId, key: envelope as EncryptedValue })
          .onConflictDoNothing();
        const stored = await read(db, tenantId);
        if (!stored) throw new Error('blind index key was not stored');
        return stored;
      }),
  };
}
