/**
 * users (issue 19 item 4): 1,000 signed-in virtual users over open connections, as a clinic's frontends are.
 *
 * The server (bench/servers/carebase-users.ts, a child process running the real createApp) seeds a tenant with
 * 10,000 patients and signs in a few accounts per role (FRONT_DESK, PROVIDER on the care team of a share of the
 * patients, BILLING, COMPLIANCE); each account's session is shared by the virtual users (VUs) of its role, as one
 * person is signed in on several workstations. This process then starts BENCH_USERS VUs (default 1,000), staggered
 * over BENCH_USERS_RAMP_S (default 30 s). Each VU
 *   - holds a socket.io connection (socket.io-client, websocket, `auth: { token }` as docs/realtime.md shows; the
 *     server joins it to its `tenant:` and `user:` rooms on the handshake) and confirms its tenant room with a
 *     `room:join` ack; COMPLIANCE VUs also join `alerts:security`;
 *   - sends GraphQL over HTTP/1.1 keep-alive through one node:http Agent bounded to BENCH_USERS_HTTP_CONNECTIONS
 *     connections (default 100: the clinic's traffic through a reverse proxy's upstream pool);
 *   - thinks between actions for an exponential time of mean BENCH_USERS_THINK_MS (default 7,000 ms), so the
 *     arrival of actions is Poisson at about (VUs - compliance VUs) / 7 s ≈ 136 actions/s, ~160 HTTP requests/s;
 *   - runs its role's mix:
 *       FRONT_DESK  search 35%, read 30%, update 20% (read, then update with the version read), create 15%
 *       PROVIDER    read 50% (open the chart: read + socket `room:join patient:<id>`, leaving the previous
 *                   chart's room), search 35% (the care-team scope), update 15% — all on their care team
 *       BILLING     read 40%, search 30%, SSN reveal 30% (`revealPatientSsn` with purpose HPAYMT and a reason:
 *                   audited, kept in patient_ssn_reveals; in Carebase only BILLING holds `patient:ssn:reveal`,
 *                   clinicians do not)
 *       COMPLIANCE  one audit report per minute (`auditEvents(first: 50)` by patient, by user, last 15 minutes,
 *                   reveals, denied), the first at a random second of its first minute
 * Latencies are measured in this process from sending the request to the parsed answer (time queued for one of
 * the agent's connections included). Only the actions started inside the measured window (BENCH_USERS_DURATION_S,
 * default 90 s, after the ramp) count in the table; the ramp's are summarised apart. An error is any answer that
 * is not HTTP 200 without GraphQL errors (by `extensions.code`, or HTTP_<status>, or the network error), a socket
 * that fails to connect or to join, or drops during the run.
 *
 * Server side, sampled during the run: RSS of the server process (/proc/<pid>/status VmRSS every second, and its
 * VmHWM), event-loop delay from the server's own GET /metrics every 5 s (prom-client's default
 * nodejs_eventloop_lag_{p50,p99,max}_seconds: a monitorEventLoopDelay histogram reset at each scrape, so each
 * scrape covers the 5 s before it; its 10 ms sampling interval is included, an idle loop reads ~10.1 ms), the
 * server's GraphQL duration histogram (mean per operation) and the CPU of the server process and of PostgreSQL
 * (bench/cpu.ts).
 *
 * Database: the embedded default (no DATABASE_URL: embedded PostgreSQL in a fresh temporary DATA_DIR, removed
 * afterwards) or, with DATABASE_URL, a fresh database `carebase_bench_users_<hex>` created on that server and
 * dropped afterwards. BENCH_USERS_MIX (default FRONT_DESK:400,PROVIDER:400,BILLING:150,COMPLIANCE:50, scaled to
 * BENCH_USERS) and BENCH_USERS_ACCOUNTS (server) change the roles.
 */
import os from 'node:os';
import { readFile } from 'node:fs/promises';
import { io, type Socket } from 'socket.io-client';
import { keepAliveGraphql, scenarioDatabase, startServer, percentile } from '../lib.js';
import { cpuPressureUs, PgCpu, processCpuUs } from '../cpu.js';
import { patientCreateBody, patientReadBody, patientSearchBody } from './patients.js';

const N = Number(process.env.BENCH_USERS ?? 1000);
const RAMP_S = Number(process.env.BENCH_USERS_RAMP_S ?? 30);
const DURATION_S = Number(process.env.BENCH_USERS_DURATION_S ?? 90);
const THINK_MS = Number(process.env.BENCH_USERS_THINK_MS ?? 7000);
const HTTP_CONNECTIONS = Number(process.env.BENCH_USERS_HTTP_CONNECTIONS ?? 100);
const REQUEST_TIMEOUT_MS = 15_000;
const REPORT_EVERY_MS = 60_000;

type Role = 'FRONT_DESK' | 'PROVIDER' | 'BILLING' | 'COMPLIANCE';
interface Account {
  role: Role;
  userId: string;
  token: string;
  ids?: string[];
  prefixes?: string[];
}
interface Info {
  tenantId: string;
  accounts: Account[];
  ids: string[];
  prefixes: string[];
  setupMs: number;
  seedMs: number;
  pg: { url: string; database: string };
}

const UPDATE = `mutation PatientUpdate($id: UUID!, $version: Int!, $input: UpdatePatientInput!) { updatePatient(id: $id, version: $version, input: $input) { id version } }`;
const REVEAL = `mutation RevealSsn($patientId: UUID!, $purpose: SsnRevealPurpose, $reason: String) { revealPatientSsn(patientId: $patientId, purpose: $purpose, reason: $reason) { revealId revealedAt } }`;
const REPORT =
  'query AuditReport($filter: AuditEventFilter, $after: String) { auditEvents(filter: $filter, first: 50, after: $after) { edges { node { id at action outcome purposeOfUse patientId actorId fields } } pageInfo { hasNextPage endCursor } } }';

const MIXES: Record<Exclude<Role, 'COMPLIANCE'>, [Op, number][]> = {
  FRONT_DESK: [
    ['patient search', 35],
    ['patient read', 30],
    ['patient update', 20],
    ['patient create', 15],
  ],
  PROVIDER: [
    ['patient read', 50],
    ['patient search', 35],
    ['patient update', 15],
  ],
  BILLING: [
    ['patient read', 40],
    ['patient search', 30],
    ['SSN reveal (HPAYMT)', 30],
  ],
};
type Op = 'patient search' | 'patient read' | 'patient update' | 'patient create' | 'SSN reveal (HPAYMT)' | 'audit report' | 'socket room:join patient';
const OPS: Op[] = ['patient search', 'patient read', 'patient update', 'patient create', 'SSN reveal (HPAYMT)', 'audit report', 'socket room:join patient'];

const pick = <X>(xs: X[]): X => xs[Math.floor(Math.random() * xs.length)]!;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));
/** a VU's sleep: ends early when the run stops (wakeAll) */
const wakers = new Set<() => void>();
const vuSleep = (ms: number) =>
  new Promise<void>((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      wakers.delete(wake);
      resolve();
    };
    const timer = setTimeout(wake, Math.max(0, ms));
    wakers.add(wake);
  });
const wakeAll = () => {
  for (const w of [...wakers]) w();
};
const exp = (mean: number) => -mean * Math.log(1 - Math.random());

// ------------------------------------------------------------------ recording

interface Sample {
  op: Op;
  ms: number;
  /** undefined = success */
  code?: string;
  steady: boolean;
  /** performance.now() at the start */
  at: number;
}

class Recorder {
  samples: Sample[] = [];
  /** updates answered CONFLICT and retried after a reload */
  conflicts = 0;
  /** start of each sample, ms since t0 (for the timeline) */
  t0 = 0;
  windowStart = Infinity;
  windowEnd = Infinity;
  inWindow(t: number) {
    return t >= this.windowStart && t < this.windowEnd;
  }
  add(op: Op, startedAt: number, code?: string) {
    this.samples.push({ op, ms: performance.now() - startedAt, code, steady: this.inWindow(startedAt), at: startedAt });
  }
}

// ------------------------------------------------------------------ HTTP


const graphqlClient = (baseUrl: string) => keepAliveGraphql(baseUrl, { connections: HTTP_CONNECTIONS, timeoutMs: REQUEST_TIMEOUT_MS });

// ------------------------------------------------------------------ sockets

interface SocketStats {
  attempted: number;
  connected: number;
  joined: number;
  failures: Record<string, number>;
  connectMs: number[];
  disconnects: Record<string, number>;
  events: number;
  /** events received, by event name and domain event type */
  eventTypes: Record<string, number>;
}

function ack<T = { ok: boolean; error?: { code: string } }>(s: Socket, event: string, payload: unknown): Promise<T> {
  return s.timeout(REQUEST_TIMEOUT_MS).emitWithAck(event, payload) as Promise<T>;
}

async function connectSocket(url: string, account: Account, tenantId: string, stats: SocketStats): Promise<Socket | undefined> {
  stats.attempted++;
  const t0 = performance.now();
  const s = io(url, { transports: ['websocket'], auth: { token: account.token }, reconnection: false, forceNew: true });
  const ok = await new Promise<boolean>((resolve) => {
    s.once('connect', () => resolve(true));
    s.once('connect_error', (e: Error & { data?: { code?: string } }) => {
      const code = e.data?.code ?? e.message;
      stats.failures[`connect: ${code}`] = (stats.failures[`connect: ${code}`] ?? 0) + 1;
      resolve(false);
    });
  });
  if (!ok) {
    s.close();
    return undefined;
  }
  stats.connected++;
  try {
    const rooms = [`tenant:${tenantId}`, ...(account.role === 'COMPLIANCE' ? ['alerts:security'] : [])];
    for (const room of rooms) {
      const r = await ack(s, 'room:join', { room });
      if (!r.ok) throw new Error(`room:join ${room.split(':')[0]}: ${r.error?.code ?? 'refused'}`);
    }
    stats.joined++;
    stats.connectMs.push(performance.now() - t0);
  } catch (e) {
    const code = (e as Error).message;
    stats.failures[code] = (stats.failures[code] ?? 0) + 1;
  }
  s.onAny((name: string, e?: { type?: string }) => {
    if (name === 'event') stats.events++;
    const key = name === 'event' ? `event ${e?.type ?? '?'}` : name;
    stats.eventTypes[key] = (stats.eventTypes[key] ?? 0) + 1;
  });
  s.on('disconnect', (reason) => {
    if (reason === 'io client disconnect') return;
    stats.disconnects[reason] = (stats.disconnects[reason] ?? 0) + 1;
  });
  return s;
}

// ------------------------------------------------------------------ server-side probes

async function rssKb(pid: number): Promise<{ rss: number; hwm: number } | undefined> {
  try {
    const s = await readFile(`/proc/${pid}/status`, 'utf8');
    return { rss: Number(/VmRSS:\s+(\d+)/.exec(s)?.[1]), hwm: Number(/VmHWM:\s+(\d+)/.exec(s)?.[1]) };
  } catch {
    return undefined;
  }
}

interface Scrape {
  at: number;
  lag: { p50: number; p99: number; max: number };
  /** MB: V8 heap total / used, young generation (new space) total, memory outside the heap (external) */
  heap: { total: number; used: number; young: number; external: number };
  /** carebase_requests_shed_total by reason (cumulative) */
  shed: Record<string, number>;
  /** carebase_http_in_flight, carebase_db_pool_waiting, carebase_db_transactions_open at the scrape */
  inFlight: number;
  poolWaiting: number;
  txOpen: number;
  /** operation name -> { sum s, count } of carebase_graphql_operation_duration_seconds (all outcomes) */
  ops: Map<string, { sum: number; count: number }>;
}

async function scrape(baseUrl: string): Promise<Scrape | undefined> {
  try {
    const text = await (await fetch(`${baseUrl}/metrics`)).text();
    const gauge = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) * 1000;
    const ops = new Map<string, { sum: number; count: number }>();
    for (const m of text.matchAll(/^carebase_graphql_operation_duration_seconds_(sum|count)\{([^}]*)\} (\S+)$/gm)) {
      const op = /operation="([^"]*)"/.exec(m[2]!)?.[1] ?? '?';
      const cur = ops.get(op) ?? { sum: 0, count: 0 };
      cur[m[1] as 'sum' | 'count'] += Number(m[3]);
      ops.set(op, cur);
    }
    const mb = (name: string) => gauge(name) / 1000 / 2 ** 20;
    const shed: Record<string, number> = {};
    for (const m of text.matchAll(/^carebase_requests_shed_total\{reason="([^"]*)"\} (\S+)$/gm)) shed[m[1]!] = Number(m[2]);
    return {
      at: Date.now(),
      lag: { p50: gauge('nodejs_eventloop_lag_p50_seconds'), p99: gauge('nodejs_eventloop_lag_p99_seconds'), max: gauge('nodejs_eventloop_lag_max_seconds') },
      heap: {
        total: mb('nodejs_heap_size_total_bytes'),
        used: mb('nodejs_heap_size_used_bytes'),
        young: (Number(/^nodejs_heap_space_size_total_bytes\{space="new"\} (\S+)$/m.exec(text)?.[1] ?? NaN)) / 2 ** 20,
        external: mb('nodejs_external_memory_bytes'),
      },
      shed,
      inFlight: gauge('carebase_http_in_flight') / 1000,
      poolWaiting: gauge('carebase_db_pool_waiting') / 1000,
      txOpen: gauge('carebase_db_transactions_open') / 1000,
      ops,
    };
  } catch {
    return undefined;
  }
}

// ------------------------------------------------------------------ the run

/** role of each VU: BENCH_USERS_MIX scaled to N, interleaved so that the ramp mixes roles */
function roles(): Role[] {
  const mix = (process.env.BENCH_USERS_MIX ?? 'FRONT_DESK:400,PROVIDER:400,BILLING:150,COMPLIANCE:50').split(',').map((s) => {
    const [r, n] = s.trim().split(':');
    return [r as Role, Number(n)] as const;
  });
  const total = mix.reduce((a, [, n]) => a + n, 0);
  const counts = mix.map(([r, n]) => [r, Math.round((n * N) / total)] as const);
  const out: Role[] = [];
  for (const [r, n] of counts) for (let i = 0; i < n; i++) out.push(r);
  while (out.length < N) out.push(mix[0]![0]);
  out.length = N;
  // deterministic interleave: sort by (index within role) / (role count)
  const seen = new Map<Role, number>();
  const keyed = out.map((r) => {
    const k = seen.get(r) ?? 0;
    seen.set(r, k + 1);
    return { r, key: (k + 0.5) / out.filter((x) => x === r).length };
  });
  return keyed.sort((a, b) => a.key - b.key).map((x) => x.r);
}

export async function run() {
  const load0 = os.loadavg();
  const { env, cleanup, where } = await scenarioDatabase('users');
  const setupStarted = Date.now();
  const server = await startServer('bench/servers/carebase-users.ts', env);
  const info = server.info as Info;
  const pid = server.child.pid!;
  const pg = await PgCpu.open({ url: info.pg.url, database: info.pg.database });
  const client = graphqlClient(server.url);
  const rec = new Recorder();
  const stats: SocketStats = { attempted: 0, connected: 0, joined: 0, failures: {}, connectMs: [], disconnects: {}, events: 0, eventTypes: {} };
  const sockets: Socket[] = [];
  const rss: { at: number; rss: number }[] = [];
  const scrapes: Scrape[] = [];
  let stopping = false;
  let createSeq = 0;
  const vuRoles = roles();
  const byRole = (r: Role) => info.accounts.filter((a) => a.role === r);

  console.log(
    `server ready in ${((Date.now() - setupStarted) / 1000).toFixed(0)} s on ${where}: ${info.accounts.length} accounts ` +
      `(${(['FRONT_DESK', 'PROVIDER', 'BILLING', 'COMPLIANCE'] as Role[]).map((r) => `${byRole(r).length} ${r}`).join(', ')}), ` +
      `${info.ids.length} sampled patient ids, setup ${(info.setupMs / 1000).toFixed(1)} s (patients seeded in ${(info.seedMs / 1000).toFixed(1)} s)`,
  );
  console.log(
    `load: ${N} VUs (${(['FRONT_DESK', 'PROVIDER', 'BILLING', 'COMPLIANCE'] as Role[]).map((r) => `${vuRoles.filter((x) => x === r).length} ${r}`).join(', ')}), ` +
      `ramp ${RAMP_S} s, measured ${DURATION_S} s, think time exponential mean ${THINK_MS} ms, ${HTTP_CONNECTIONS} keep-alive HTTP connections; ` +
      `load average at start ${load0.map((l) => l.toFixed(2)).join(' / ')}`,
  );

  // ---- probes
  const idle = [await scrape(server.url)];
  await sleep(2000);
  idle.push(await scrape(server.url));
  const rssTimer = setInterval(async () => {
    const r = await rssKb(pid);
    if (r) rss.push({ at: Date.now(), rss: r.rss });
  }, 1000);
  const scrapeTimer = setInterval(async () => {
    const s = await scrape(server.url);
    if (s) scrapes.push(s);
  }, 5000);

  // ---- one VU
  const t0 = performance.now();
  rec.windowStart = t0 + RAMP_S * 1000;
  rec.windowEnd = rec.windowStart + DURATION_S * 1000;

  const readPatient = async (account: Account, id: string) => {
    const t = performance.now();
    const a = await client.post(account.token, patientReadBody(id));
    rec.add('patient read', t, a.code);
    return a.data?.patient as { id: string; version: number } | undefined;
  };

  async function vu(k: number, role: Role) {
    const accounts = byRole(role);
    const account = accounts[k % accounts.length]!;
    await vuSleep((k * RAMP_S * 1000) / N - (performance.now() - t0));
    if (stopping) return;
    const socket = await connectSocket(server.url, account, info.tenantId, stats);
    if (socket) sockets.push(socket);
    const ids = account.ids ?? info.ids;
    const prefixes = account.prefixes?.length ? account.prefixes : info.prefixes;
    let openChart: string | undefined;

    if (role === 'COMPLIANCE') {
      let next = performance.now() + Math.random() * REPORT_EVERY_MS;
      let n = k;
      for (;;) {
        await vuSleep(next - performance.now());
        if (stopping) return;
        const filters = [
          { patientId: pick(info.ids) },
          { actorId: pick(info.accounts).userId },
          { from: new Date(Date.now() - 15 * 60_000).toISOString(), to: new Date().toISOString() },
          { actions: ['reveal'] },
          { outcome: 'DENIED' },
        ];
        const t = performance.now();
        const a = await client.post(account.token, JSON.stringify({ operationName: 'AuditReport', query: REPORT, variables: { filter: filters[n++ % filters.length] } }));
        rec.add('audit report', t, a.code);
        next += REPORT_EVERY_MS;
      }
    }

    const mix = MIXES[role];
    const total = mix.reduce((a, [, w]) => a + w, 0);
    for (;;) {
      await vuSleep(exp(THINK_MS));
      if (stopping) return;
      let x = Math.random() * total;
      const op = mix.find(([, w]) => (x -= w) < 0)![0];
      if (op === 'patient search') {
        const t = performance.now();
        const a = await client.post(account.token, patientSearchBody(pick(prefixes)));
        rec.add(op, t, a.code);
      } else if (op === 'patient read') {
        const id = pick(ids);
        const p = await readPatient(account, id);
        if (role === 'PROVIDER' && p && socket?.connected) {
          // the chart is open: follow the patient's room (and leave the previous chart's)
          const t = performance.now();
          try {
            if (openChart) await ack(socket, 'room:leave', { room: `patient:${openChart}` });
            const r = await ack(socket, 'room:join', { room: `patient:${id}` });
            rec.add('socket room:join patient', t, r.ok ? undefined : (r.error?.code ?? 'REFUSED'));
            if (r.ok) openChart = id;
          } catch {
            rec.add('socket room:join patient', t, 'ACK_TIMEOUT');
          }
        }
      } else if (op === 'patient update') {
        // read, then update with the version read; on CONFLICT (another VU changed the record in between) reload and
        // re-apply once, as docs/modules/patients.md tells clients to: counted apart, not as an error
        const id = pick(ids);
        for (let attempt = 0; attempt < 2; attempt++) {
          const p = await readPatient(account, id);
          if (!p) break;
          const t = performance.now();
          const phone = `+1212555${String(Math.floor(Math.random() * 10_000)).padStart(4, '0')}`;
          const a = await client.post(account.token, JSON.stringify({ operationName: 'PatientUpdate', query: UPDATE, variables: { id, version: p.version, input: { phones: [{ use: 'HOME', number: phone }] } } }));
          if (a.code === 'CONFLICT' && attempt === 0) {
            rec.conflicts++;
            continue;
          }
          rec.add(op, t, a.code);
          break;
        }
      } else if (op === 'patient create') {
        const t = performance.now();
        const a = await client.post(account.token, patientCreateBody(1_000_000 + k * 10_000 + createSeq++));
        rec.add(op, t, a.code);
      } else if (op === 'SSN reveal (HPAYMT)') {
        const t = performance.now();
        const a = await client.post(
          account.token,
          JSON.stringify({ operationName: 'RevealSsn', query: REVEAL, variables: { patientId: pick(ids), purpose: 'HPAYMT', reason: 'payer rejected the claim without the SSN' } }),
        );
        rec.add(op, t, a.code);
      }
    }
  }

  let cpu0: { server: number | undefined; pg: (() => Promise<number>) | undefined; client: NodeJS.CpuUsage } | undefined;
  let result;
  try {
    const vus = vuRoles.map((role, k) => vu(k, role));
    // the measured window: server and PostgreSQL CPU, client CPU
    await sleep(rec.windowStart - performance.now());
    const connectedAtWindow = stats.joined;
    const rssAtWindow = (await rssKb(pid))?.rss;
    const scrapeAtWindow = await scrape(server.url);
    const psi0 = await cpuPressureUs();
    cpu0 = { server: await processCpuUs(pid), pg: await pg?.start(), client: process.cpuUsage() };
    await sleep(rec.windowEnd - performance.now());
    const cpuServer = (await processCpuUs(pid))! - cpu0.server!;
    const cpuPg = cpu0.pg ? await cpu0.pg() : undefined;
    const cpuClient = process.cpuUsage(cpu0.client);
    const psi1 = await cpuPressureUs();
    const cpuPressure = psi0 !== undefined && psi1 !== undefined ? (psi1 - psi0) / (DURATION_S * 1e6) : undefined;
    const scrapeAtEnd = await scrape(server.url);
    const rssEnd = await rssKb(pid);
    stopping = true;
    wakeAll();
    await Promise.race([Promise.all(vus), sleep(REQUEST_TIMEOUT_MS + 2000)]);
    result = report({ rec, stats, rss, scrapes, idle, info, connectedAtWindow, rssAtWindow, rssEnd, scrapeAtWindow, scrapeAtEnd, cpuServer, cpuPg, cpuClient, cpuPressure, load0 });
  } finally {
    stopping = true;
    clearInterval(rssTimer);
    clearInterval(scrapeTimer);
    for (const s of sockets) s.close();
    client.close();
    await pg?.close().catch(() => undefined);
    await server.stop();
    await cleanup().catch((e) => console.error(`cleanup failed: ${(e as Error).message}`));
  }
  return result;
}

// ------------------------------------------------------------------ report

function report(r: {
  rec: Recorder;
  stats: SocketStats;
  rss: { at: number; rss: number }[];
  scrapes: Scrape[];
  idle: (Scrape | undefined)[];
  info: Info;
  connectedAtWindow: number;
  rssAtWindow?: number;
  rssEnd?: { rss: number; hwm: number };
  scrapeAtWindow?: Scrape;
  scrapeAtEnd?: Scrape;
  cpuServer: number;
  cpuPg?: number;
  cpuClient: NodeJS.CpuUsage;
  /** share of the window during which some task of the machine waited for a CPU (PSI) */
  cpuPressure?: number;
  load0: number[];
}) {
  const steady = r.rec.samples.filter((s) => s.steady);
  const ramp = r.rec.samples.filter((s) => !s.steady);
  const http = steady.filter((s) => s.op !== 'socket room:join patient');
  const mb = (kb: number | undefined) => (kb === undefined ? '–' : `${(kb / 1024).toFixed(0)} MB`);
  const f = (v: number) => v.toFixed(1);

  const rows = OPS.map((op) => {
    const all = steady.filter((s) => s.op === op);
    const ok = all.filter((s) => !s.code).map((s) => s.ms).sort((a, b) => a - b);
    return { op, n: all.length, errors: all.length - ok.length, p50: percentile(ok, 0.5), p95: percentile(ok, 0.95), p99: percentile(ok, 0.99), max: ok.at(-1) ?? 0 };
  }).filter((x) => x.n > 0);
  const okAll = steady.filter((s) => !s.code).map((s) => s.ms).sort((a, b) => a - b);

  console.log(`\nmeasured window ${DURATION_S} s after a ${RAMP_S} s ramp: ${http.length} HTTP requests (${(http.length / DURATION_S).toFixed(1)}/s), ${steady.length - http.length} socket acks`);
  console.log('| operation | count | per s | p50 ms | p95 ms | p99 ms | max ms | errors |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const x of rows) console.log(`| ${x.op} | ${x.n} | ${(x.n / DURATION_S).toFixed(1)} | ${f(x.p50)} | ${f(x.p95)} | ${f(x.p99)} | ${f(x.max)} | ${x.errors} |`);
  console.log(`| all | ${steady.length} | ${(steady.length / DURATION_S).toFixed(1)} | ${f(percentile(okAll, 0.5))} | ${f(percentile(okAll, 0.95))} | ${f(percentile(okAll, 0.99))} | ${f(okAll.at(-1) ?? 0)} | ${steady.filter((s) => s.code).length} |`);

  const codes = new Map<string, number>();
  for (const s of r.rec.samples) if (s.code) codes.set(`${s.op}: ${s.code}${s.steady ? '' : ' (ramp)'}`, (codes.get(`${s.op}: ${s.code}${s.steady ? '' : ' (ramp)'}`) ?? 0) + 1);
  for (const [k, v] of Object.entries(r.stats.failures)) codes.set(`socket ${k}`, v);
  for (const [k, v] of Object.entries(r.stats.disconnects)) codes.set(`socket dropped: ${k}`, v);
  console.log(`errors by code: ${codes.size ? [...codes].map(([k, v]) => `${k} ×${v}`).join('; ') : 'none'}`);
  const rampOk = ramp.filter((s) => !s.code).map((s) => s.ms).sort((a, b) => a - b);
  console.log(`ramp (not in the table): ${ramp.length} actions, ${ramp.filter((s) => s.code).length} errors, p95 ${f(percentile(rampOk, 0.95))} ms, p99 ${f(percentile(rampOk, 0.99))} ms`);

  console.log(`update conflicts (another VU changed the record between read and update; reloaded and re-applied): ${r.rec.conflicts}`);
  const buckets: string[] = [];
  for (let b = r.rec.windowStart; b < r.rec.windowEnd; b += 10_000) {
    const xs = steady.filter((s) => s.at >= b && s.at < b + 10_000);
    const ok = xs.filter((s) => !s.code).map((s) => s.ms).sort((a, b) => a - b);
    buckets.push(`${f(percentile(ok, 0.95))}${xs.some((s) => s.code) ? `/${xs.filter((s) => s.code).length}err` : ''}`);
  }
  console.log(`timeline, p95 ms per 10 s of the window (/errors): ${buckets.join(' ')}`);
  const cm = [...r.stats.connectMs].sort((a, b) => a - b);
  console.log(
    `sockets: ${r.stats.joined}/${r.stats.attempted} connected and joined (${r.connectedAtWindow} at the start of the window), handshake + tenant room:join ` +
      `p50 ${f(percentile(cm, 0.5))} ms, p95 ${f(percentile(cm, 0.95))} ms, p99 ${f(percentile(cm, 0.99))} ms; dropped during the run: ` +
      `${Object.values(r.stats.disconnects).reduce((a, b) => a + b, 0)}; received: ${
        Object.entries(r.stats.eventTypes)
          .sort((a, b) => b[1] - a[1])
          .map(([k, v]) => `${k} ×${v}`)
          .join(', ') || 'nothing'
      }`,
  );

  const during = r.rss.filter((x) => x.at >= 0);
  const peak = Math.max(...during.map((x) => x.rss));
  console.log(`server RSS: at window start ${mb(r.rssAtWindow)}, peak ${mb(peak)} (1 s samples), end ${mb(r.rssEnd?.rss)}, VmHWM ${mb(r.rssEnd?.hwm)}`);

  const hw = r.scrapeAtWindow?.heap;
  const he = r.scrapeAtEnd?.heap;
  const heapMax = Math.max(...r.scrapes.map((x) => x.heap.total));
  if (hw && he) {
    console.log(
      `server V8 heap (MB, window start -> end): total ${hw.total.toFixed(0)} -> ${he.total.toFixed(0)} (max ${heapMax.toFixed(0)}), used ${hw.used.toFixed(0)} -> ${he.used.toFixed(0)}, ` +
        `young generation ${hw.young.toFixed(0)} -> ${he.young.toFixed(0)}, external ${hw.external.toFixed(0)} -> ${he.external.toFixed(0)}`,
    );
  }
  const win = r.scrapes.filter((s) => r.scrapeAtWindow && s.at > r.scrapeAtWindow.at && r.scrapeAtEnd && s.at <= r.scrapeAtEnd.at + 10);
  const lags = [...win, ...(r.scrapeAtEnd ? [r.scrapeAtEnd] : [])];
  const idle = r.idle.at(-1);
  if (lags.length) {
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(
      `event-loop delay (server /metrics, ${lags.length} scrapes of ~5 s; includes the 10 ms sampling interval, idle before the ramp: ` +
        `p50 ${idle ? f(idle.lag.p50) : '–'} / p99 ${idle ? f(idle.lag.p99) : '–'} ms): p50 mean ${f(mean(lags.map((l) => l.lag.p50)))} ms, ` +
        `p99 mean ${f(mean(lags.map((l) => l.lag.p99)))} ms / worst ${f(Math.max(...lags.map((l) => l.lag.p99)))} ms, max ${f(Math.max(...lags.map((l) => l.lag.max)))} ms`,
    );
  }
  if (r.scrapeAtWindow && r.scrapeAtEnd) {
    const parts: string[] = [];
    for (const [op, end] of r.scrapeAtEnd.ops) {
      const start = r.scrapeAtWindow.ops.get(op) ?? { sum: 0, count: 0 };
      const n = end.count - start.count;
      if (n > 0) parts.push(`${op} ${((1000 * (end.sum - start.sum)) / n).toFixed(1)} ms (${n})`);
    }
    console.log(`server-side GraphQL mean duration in the window: ${parts.join(', ')}`);
    const shed = Object.entries(r.scrapeAtEnd.shed)
      .map(([reason, n]) => [reason, n - (r.scrapeAtWindow!.shed[reason] ?? 0)] as const)
      .filter(([, n]) => n > 0);
    console.log(
      `load shedding in the window: ${shed.length ? shed.map(([k, v]) => `${k} ×${v}`).join(', ') : 'none'}; at the ~5 s scrapes: in flight max ${Math.max(...lags.map((l) => l.inFlight))}, ` +
        `waiting for a pool connection max ${Math.max(...lags.map((l) => l.poolWaiting))}, request transactions open max ${Math.max(...lags.map((l) => l.txOpen))}`,
    );
  }
  const nReq = http.length;
  console.log(
    `CPU in the window: server ${((r.cpuServer / 1e6 / DURATION_S) * 100).toFixed(0)}% of a core (${(r.cpuServer / nReq).toFixed(0)} µs/HTTP request), ` +
      `PostgreSQL ${r.cpuPg === undefined ? '–' : `${((r.cpuPg / 1e6 / DURATION_S) * 100).toFixed(0)}% (${(r.cpuPg / nReq).toFixed(0)} µs/request)`}, ` +
      `this bench process ${(((r.cpuClient.user + r.cpuClient.system) / 1e6 / DURATION_S) * 100).toFixed(0)}%; ` +
      `CPU pressure (PSI some: share of the window in which a runnable task of the machine waited for a core) ${r.cpuPressure === undefined ? '–' : `${(r.cpuPressure * 100).toFixed(0)}%`}; load average at end ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' / ')}`,
  );

  const worstP95 = Math.max(...rows.map((x) => x.p95));
  const errors = r.rec.samples.filter((s) => s.code).length + Object.values(r.stats.failures).reduce((a, b) => a + b, 0) + Object.values(r.stats.disconnects).reduce((a, b) => a + b, 0);
  const rssMax = Math.max(peak, r.rssEnd?.hwm ?? 0) / 1024;
  console.log(
    `targets: p95 < 200 ms for every operation: ${worstP95 < 200 ? 'met' : 'NOT met'} (worst ${f(worstP95)} ms); 0 errors: ${errors === 0 ? 'met' : `NOT met (${errors})`}; ` +
      `RSS < 300 MB: ${rssMax < 300 ? 'met' : 'NOT met'} (VmHWM ${rssMax.toFixed(0)} MB); sockets ${r.stats.joined}/${N}`,
  );
  return { rows, errors, worstP95, rssMax, sockets: r.stats.joined };
}
