/**
 * Carebase (real createApp, all modules unless FEATURES says otherwise) with a
 * provisioned tenant, a signed-in FRONT_DESK user (no MFA; reads/writes
 * patients tenant-wide) and BENCH_PATIENTS seeded patients (default 0).
 *
 * Bench settings (so that numbers measure the pipeline, not the guards):
 * rate limits raised to their maxima, LOAD_SHED_EVENT_LOOP_DELAY_MS=0 (off),
 * LOAD_SHED_POOL_WAITING high; any of them can be overridden from the env.
 *
 * Also listens on a second port (same process) with raw-SQL baselines through
 * postgres-js on the app role: POST /raw-read {id}, POST /raw-search {prefix}.
 *
 * Prints `BENCH_INFO <json>` ({ token, tenantId, tenantSlug, email, password,
 * ids (up to 2,000), rawUrl, seedMs, pg: { url (owner), database, socketDir } }) and then `BENCH_URL <url>`.
 */
import { access } from 'node:fs/promises';
import Fastify from 'fastify';
import postgres from 'postgres';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/platform/logger.js';
import { createDbIndexKeyStore, createFieldCrypto, createKeyProvider } from '../../src/platform/crypto/index.js';
import { createTenantWithAdmin, loginAs, createUser } from '../../test/helpers/auth.js';
import { ApolloServer } from '@apollo/server';
import fastifyApollo from '@as-integrations/fastify';
import { AuditWriter } from '../../src/platform/audit/writer.js';
import { BARE_TYPE_DEFS, bareResolvers, rawPatientRead, rawPatientSearch, seedPatients } from '../scenarios/patients.js';
import { benchClient } from './client.js';

const config = loadConfig({
  RATE_LIMIT_AUTH_IP_PER_MINUTE: '1000000',
  RATE_LIMIT_ANON_IP_PER_MINUTE: '1000000',
  RATE_LIMIT_USER_PER_MINUTE: '10000000',
  LOAD_SHED_EVENT_LOOP_DELAY_MS: '0',
  LOAD_SHED_POOL_WAITING: '100000',
  ...process.env,
  PORT: '0',
  HOST: '127.0.0.1',
  LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  DATA_DIR: process.env.DATA_DIR ?? '.data/bench-app',
  JOB_WORKERS: process.env.JOB_WORKERS ?? 'off',
});
// BENCH_AUDIT=off: the audited-read scenario's "same read without audit" — the group-commit writer accepts events
// without writing them (bench only: the product has no switch to turn the audit trail off)
if (process.env.BENCH_AUDIT === 'off') AuditWriter.prototype.append = () => Promise.resolve();
const app = await createApp(config);
const url = await app.listen();

const { t } = benchClient(url, app.database.sql);
const tenant = await createTenantWithAdmin(t);
const user = await createUser(t, tenant, process.env.BENCH_ROLE ?? 'FRONT_DESK');

let ids: string[] = [];
let seedMs = 0;
const count = Number(process.env.BENCH_PATIENTS ?? 0);
if (count > 0) {
  const log = createLogger('warn');
  const crypto = createFieldCrypto({ provider: createKeyProvider(config, log), indexKeys: createDbIndexKeyStore(app.database.sql) });
  const r = await seedPatients(app.database.sql, {
    tenantId: tenant.id,
    count,
    crypto,
    concurrency: 4,
    onProgress: (n) => {
      if (n % 50_000 === 0) process.stderr.write(`seeded ${n}/${count}\n`);
    },
  });
  ids = r.ids;
  seedMs = r.ms;
  await app.database.sql`analyze patients`.catch(() => undefined);
}

const session = await loginAs(t, user);

// BENCH_RX=1 (rx-check): the signed-in user (BENCH_ROLE=PROVIDER) joins the care team of the first 20 patients, each
// on 10 medications with 5 allergies, written as the owner in the tenant (catalog codes of the e-prescribing seed)
let rxIds: string[] = [];
if (process.env.BENCH_RX === '1' && ids.length) {
  rxIds = ids.slice(0, 20);
  const meds = ['855332', '197361', '866514', '311354', '198211', '861007', '310429', '312938', '197805', '313782'];
  const allergies: [string, string, string][] = [['class', 'penicillins', 'Penicillins'], ['class', 'sulfonamide-antibacterials', 'Sulfonamide antibacterials'], ['ingredient', '2670', 'codeine'], ['ingredient', '4053', 'erythromycin'], ['drug', '197454', 'cephalexin 500 MG Oral Tablet']];
  const owner = postgres(app.database.ownerUrl, { max: 1, onnotice: () => undefined });
  try {
    await owner.begin(async (tx) => {
      await tx`select set_config('app.tenant_id', ${tenant.id}, true)`;
      for (const p of rxIds) {
        await tx`insert into patient_care_team (tenant_id, patient_id, user_id, role) values (${tenant.id}, ${p}, ${user.id}, 'PRIMARY_PROVIDER') on conflict do nothing`;
        for (const m of meds) await tx`insert into rx_patient_medications (tenant_id, patient_id, drug_rxcui, status, sig, dose_amount, frequency_per_day) values (${tenant.id}, ${p}, ${m}, 'active', 'as directed', 1, 1)`;
        for (const [kind, code, name] of allergies) await tx`insert into rx_patient_allergies (tenant_id, patient_id, allergen_kind, allergen_code, allergen_name, severity) values (${tenant.id}, ${p}, ${kind}, ${code}, ${name}, 'moderate')`;
      }
    });
  } finally {
    await owner.end({ timeout: 5 });
  }
}

const raw = Fastify();
raw.post('/raw-read', async (req) => rawPatientRead(app.database.sql, tenant.id, (req.body as { id: string }).id));
raw.post('/raw-search', async (req) => rawPatientSearch(app.database.sql, tenant.id, (req.body as { prefix: string }).prefix));
// "bare Apollo + SQL": the bare-Apollo baseline (same Apollo + Fastify integration, no plugins) resolving the same
// patient query and createPatient mutation with plain postgres-js on the same pool (no JWT, RBAC/ABAC, audit,
// encryption, outbox): POST /graphql on this port
const bare = new ApolloServer({ typeDefs: BARE_TYPE_DEFS, resolvers: bareResolvers(app.database.sql, tenant.id) });
await bare.start();
await raw.register(fastifyApollo(bare));
await raw.listen({ port: 0, host: '127.0.0.1' });
const addr = raw.server.address();
const rawUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;

// where the app's PostgreSQL is, for the PostGraphile peer (its own database on the same server, reached the way
// the app pools reach it: the Unix socket on the embedded server, TCP on DATABASE_URL) and for the bench's
// per-process CPU accounting of PostgreSQL
const ownerUrl = new URL(app.database.ownerUrl);
let socketDir: string | null = null;
{
  // inet_server_addr() is null on a Unix-socket connection; the socket directory is a superuser-only setting
  const [viaSocket] = await app.database.sql<{ unix: boolean }[]>`select inet_server_addr() is null as unix`;
  if (viaSocket?.unix) {
    const owner = postgres(app.database.ownerUrl, { max: 1, onnotice: () => undefined });
    try {
      const [s] = await owner<{ dirs: string; port: string }[]>`select current_setting('unix_socket_directories') as dirs, current_setting('port') as port`;
      const dir = s?.dirs.split(',')[0]?.trim();
      if (dir && (await access(`${dir}/.s.PGSQL.${s!.port}`).then(() => true, () => false))) socketDir = dir;
    } finally {
      await owner.end({ timeout: 5 });
    }
  }
}
const pgInfo = { url: app.database.ownerUrl, database: ownerUrl.pathname.slice(1), socketDir };

const sample = ids.length > 2_000 ? Array.from({ length: 2_000 }, (_, i) => ids[Math.floor((i * ids.length) / 2_000)]!) : ids;
console.log(
  `BENCH_INFO ${JSON.stringify({ token: session.token, rxIds, tenantId: tenant.id, tenantSlug: tenant.slug, email: user.email, password: user.password, ids: sample, rawUrl, seedMs, pg: pgInfo })}`,
);
console.log(`BENCH_URL ${url}`);
const stop = () => void Promise.all([raw.close(), app.close()]).then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
