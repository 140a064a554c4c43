/**
 * Carebase for the `users` scenario (issue 19 item 4): the real createApp (all modules, job workers inline as
 * `npm start` runs them on the embedded default), a provisioned tenant with BENCH_PATIENTS seeded patients (default
 * 10,000, each with an SSN) and signed-in accounts of several roles:
 *
 *   BENCH_USERS_ACCOUNTS   role:count list, default FRONT_DESK:16,PROVIDER:20,BILLING:6,COMPLIANCE:4
 *
 * Every account is invited by the tenant admin, accepts (argon2id hash) and signs in through the login mutation
 * (PROVIDER and COMPLIANCE enrol TOTP at that first sign-in: test/helpers/auth.ts loginAs), 4 at a time. Each
 * PROVIDER is on the care team (`primary_provider`) of an equal, disjoint share of the patients, so providers read,
 * search and update through the care-team rule. The scenario shares each account's session among many virtual users
 * (a user signed in on several workstations).
 *
 * Guards as shipped except where one bench process stands in for a clinic: per-IP budgets are raised (every request
 * comes from 127.0.0.1), the per-user budget (RATE_LIMIT_USER_PER_MINUTE, 1,200) and load shedding stay at their
 * defaults, so a 429 or 503 is an error of the run. Any of them can be overridden from the env.
 *
 * Prints `BENCH_INFO <json>` ({ tenantId, accounts: [{ role, userId, token, ids?, prefixes? }], ids (2,000),
 * prefixes, setupMs, pg }) and then `BENCH_URL <url>`.
 */
import { access } from 'node:fs/promises';
import postgres from 'postgres';
import { createLogger } from '../../src/platform/logger.js';
import { createDbIndexKeyStore, createFieldCrypto, createKeyProvider } from '../../src/platform/crypto/index.js';
import { createTenantWithAdmin, loginAs, createUser, type TestUser } from '../../test/helpers/auth.js';
import { searchPrefixes, seedPatients } from '../scenarios/patients.js';
import { limited, startBenchApp } from './client.js';

const started = Date.now();
const { config, app, url, t } = await startBenchApp('.data/bench-users');

const tenant = await createTenantWithAdmin(t);

const spec = (process.env.BENCH_USERS_ACCOUNTS ?? 'FRONT_DESK:16,PROVIDER:20,BILLING:6,COMPLIANCE:4')
  .split(',')
  .map((s) => s.trim().split(':'))
  .flatMap(([role, n]) => Array.from({ length: Number(n) }, () => role!));
// the admin's session first (createUser signs it in once), then the invitations
const firstUser = await createUser(t, tenant, spec[0]!);
const users: TestUser[] = [firstUser, ...(await limited(spec.slice(1), 4, (role) => createUser(t, tenant, role)))];

// patients (the bench's bulk seeding through the app role, real envelopes and blind indexes)
const count = Number(process.env.BENCH_PATIENTS ?? 10_000);
const crypto = createFieldCrypto({ provider: createKeyProvider(config, createLogger('warn')), indexKeys: createDbIndexKeyStore(app.database.sql) });
const seeded = await seedPatients(app.database.sql, { tenantId: tenant.id, count, crypto, concurrency: 4 });
const ids = seeded.ids;

// care teams: provider k gets patients k, k + P, k + 2P, ... (disjoint shares)
const providers = users.filter((u) => u.roles.includes('PROVIDER'));
const careTeams = new Map<string, string[]>(providers.map((p) => [p.id, []]));
ids.forEach((id, i) => providers.length && careTeams.get(providers[i % providers.length]!.id)!.push(id));
for (const p of providers) {
  const mine = careTeams.get(p.id)!;
  await app.database.sql.begin(async (tx) => {
    await tx`select set_config('app.tenant_id', ${tenant.id}, true)`;
    await tx`
      insert into patient_care_team (tenant_id, patient_id, user_id, role, added_by)
      select ${tenant.id}, unnest(${mine}::uuid[]), ${p.id}, 'primary_provider', ${tenant.admin.id}`;
  });
}
await app.database.sql`analyze patients`.catch(() => undefined);
await app.database.sql`analyze patient_care_team`.catch(() => undefined);

// sign-ins (TOTP enrolment for PROVIDER and COMPLIANCE)
const sessions = await limited(users, 4, (u) => loginAs(t, u));

/** up to `n` evenly spread elements */
const sample = <X>(xs: X[], n: number) => (xs.length > n ? Array.from({ length: n }, (_, i) => xs[Math.floor((i * xs.length) / n)]!) : xs);

async function prefixesOf(patientIds: string[]): Promise<string[]> {
  const rows = await app.database.sql.begin(async (tx) => {
    await tx`select set_config('app.tenant_id', ${tenant.id}, true)`;
    return tx<{ p: string }[]>`select distinct lower(left(family_name, 3)) as p from patients where tenant_id = ${tenant.id} and id = any(${patientIds}::uuid[])`;
  });
  return rows.map((r) => r.p);
}

const accounts = await Promise.all(
  sessions.map(async (s) => {
    const u = s.user;
    const mine = careTeams.get(u.id);
    return {
      role: u.roles[0]!,
      userId: u.id,
      token: s.token,
      ...(mine ? { ids: sample(mine, 200), prefixes: await prefixesOf(sample(mine, 200)) } : {}),
    };
  }),
);

// where the app's PostgreSQL is (for the bench's per-process CPU accounting of PostgreSQL)
const ownerUrl = new URL(app.database.ownerUrl);
let socketDir: string | null = null;
{
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

console.log(
  `BENCH_INFO ${JSON.stringify({
    tenantId: tenant.id,
    accounts,
    ids: sample(ids, 2_000),
    prefixes: searchPrefixes(200),
    setupMs: Date.now() - started,
    seedMs: seeded.ms,
    pg: { url: app.database.ownerUrl, database: ownerUrl.pathname.slice(1), socketDir },
  })}`,
);
console.log(`BENCH_URL ${url}`);
const stop = () => void app.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
