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
 * ids (up to 2,000), rawUrl, seedMs }) and then `BENCH_URL <url>`.
 */
import { randomUUID } from 'node:crypto';
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

// a TestApp-shaped client for the sign-in helpers of test/helpers/auth.ts
const gql = async <T = Record<string, unknown>>(query: string, variables: Record<string, unknown> = {}, headers: Record<string, string> = {}) => {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-proto': 'https', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as { data?: T; errors?: { message: string }[] } };
};
const t = { gql, db: { sql: app.database.sql } } as unknown as Parameters<typeof createTenantWithAdmin>[0];
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

// audit-report: BENCH_AUDIT_EVENTS rows for this tenant through the owner connection, in one INSERT ... SELECT
// generate_series per 250k (the newest within the current month's partition; seq far above the live chain,
// hashes random: the chain of this tenant does not verify, reports do not care). 50 patients, 20 actors; 10% updates,
// 1% denied, 0.1% emergency (ETREAT) access.
let auditMs = 0;
const auditPatients = Array.from({ length: 50 }, () => randomUUID());
const events = Number(process.env.BENCH_AUDIT_EVENTS ?? 0);
if (events > 0) {
  const started = Date.now();
  const owner = postgres(app.database.ownerUrl, { max: 1, onnotice: () => undefined });
  for (let done = 0; done < events; done += 250_000) {
    const n = Math.min(250_000, events - done);
    await owner`
      insert into audit_events (tenant_id, id, at, seq, prev_hash, hash, event_type, actor_type, actor_id, actor_roles, patient_id,
                                resource_type, resource_id, fields, action, outcome, purpose_of_use, request_id, operation_name)
      select ${tenant.id}::uuid, gen_random_uuid(), now() - make_interval(secs => (g % 86400) * 0.01 + g * 0.00001), 1000000000 + g,
             sha256(g::text::bytea), sha256((g + 1)::text::bytea), 'phi', 'user', 'user-' || (g % 20), '{NURSE}', (${auditPatients}::uuid[])[1 + g % 50],
             'Patient', gen_random_uuid()::text, '{name,dateOfBirth}',
             case when g % 10 = 0 then 'update' else 'read' end,
             case when g % 100 = 7 then 'denied' else 'allowed' end,
             case when g % 1000 = 3 then 'ETREAT' else 'TREAT' end, 'req-' || g, 'PatientRead'
        from generate_series(${done + 1}::bigint, ${done + n}::bigint) g`;
    process.stderr.write(`audit events ${done + n}/${events}\n`);
  }
  await owner`analyze audit_events`;
  await owner.end();
  auditMs = Date.now() - started;
}

// signed in after seeding: access tokens live at most 15 minutes, and seeding 10M audit events takes longer
const session = await loginAs(t, user);

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

const sample = ids.length > 2_000 ? Array.from({ length: 2_000 }, (_, i) => ids[Math.floor((i * ids.length) / 2_000)]!) : ids;
console.log(
  `BENCH_INFO ${JSON.stringify({ token: session.token, tenantId: tenant.id, tenantSlug: tenant.slug, email: user.email, password: user.password, ids: sample, rawUrl, seedMs, auditMs, auditPatients })}`,
);
console.log(`BENCH_URL ${url}`);
const stop = () => void Promise.all([raw.close(), app.close()]).then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
