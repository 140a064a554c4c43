/**
 * Carebase (real createApp, all modules) for the audit-report scenario: a
 * tenant whose audit log holds BENCH_AUDIT_EVENTS seeded events (default
 * 1,000,000) and a COMPLIANCE user signed in with TOTP.
 *
 * The seeded log is kept: DATA_DIR (default `.data/bench-audit-<events>`)
 * holds the embedded database and `bench-audit-seed.json` (tenant, the
 * compliance user's bench credentials, the seeded time span). A later run with
 * the same count signs the same user in again and seeds nothing. Delete the
 * directory to seed afresh.
 *
 * The log (see seedAuditEvents): 12 months back from the first run, across
 * the monthly partitions (past ones created here as the owner, like
 * carebase_audit_ensure_partitions does for the current ones), inserted in
 * time order with every index in place, 100,000 patients (skewed: a few
 * patients have many events), 500 staff actors, phi/security/audit events
 * with a mix of actions, purposes and outcomes (1% denied, ~0.15% break-glass
 * or ETREAT) and production-width rows (fields, session, request id, ip,
 * user agent, detail). `seq` is far above the live chain and the hashes are
 * random, so this tenant's chain does not verify (reports do not care).
 *
 * Bench settings as in carebase-seeded.ts (rate limits raised, event-loop
 * shedding off). Prints `BENCH_INFO <json>` ({ token, tenantId, events, from,
 * to, patients, actors, seedMs, seededNow }) and then `BENCH_URL <url>`.
 * BENCH_AUDIT_SEED_ONLY=1 exits after seeding (npm run bench -- audit-seed).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import postgres from 'postgres';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createTenantWithAdmin, createUser, loginAs, type TestUser } from '../../test/helpers/auth.js';
import { benchClient } from './client.js';

const events = Number(process.env.BENCH_AUDIT_EVENTS ?? 1_000_000);
const dataDir = process.env.DATA_DIR ?? `.data/bench-audit-${events}`;
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
  DATA_DIR: dataDir,
  JOB_WORKERS: process.env.JOB_WORKERS ?? 'off',
});
const app = await createApp(config);
const url = await app.listen();

const PATIENTS = 100_000;
const ACTORS = 500;
const MONTHS = 12;

/** The seeded ids: md5 of (tenant, kind, k) as a uuid, the same expression as in the seeding SQL. */
const seededId = (tenantId: string, kind: 'p' | 'u', k: number) => {
  const h = createHash('md5').update(`${tenantId}:${kind}:${k}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};

interface Seed {
  events: number;
  tenantId: string;
  user: TestUser;
  from: string;
  to: string;
  seedMs: number;
}

const { t } = benchClient(url, app.database.sql);

const seedFile = join(dataDir, 'bench-audit-seed.json');
// seeding only: commits need not wait for the WAL flush
const owner = postgres(app.database.ownerUrl, { max: 2, onnotice: () => undefined, connection: { synchronous_commit: 'off' } });
let seed: Seed | undefined = existsSync(seedFile) ? (JSON.parse(readFileSync(seedFile, 'utf8')) as Seed) : undefined;
if (seed && (seed.events !== events || !(await owner`select 1 from tenants where id = ${seed.tenantId}`).length)) {
  throw new Error(`${seedFile} is for another log (${seed.events} events); delete ${dataDir} or set DATA_DIR`);
}
let seededNow = false;
if (!seed) {
  const tenant = await createTenantWithAdmin(t);
  const user = await createUser(t, tenant, 'COMPLIANCE');
  const to = new Date();
  const from = new Date(to.getTime() - 365 * 86_400_000);
  const started = Date.now();
  await seedAuditEvents(owner, tenant.id, events, from, to);
  seed = { events, tenantId: tenant.id, user, from: from.toISOString(), to: to.toISOString(), seedMs: Date.now() - started };
  writeFileSync(seedFile, JSON.stringify(seed), { mode: 0o600 });
  seededNow = true;
}
const session = await loginAs(t, seed.user);
// the user's last TOTP step moves on each sign-in (codes are single use)
writeFileSync(seedFile, JSON.stringify(seed), { mode: 0o600 });
const [{ bytes }] = (await owner`select pg_database_size(current_database())::bigint::text as bytes`) as unknown as [{ bytes: string }];
await owner.end();
if (process.env.BENCH_AUDIT_SEED_ONLY) {
  console.log(`BENCH_INFO ${JSON.stringify({ events, seedMs: seed.seedMs, seededNow, dataDir, dbBytes: Number(bytes) })}`);
  console.log('BENCH_URL none');
  await app.close();
  process.exit(0);
}

// sample ids for the report filters: patients spread over the 100k (most have ~100 events, a few thousands), taking the
// next id that is an RFC 9562 UUID (the API validates patientId; an md5 is one in 8 times)
const RFC_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const patients = Array.from({ length: 200 }, (_, i) => {
  for (let k = Math.floor((i * PATIENTS) / 200) + 7; ; k++) {
    const id = seededId(seed!.tenantId, 'p', k);
    if (RFC_UUID.test(id)) return id;
  }
});
const actors = Array.from({ length: 100 }, (_, i) => seededId(seed!.tenantId, 'u', i * 5 + 3));
console.log(
  `BENCH_INFO ${JSON.stringify({ token: session.token, tenantId: seed.tenantId, events, from: seed.from, to: seed.to, patients, actors, seedMs: seed.seedMs, seededNow, dbBytes: Number(bytes) })}`,
);
console.log(`BENCH_URL ${url}`);
const stop = () => void app.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

/**
 * Inserts `count` audit events for the tenant with `at` spread evenly over [from, to), in time order, through the
 * owner connection (the app role can only append through the chain writer). Two connections, each on its own half of
 * the span (different partitions), 100k rows per INSERT ... SELECT.
 */
async function seedAuditEvents(sql: postgres.Sql, tenantId: string, count: number, from: Date, to: Date) {
  // past monthly partitions (carebase_audit_ensure_partitions only makes last month onwards): same DDL
  await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(7264011301)`;
    for (let i = MONTHS; i >= 2; i--) {
      const m = new Date(Date.UTC(to.getUTCFullYear(), to.getUTCMonth() - i, 1));
      const next = new Date(Date.UTC(m.getUTCFullYear(), m.getUTCMonth() + 1, 1));
      const part = `audit_events_${m.toISOString().slice(0, 7).replace('-', '')}`;
      const [exists] = await tx`select to_regclass(${'audit_partitions.' + part}) as r`;
      if (exists!.r) continue;
      await tx.unsafe(`CREATE TABLE audit_partitions.${part} PARTITION OF public.audit_events FOR VALUES FROM ('${m.toISOString()}') TO ('${next.toISOString()}')`);
      await tx.unsafe(`REVOKE ALL ON audit_partitions.${part} FROM PUBLIC, carebase_app`);
      await tx.unsafe(`ALTER TABLE audit_partitions.${part} ENABLE ROW LEVEL SECURITY`);
      await tx.unsafe(`CREATE POLICY tenant_isolation ON audit_partitions.${part} USING (tenant_id = carebase_current_tenant()) WITH CHECK (tenant_id = carebase_current_tenant())`);
      await tx.unsafe(`CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_partitions.${part} FOR EACH STATEMENT EXECUTE FUNCTION public.carebase_audit_append_only()`);
    }
    await tx`select carebase_audit_ensure_partitions(1)`;
  });
  const spanMs = to.getTime() - from.getTime();
  const BATCH = 100_000;
  let done = 0;
  const half = Math.ceil(count / 2);
  const worker = async (lo: number, hi: number) => {
    for (let a = lo; a <= hi; a += BATCH) {
      const b = Math.min(hi, a + BATCH - 1);
      await sql`
        insert into audit_events (tenant_id, id, at, seq, prev_hash, hash, event_type, actor_type, actor_id, actor_roles, session_id,
                                  patient_id, resource_type, resource_id, fields, categories, action, outcome, purpose_of_use,
                                  request_id, ip, user_agent, operation_name, detail)
        select ${tenantId}::uuid, gen_random_uuid(), at, 1000000000 + g, sha256(g::text::bytea), sha256((g + 1)::text::bytea),
               kind, 'user', actor, roles,
               md5(actor || to_char(at, 'YYYYMMDD'))::uuid::text,
               case when kind = 'phi' then patient end,
               case when kind <> 'phi' then null when r5 < 0.7 then 'Patient' when r5 < 0.85 then 'Observation' when r5 < 0.95 then 'Encounter' else 'ClinicalNote' end,
               case when kind <> 'phi' then null when r5 < 0.7 then patient::text else gen_random_uuid()::text end,
               case when kind <> 'phi' then '{}'::text[] when r5 < 0.3 then '{Patient.name,Patient.dateOfBirth,Patient.mrn}'
                    when r5 < 0.6 then '{Patient.name,Patient.address,Patient.phone,Patient.email}' when r5 < 0.7 then '{Patient.ssnLast4}'
                    else '{Observation.code,Observation.value,Observation.effectiveAt}' end,
               case when kind <> 'phi' then '{}'::text[] when r5 < 0.6 then '{demographics,contact}' when r5 < 0.7 then '{ssn}' else '{clinical}' end,
               action,
               case when r3 < 0.01 then 'denied' when r3 < 0.013 and action in ('create', 'update', 'delete') then 'failed' else 'allowed' end,
               case when kind <> 'phi' then null when action = 'break-glass' or r4 < 0.001 then 'ETREAT'
                    when r4 < 0.02 then 'PATRQT' when r4 < 0.03 then 'HOPERAT' when ak % 10 = 8 then 'HPAYMT' when ak % 10 = 9 then 'HOPERAT' else 'TREAT' end,
               gen_random_uuid()::text, '10.' || (ak % 8) || '.' || (ak % 250) || '.' || (1 + ak % 200),
               case ak % 3 when 0 then 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36'
                           when 1 then 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15'
                           else 'Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 CarebaseApp/3.4.1' end,
               case when kind = 'security' then 'Login' when kind = 'audit' then 'AuditReport' when action = 'read' then 'PatientChart'
                    when action = 'update' then 'UpdatePatient' when action = 'create' then 'CreateObservation' else 'Patient' || initcap(action) end,
               case when action = 'break-glass' then jsonb_build_object('breakGlassGrantId', gen_random_uuid(), 'reason', 'EMERGENCY')
                    when action = 'export' then jsonb_build_object('rows', 1 + (r5 * 500)::int) when kind = 'audit' then '{"filter":["AuditLog.patientId"]}'::jsonb
                    else '{}'::jsonb end
          from (
            select g, at, ak, r3, r4, r5, r6, kind,
                   md5(${tenantId}::text || ':u:' || ak)::uuid::text as actor,
                   md5(${tenantId}::text || ':p:' || floor(${PATIENTS}::int * r6 * r6)::int)::uuid as patient,
                   case when kind = 'audit' then '{COMPLIANCE}'::text[] when ak % 10 < 5 then '{NURSE}'::text[] when ak % 10 < 8 then '{PROVIDER}'::text[]
                        when ak % 10 = 8 then '{BILLING}'::text[] else '{FRONT_DESK}'::text[] end as roles,
                   case when kind = 'security' then (case when r2 < 0.8 then 'login' when r2 < 0.95 then 'logout' else 'login_failed' end)
                        when kind = 'audit' then 'read'
                        when r2 < 0.0005 then 'break-glass' when r2 < 0.0025 then 'delete' when r2 < 0.0125 then 'reveal' when r2 < 0.0225 then 'export'
                        when r2 < 0.0625 then 'create' when r2 < 0.1425 then 'update' else 'read' end as action
              from (
                select g, ${from}::timestamptz + make_interval(secs => ((g - 1) + random()) * ${spanMs / 1000 / count}::float8) as at,
                       floor(random() * ${ACTORS}::int)::int as ak, random() as r2, random() as r6, random() as r3, random() as r4, random() as r5,
                       (case when r1 < 0.03 then 'security' when r1 < 0.035 then 'audit' else 'phi' end) as kind
                  from (select g, random() as r1 from generate_series(${a}::bigint, ${b}::bigint) g) s0
              ) s1
          ) s`;
      done += b - a + 1;
      process.stderr.write(`audit events ${done}/${count} (${Math.round((Date.now() - t0) / 1000)} s)\n`);
    }
  };
  const t0 = Date.now();
  await Promise.all([worker(1, half), worker(half + 1, count)]);
  await sql`analyze audit_events`;
}
