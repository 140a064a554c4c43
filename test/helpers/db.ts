import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { inject } from 'vitest';
import { appUrlFor, createPool, SIDE_POOL_MAX, expectedMigrationCount, type Database } from '../../src/platform/db/index.js';
import { withDatabase } from './global-setup.js';

export interface TestDatabase extends Database {
  name: string;
  /** owner connection (bypasses nothing: the owner is subject to FORCE RLS too, but may alter tables) */
  owner: postgres.Sql;
  drop(): Promise<void>;
}

/** A fresh database for one test file, cloned from the migrated template. */
/** A fresh database cloned from the migrated template; `poolMax` sizes its app pool (default 10). */
export async function createTestDatabase(opts: { poolMax?: number } = {}): Promise<TestDatabase> {
  const adminUrl = inject('pgAdminUrl');
  const { template, prefix } = inject('testDatabases');
  const name = `${prefix}${randomBytes(6).toString('hex')}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => undefined });
  try {
    await admin.unsafe(`create database "${name}" template ${template}`);
  } finally {
    await admin.end({ timeout: 5 });
  }
  const ownerUrl = withDatabase(adminUrl, name);
  const appUrl = appUrlFor(ownerUrl, inject('appRolePassword'));
  const sql = createPool(appUrl, opts.poolMax ?? 10);
  const sideSql = createPool(appUrl, SIDE_POOL_MAX);
  const owner = postgres(ownerUrl, { max: 2, onnotice: () => undefined });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await Promise.all([sql.end({ timeout: 5 }), sideSql.end({ timeout: 5 })]);
    await owner.end({ timeout: 5 });
  };
  return {
    name,
    sql,
    sideSql,
    owner,
    ownerUrl,
    appUrl,
    embedded: false,
    appPool: (max: number) => createPool(appUrl, max),
    migrationsExpected: expectedMigrationCount(),
    close,
    async drop() {
      await close();
      const a = postgres(adminUrl, { max: 1, onnotice: () => undefined });
      try {
        await a.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await a.end({ timeout: 5 });
      }
    },
  };
}
