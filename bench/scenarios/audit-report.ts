/**
 * audit-report (audit issue 6): the compliance UI's report queries,
 * `auditEvents(filter, first: 50)` newest first over GraphQL/HTTP as a
 * COMPLIANCE user signed in with TOTP, on a seeded log
 * (bench/servers/carebase-audit.ts; BENCH_AUDIT_EVENTS, default 1,000,000;
 * seeded once per DATA_DIR and reused). One target per report type, each
 * rotating over many filter values; p50/p95/p99 from every 2xx response's
 * latency (bench/lib.ts). The baseline is serverInfo on the same server.
 *
 * audit-seed: seeds (or finds) the log and exits, printing the time and size.
 */
import type autocannon from 'autocannon';
import { compare, startServer, type Target } from '../lib.js';

const SERVER = 'bench/servers/carebase-audit.ts';
const BASELINE = 'Carebase serverInfo (same server)';
const QUERY =
  'query AuditReport($filter: AuditEventFilter, $after: String) { auditEvents(filter: $filter, first: 50, after: $after) { edges { node { id at action outcome purposeOfUse patientId actorId fields } } pageInfo { hasNextPage endCursor } } }';

interface Info {
  token: string;
  events: number;
  from: string;
  to: string;
  patients: string[];
  actors: string[];
}

const env = () => ({ BENCH_AUDIT_EVENTS: process.env.BENCH_AUDIT_EVENTS ?? '1000000' });

function rotating(bodies: string[]): autocannon.Request[] {
  let i = 0;
  return [{ method: 'POST', setupRequest: (req: any) => ({ ...req, body: bodies[i++ % bodies.length] }) } as autocannon.Request];
}

/** Date windows inside the seeded span: 100 of each of 1 day, 7 days and 30 days at spread-out offsets. */
function windows(info: Info): { from: string; to: string }[] {
  const from = Date.parse(info.from);
  const span = Date.parse(info.to) - from;
  const out: { from: string; to: string }[] = [];
  for (const days of [1, 7, 30]) {
    for (let i = 0; i < 100; i++) {
      const start = from + ((i * 0.618034) % 1) * (span - days * 86_400_000);
      out.push({ from: new Date(start).toISOString(), to: new Date(start + days * 86_400_000).toISOString() });
    }
  }
  return out;
}

export async function auditReport() {
  const report = (name: string, filters: (info: Info) => Record<string, unknown>[]): Target => ({
    name,
    script: SERVER,
    sameServerAs: BASELINE,
    prepare: async (_u, info: Info) => ({
      headers: { authorization: `Bearer ${info.token}` },
      requests: rotating(filters(info).map((filter) => JSON.stringify({ query: QUERY, variables: { filter } }))),
    }),
  });
  return compare([
    { name: BASELINE, script: SERVER, env: env(), body: JSON.stringify({ query: 'query Info { serverInfo { version } }' }) },
    report('by patient (200 patients)', (i) => i.patients.map((patientId) => ({ patientId }))),
    report('by user (100 actors)', (i) => i.actors.map((actorId) => ({ actorId }))),
    report('by date range (1, 7, 30 days)', (i) => windows(i)),
    report('by action / purpose (export, delete, reveal; HPAYMT)', () => [{ actions: ['export'] }, { actions: ['delete'] }, { actions: ['reveal'] }, { purposes: ['HPAYMT'] }]),
    report('break-glass / ETREAT', () => [{ breakGlass: true }]),
    report('denied', () => [{ outcome: 'DENIED' }]),
    report('patient + date range (30 days)', (i) => i.patients.map((patientId, k) => ({ patientId, ...windows(i)[200 + (k % 100)]! }))),
    report('unfiltered', () => [{}]),
  ]);
}

export async function auditSeed() {
  const started = Date.now();
  const s = await startServer(SERVER, { ...env(), BENCH_AUDIT_SEED_ONLY: '1' });
  const info = s.info as { events: number; seedMs: number; seededNow: boolean; dataDir: string; dbBytes: number };
  console.log(
    `${info.events} events in ${info.dataDir}: ${info.seededNow ? `seeded in ${(info.seedMs / 1000).toFixed(0)} s` : `already seeded (took ${(info.seedMs / 1000).toFixed(0)} s)`}, ` +
      `database ${(info.dbBytes / 2 ** 30).toFixed(2)} GiB, ${((Date.now() - started) / 1000).toFixed(0)} s in all`,
  );
  if (s.child.exitCode === null) await new Promise((r) => s.child.once('exit', r));
}
