/**
 * Carebase with the test fixture module `test-notes` (a tenant-owned table and
 * a header-authenticated principal) on a fresh database, for platform
 * scenarios that need a database round trip per request without a real
 * login (overload). Prints `BENCH_URL <url>` and `BENCH_PRINCIPAL <header>`.
 */
import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { withTenant } from '../../src/platform/db/index.js';
import { tenants } from '../../src/db/schema.js';
import { createNotesTable, notesModule } from '../../test/platform/fixtures/notes-module.js';

const config = loadConfig({
  // the scenario measures load shedding, not the per-user/IP budgets (one principal, one IP): raised unless set
  RATE_LIMIT_ANON_IP_PER_MINUTE: '1000000',
  RATE_LIMIT_AUTH_IP_PER_MINUTE: '1000000',
  RATE_LIMIT_USER_PER_MINUTE: '10000000',
  ...process.env,
  PORT: '0',
  HOST: '127.0.0.1',
  LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  DATA_DIR: process.env.DATA_DIR ?? '.data/bench',
  FEATURES: 'test-notes',
  JOB_WORKERS: 'off',
});
const app = await createApp(config, { modules: [notesModule] });
const owner = postgres(app.database.ownerUrl, { max: 1, onnotice: () => undefined });
await createNotesTable(owner);
await owner.end();
const tenantId = randomUUID();
await withTenant(app.database.sql, tenantId, (db) => db.insert(tenants).values({ id: tenantId, slug: `bench-${tenantId.slice(0, 8)}`, name: 'Bench clinic' }));
const url = await app.listen();
console.log(`BENCH_PRINCIPAL ${tenantId}:${randomUUID()}`);
console.log(`BENCH_URL ${url}`);
const stop = () => void app.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
