/**
 * Scenarios on a provisioned, signed-in Carebase (bench/servers/carebase-seeded.ts):
 * authed-serverInfo, login, patient-read, patient-create, patient-search,
 * audited-read (audit-report: audit-report.ts). Each compares with baselines measured in the same run.
 */
import { availableParallelism } from 'node:os';
import { hash, verify } from '@node-rs/argon2';
import type autocannon from 'autocannon';
import { ARGON2_PARAMS } from '../../src/modules/identity/passwords.js';
import { compare, DURATION, CONNECTIONS, startServer, load, printTable, type Target } from '../lib.js';
import { patientCreateBody, patientReadBody, patientSearchBody, pglCreateBody, pglReadBody, searchPrefixes } from './patients.js';

const SEEDED = 'bench/servers/carebase-seeded.ts';
const SERVER_INFO = JSON.stringify({ query: 'query Info { serverInfo { version } }' });
const bearer = (info: { token: string }) => ({ authorization: `Bearer ${info.token}`, 'content-type': 'application/json' });

/** autocannon requests that cycle through bodies (one per request). */
function rotating(bodies: () => string): autocannon.Request[] {
  return [{ method: 'POST', setupRequest: (req: any) => ({ ...req, body: bodies() }) } as autocannon.Request];
}
function cycle(xs: string[]): () => string {
  let i = 0;
  return () => xs[i++ % xs.length]!;
}

export async function authedServerInfo() {
  return compare([
    { name: 'bare Apollo (static resolver)', script: 'bench/servers/bare-apollo.ts', body: SERVER_INFO },
    { name: 'Carebase serverInfo anonymous', script: SEEDED, body: SERVER_INFO },
    { name: 'Carebase serverInfo + Bearer JWT', script: SEEDED, sameServerAs: 'Carebase serverInfo anonymous', body: SERVER_INFO, prepare: async (_u, info) => ({ headers: bearer(info) }) },
  ]);
}

/** login mutation (argon2id-bound) vs raw @node-rs/argon2 verify with the same parameters in this process. */
export async function login() {
  const s = await startServer(SEEDED);
  try {
    const info = s.info as { tenantSlug: string; email: string; password: string };
    const body = JSON.stringify({
      query: 'mutation Login($input: LoginInput!) { login(input: $input) { status accessToken } }',
      variables: { input: { tenantSlug: info.tenantSlug, email: info.email, password: info.password } },
    });
    const stored = await hash(info.password, ARGON2_PARAMS);
    const rawOnce = async (concurrency: number, seconds: number) => {
      let n = 0;
      const end = Date.now() + seconds * 1000;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (Date.now() < end) {
            await verify(stored, info.password);
            n++;
          }
        }),
      );
      return n / seconds;
    };
    const rows = [];
    const rawRps: number[] = [];
    const loginRuns = [];
    for (let round = 0; round < 2; round++) {
      await rawOnce(4, 1);
      rawRps.push(await rawOnce(4, DURATION));
      loginRuns.push(await load({ name: 'login mutation', url: `${s.url}/graphql`, body, headers: { 'x-forwarded-proto': 'https' } }));
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    rows.push({ name: 'raw argon2id verify (4 in flight, libuv pool, this process)', rps: mean(rawRps), p50: 0, p99: 0, errors: 0, non2xx: 0, requests: 0 });
    rows.push({
      name: 'login mutation',
      rps: mean(loginRuns.map((r) => r.rps)),
      p50: mean(loginRuns.map((r) => r.p50)),
      p99: mean(loginRuns.map((r) => r.p99)),
      errors: loginRuns.reduce((a, r) => a + r.errors, 0),
      non2xx: loginRuns.reduce((a, r) => a + r.non2xx, 0),
      requests: loginRuns.reduce((a, r) => a + r.requests, 0),
    });
    console.log(`argon2 params ${JSON.stringify(ARGON2_PARAMS)}; ${availableParallelism()} cores; UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}`);
    printTable(rows, rows[0]!);
    return rows;
  } finally {
    await s.stop();
  }
}

const PATIENTS = Number(process.env.BENCH_PATIENTS ?? 10_000);

const BARE_SQL = 'bare Apollo + SQL (same operation, postgres-js, RLS tx)';
const PGL = 'bench/servers/postgraphile.ts';

/**
 * The PostGraphile peer's environment: its own database on the PostgreSQL of the seeded Carebase server started
 * before it (target `seeded`), reached the same way (Unix socket on the embedded server, TCP on DATABASE_URL).
 */
const pglEnv = (seeded: string) => (infos: Record<string, any>) => {
  const pg = infos[seeded]?.pg as { url: string; socketDir: string | null } | undefined;
  if (!pg) throw new Error(`the PostGraphile peer needs the database of "${seeded}" (started before it)`);
  return { PGL_OWNER_URL: pg.url, PGL_SOCKET_DIR: pg.socketDir ?? '', BENCH_PATIENTS: String(PATIENTS) };
};

/**
 * patient-read: Carebase `patient(id)` vs PostGraphile 5's read by id over a plain patients table (the peer, no
 * auth, no audit), vs bare Apollo (static resolver) and vs bare Apollo resolving the same query with plain SQL.
 */
export async function patientRead() {
  const env = { BENCH_PATIENTS: String(PATIENTS) };
  const reads = (info: { ids: string[] }) => rotating(cycle(info.ids.map(patientReadBody)));
  const peer = `PostGraphile 5 patientByRowId (${PATIENTS} patients, no auth, no audit)`;
  return compare(
    [
      { name: 'bare Apollo (static resolver)', script: 'bench/servers/bare-apollo.ts', body: SERVER_INFO },
      { name: BARE_SQL, script: SEEDED, env, prepare: async (_u, info) => ({ url: `${info.rawUrl}/graphql`, requests: reads(info) }) },
      { name: peer, script: PGL, env: pglEnv(BARE_SQL), prepare: async (_u, info) => ({ requests: rotating(cycle(info.ids.map(pglReadBody))) }) },
      {
        name: `Carebase patient(id) (${PATIENTS} patients)`,
        script: SEEDED,
        sameServerAs: BARE_SQL,
        prepare: async (_u, info) => ({ headers: bearer(info), requests: reads(info) }),
      },
    ],
    { peer, peerLabel: 'PostGraphile' },
  );
}

/**
 * patient-create: Carebase `createPatient` vs PostGraphile 5's createPatient over the plain table (the peer), vs
 * bare Apollo (static) and vs bare Apollo inserting the row with plain SQL.
 */
export async function patientCreate() {
  let i = 0;
  let j = 0;
  let k = 0;
  const peer = 'PostGraphile 5 createPatient (no auth, no audit, no encryption)';
  return compare(
    [
      { name: 'bare Apollo (static resolver)', script: 'bench/servers/bare-apollo.ts', body: SERVER_INFO },
      { name: BARE_SQL, script: SEEDED, prepare: async (_u, info) => ({ url: `${info.rawUrl}/graphql`, requests: rotating(() => patientCreateBody(j++)) }) },
      { name: peer, script: PGL, env: pglEnv(BARE_SQL), prepare: async () => ({ requests: rotating(() => pglCreateBody(k++)) }) },
      {
        name: 'Carebase createPatient (SSN, phone, email)',
        script: SEEDED,
        sameServerAs: BARE_SQL,
        prepare: async (_u, info) => ({ headers: bearer(info), requests: rotating(() => patientCreateBody(i++)) }),
      },
    ],
    { peer, peerLabel: 'PostGraphile' },
  );
}

/**
 * audited-read: the same PHI read (`patient(id)`: JWT, RBAC/ABAC, RLS,
 * decryption) with and without its audit write, on two servers of the same
 * build: BENCH_AUDIT=off makes the bench server's group-commit writer drop
 * events (bench only; the product cannot turn the audit off).
 */
export async function auditedRead() {
  const env = { BENCH_PATIENTS: String(Math.min(PATIENTS, 10_000)) };
  const reads = (info: { ids: string[] }) => rotating(cycle(info.ids.map(patientReadBody)));
  return compare([
    {
      name: 'patient(id) without audit write',
      script: SEEDED,
      env: { ...env, BENCH_AUDIT: 'off', DATA_DIR: '.data/bench-app-noaudit' },
      prepare: async (_u, info) => ({ headers: bearer(info), requests: reads(info) }),
    },
    { name: 'patient(id) audited (event committed before the response)', script: SEEDED, env, prepare: async (_u, info) => ({ headers: bearer(info), requests: reads(info) }) },
  ]);
}

/** patient search p50 at a large tenant vs a 10k tenant (two servers, separate data dirs). */
export async function patientSearch() {
  const big = Number(process.env.BENCH_SEARCH_PATIENTS ?? 100_000);
  const prefixes = searchPrefixes(200).map((p) => patientSearchBody(p));
  const mk = (n: number, dir: string): Target => ({
    name: `search ${n} patients`,
    script: SEEDED,
    env: { BENCH_PATIENTS: String(n), DATA_DIR: dir },
    prepare: async (_u, info) => ({ headers: bearer(info), requests: rotating(cycle(prefixes)) }),
  });
  return compare([mk(10_000, '.data/bench-search-10k'), mk(big, '.data/bench-search-big')]);
}

/**
 * rx-check: the prescribing safety check (`medicationSafetyCheck`, fluconazole for a patient on 10 medications with 5
 * allergies: interaction, allergy, duplicate-therapy, dose and age rules) against an audited `patient(id)` read of the
 * same patients by the same signed-in provider on the same server.
 */
export async function rxCheck() {
  const env = { BENCH_PATIENTS: '200', BENCH_ROLE: 'PROVIDER', BENCH_RX: '1' };
  const READ = 'Carebase patient(id) (provider, care team)';
  const check = (id: string) => JSON.stringify({ query: 'query Check($p: UUID!) { medicationSafetyCheck(patientId: $p, drugRxcui: "197698") { key severity } }', variables: { p: id } });
  return compare([
    { name: READ, script: SEEDED, env, prepare: async (_u, info) => ({ headers: bearer(info), requests: rotating(cycle(info.rxIds.map(patientReadBody))) }) },
    {
      name: 'Carebase medicationSafetyCheck (10 meds, 5 allergies)',
      script: SEEDED,
      sameServerAs: READ,
      prepare: async (baseUrl, info) => {
        // one answer checked before the load: alerts, not errors (a GraphQL error is an HTTP 200)
        const res = (await (await fetch(`${baseUrl}/graphql`, { method: 'POST', headers: { ...bearer(info), 'x-forwarded-proto': 'https' }, body: check(info.rxIds[0]) })).json()) as { data?: { medicationSafetyCheck: { key: string }[] }; errors?: unknown };
        if (!res.data?.medicationSafetyCheck?.length) throw new Error(`rx-check: unexpected answer ${JSON.stringify(res).slice(0, 300)}`);
        console.log(`rx-check: ${res.data.medicationSafetyCheck.length} alerts per check (${res.data.medicationSafetyCheck.map((a) => a.key).join(', ')})`);
        return { headers: bearer(info), requests: rotating(cycle(info.rxIds.map(check))) };
      },
    },
  ]);
}
