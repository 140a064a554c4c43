/**
 * npm run db:migrate — applies migrations/ to DATABASE_URL (or the embedded
 * database in DATA_DIR) as the owner, under the same advisory lock as boot.
 */
import { ConfigError, loadConfig } from '../config.js';
import { openDatabase } from '../platform/db/index.js';
import { createLogger } from '../platform/logger.js';

try {
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  const db = await openDatabase(config, log);
  const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from drizzle.__drizzle_migrations`;
  log.info({ applied: row?.n, expected: db.migrationsExpected }, 'database is migrated');
  await db.close();
} catch (e) {
  process.stderr.write(`carebase: ${e instanceof ConfigError ? e.message : `migration failed: ${(e as Error).message}`}\n`);
  process.exit(1);
}
