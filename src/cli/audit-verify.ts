/**
 * npm run audit:verify — recomputes every tenant's audit hash chain and
 * prints one JSON line per tenant (ok, events checked, head, signed
 * checkpoints checked, first broken link). Exit code 0 when every chain is intact, 2 when one is broken, 1 on
 * error. Connects as the owner (DATABASE_URL, or the embedded database in
 * DATA_DIR); never prints an event's content.
 */
import postgres from 'postgres';
import { bootDependencies } from '../boot.js';
import { ConfigError, loadConfig } from '../config.js';
import { checkpointKeys } from '../platform/audit/checkpoint.js';
import { verifyAllTenants } from '../platform/audit/verify.js';
import { createLogger } from '../platform/logger.js';

try {
  const config = loadConfig();
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
  // the same dependencies as the API and the worker, closed in reverse order within a bound
  const boot = await bootDependencies(config, log, { role: 'cli', modules: [] });
  const db = boot.deps.database;
  const owner = postgres(db.ownerUrl, { max: 1, onnotice: () => undefined });
  let broken = 0;
  try {
    const reports = await verifyAllTenants(owner, checkpointKeys(config).trusted, (r) => {
      if (!r.ok) broken++;
      process.stdout.write(`${JSON.stringify(r)}\n`);
    });
    process.stdout.write(`${JSON.stringify({ tenants: reports.length, broken })}\n`);
  } finally {
    await owner.end({ timeout: 5 });
    await boot.close();
  }
  process.exit(broken ? 2 : 0);
} catch (e) {
  process.stderr.write(`carebase: ${e instanceof ConfigError ? e.message : `audit verification failed: ${(e as Error).name}`}\n`);
  process.exit(1);
}
