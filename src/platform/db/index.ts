import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import postgres from 'postgres';
import { drizzle } from 'drizzle-orm/postgres-js';
import type { Config } from '../../config.js';
import type { Logger } from '../logger.js';
import { startEmbeddedPostgres } from './embedded.js';
import { connectionClosed, guardPool } from './guard.js';
import { ensureDatabase, expectedMigrationCount, runMigrations } from './migrate.js';
import { RequestTransaction } from './tenancy.js';

export { runMigrations, ensureDatabase, expectedMigrationCount, MIGRATIONS_FOLDER } from './migrate.js';
export { RequestTransaction, withTenant, type Db, type TenantTransactionOptions } from './tenancy.js';
export { inSavepoint } from './savepoint.js';

export interface Database {
  /** postgres-js pool connected as carebase_app (RLS applies) */
  sql: postgres.Sql;
  /**
   * A small second app-role pool for short transactions of their own that a
   * request runs beside its request transaction (e.g. MRN allocation). A
   * request that holds a connection of `sql` must never wait for another one
   * of `sql`: a full pool of such requests would wait on each other forever.
   */
  sideSql: postgres.Sql;
  /** owner URL, only for migrations and operational CLIs */
  ownerUrl: string;
  appUrl: string;
  embedded: boolean;
  /** opens another pool as the app role, connected like `sql` (e.g. the audit writer's own connections) */
  appPool(max: number): postgres.Sql;
  migrationsExpected: number;
  close(): Promise<void>;
}

export const APP_ROLE = 'carebase_app';
/** connections of Database.sideSql */
export const SIDE_POOL_MAX = 4;

export function appUrlFor(ownerUrl: string, password?: string): string {
  const u = new URL(ownerUrl);
  u.username = APP_ROLE;
  u.password = password ? encodeURIComponent(password) : '';
  return u.toString();
}

/** seconds before a pool reconnects after a failed attempt (postgres-js's default grows to 20 s over an outage) */
const RECONNECT_BACKOFF_S = 0.05;

/**
 * `socketDir`: connect through the server's Unix socket in that directory (port and credentials from the URL).
 * Guarded (./guard.ts): a connection that died is never written to again.
 */
export function createPool(url: string, max: number, connectTimeoutS = 5, socketDir?: string | null): postgres.Sql {
  const pool = guardPool(
    postgres(url, {
      ...(socketDir ? { host: socketDir } : {}),
      max,
      idle_timeout: 30,
      connect_timeout: connectTimeoutS,
      max_lifetime: 60 * 30,
      // the pool is back within this of the database (requests fail fast meanwhile: RequestTransaction's circuit)
      backoff: () => RECONNECT_BACKOFF_S,
      onnotice: () => undefined,
      onclose: connectionClosed,
      connection: { application_name: 'carebase' },
    }),
  );
  // warmed when the database is back after an outage (RequestTransaction.answered), until it ends
  RequestTransaction.pools.add(pool);
  const end = pool.end;
  return Object.assign(pool, {
    end: (options?: Parameters<postgres.Sql['end']>[0]) => {
      RequestTransaction.pools.delete(pool);
      return end(options);
    },
  });
}

/**
 * A drizzle client without relations: the platform never imports src/db/schema.ts
 * (it composes every module's tables). Queries use the query builder.
 */
export function createDrizzle(client: postgres.Sql) {
  return drizzle({ client });
}

async function secretFile(file: string): Promise<string> {
  try {
    return (await fs.readFile(file, 'utf8')).trim();
  } catch {
    const s = randomBytes(24).toString('base64url');
    await fs.writeFile(file, s, { mode: 0o600 });
    return s;
  }
}

/**
 * Connects to the configured database (or starts the embedded one), applies
 * migrations as the owner, then opens the app pool as carebase_app.
 */
export async function openDatabase(config: Config, log: Logger): Promise<Database> {
  let ownerUrl: string;
  let appUrl: string;
  let stopEmbedded: (() => Promise<void>) | undefined;
  let socketDir: string | null = null;
  if (config.databaseUrl) {
    ownerUrl = config.databaseUrl;
    await runMigrations(ownerUrl, log);
    appUrl = config.databaseAppUrl ?? appUrlFor(ownerUrl);
  } else {
    const embedded = await startEmbeddedPostgres(config.dataDir, log);
    stopEmbedded = embedded.stop;
    socketDir = embedded.socketDir;
    try {
      const u = new URL(embedded.url);
      u.pathname = '/carebase';
      ownerUrl = u.toString();
      await ensureDatabase(ownerUrl);
      const appPassword = await secretFile(path.join(config.dataDir, 'pg-app-password'));
      await runMigrations(ownerUrl, log, { appRolePassword: appPassword });
      appUrl = appUrlFor(ownerUrl, appPassword);
    } catch (e) {
      await embedded.stop();
      throw e;
    }
  }
  const appPool = (max: number) => createPool(appUrl, max, config.deadlines.connectTimeoutS, socketDir);
  const sql = appPool(config.databasePoolMax);
  const sideSql = appPool(SIDE_POOL_MAX);
  return {
    sql,
    sideSql,
    ownerUrl,
    appUrl,
    embedded: !!stopEmbedded,
    appPool,
    migrationsExpected: expectedMigrationCount(),
    async close() {
      await Promise.all([sql.end({ timeout: 5 }), sideSql.end({ timeout: 5 })]);
      await stopEmbedded?.();
    },
  };
}
