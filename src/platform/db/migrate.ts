import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import type { Logger } from '../logger.js';

export const MIGRATIONS_FOLDER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../migrations');

/** Arbitrary constant: the advisory lock every migrating process takes. */
const MIGRATION_LOCK_ID = 7_264_011_223;

/**
 * Applies the committed drizzle-kit migrations as the owner. Two processes
 * booting at once serialise on a session advisory lock; the second finds
 * nothing left to do. Afterwards tenant RLS is (re)asserted on every table
 * with a tenant_id column, and the app role gets its password when one is given.
 */
export async function runMigrations(ownerUrl: string, log: Logger, opts: { appRolePassword?: string } = {}): Promise<number> {
  const sql = postgres(ownerUrl, { max: 1, onnotice: () => undefined, connect_timeout: 10 });
  try {
    await sql`select pg_advisory_lock(${MIGRATION_LOCK_ID})`;
    try {
      const before = await appliedCount(sql);
      await migrate(drizzle({ client: sql }), { migrationsFolder: MIGRATIONS_FOLDER });
      await sql`select carebase_enforce_tenant_rls()`;
      if (opts.appRolePassword) {
        await sql.unsafe(`alter role carebase_app with login password '${opts.appRolePassword.replace(/'/g, "''")}'`);
      }
      const applied = (await appliedCount(sql)) - before;
      if (applied > 0) log.info({ applied }, 'database migrations applied');
      return applied;
    } finally {
      await sql`select pg_advisory_unlock(${MIGRATION_LOCK_ID})`;
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function appliedCount(sql: postgres.Sql): Promise<number> {
  const [reg] = await sql<{ t: string | null }[]>`select to_regclass('drizzle.__drizzle_migrations')::text as t`;
  if (!reg?.t) return 0;
  const [row] = await sql<{ n: number }[]>`select count(*)::int as n from drizzle.__drizzle_migrations`;
  return row?.n ?? 0;
}

/** Number of migrations committed in migrations/ (used by /readyz). */
export function expectedMigrationCount(): number {
  return readMigrationFiles({ migrationsFolder: MIGRATIONS_FOLDER }).length;
}

/** Creates the database named in `url` if it does not exist (embedded default). */
export async function ensureDatabase(url: string): Promise<void> {
  const u = new URL(url);
  const name = decodeURIComponent(u.pathname.slice(1));
  u.pathname = '/postgres';
  const sql = postgres(u.toString(), { max: 1, onnotice: () => undefined });
  try {
    const [exists] = await sql`select 1 from pg_database where datname = ${name}`;
    if (!exists) await sql.unsafe(`create database "${name.replace(/"/g, '""')}"`).catch((e: { code?: string }) => {
      if (e.code !== '42P04') throw e; // created concurrently by another process
    });
  } finally {
    await sql.end({ timeout: 5 });
  }
}
