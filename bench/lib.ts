import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import os from 'node:os';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import autocannon from 'autocannon';
import { PgCpu, processCpuUs } from './cpu.js';

export interface LoadResult {
  name: string;
  rps: number;
  p50: number;
  /** from every 2xx response's latency (autocannon itself reports p90 and p97.5, not p95) */
  p95?: number;
  p99: number;
  /** every 2xx response's latency in ms, sorted (pooled across rounds by compare) */
  latencies?: number[];
  errors: number;
  non2xx: number;
  requests: number;
  /** CPU time of the server process (all threads) per request of the measured window, µs */
  serverCpuUs?: number;
  /** CPU time of PostgreSQL (postmaster, auxiliary processes, backends of the target's database) per request, µs */
  pgCpuUs?: number;
}

export interface Server {
  url: string;
  /** the JSON of a `BENCH_INFO <json>` line printed before `BENCH_URL`, if any */
  info?: any;
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Node flags of every bench server, baselines included: those of `npm start`
 * (package.json; a 32 MB young generation: fewer scavenges under load).
 * BENCH_NODE_ARGS overrides them (space-separated; empty for Node's defaults).
 */
const NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? '--max-semi-space-size=32').split(' ').filter(Boolean);

/** Starts a bench server script as a child process and waits for its `BENCH_URL` line. */
export async function startServer(script: string, env: Record<string, string | undefined> = {}, extraNodeArgs: string[] = []): Promise<Server> {
  const child = spawn(process.execPath, [...NODE_ARGS, ...extraNodeArgs, '--import', 'tsx', script], {
    env: { ...process.env, NODE_OPTIONS: '', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let info: any;
  const url = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += String(d);
      const i = /BENCH_INFO (.*)\n/.exec(buf);
      if (i && info === undefined) info = JSON.parse(i[1]!);
      const m = /BENCH_URL (\S+)/.exec(buf);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
  return {
    url,
    info,
    child,
    stop: () =>
      new Promise((r) => {
        // a server that already exited (crashed) emits no further 'exit'
        if (child.exitCode !== null || child.signalCode !== null) return r();
        child.once('exit', () => r());
        child.kill('SIGTERM');
      }),
  };
}

export interface LoadOptions {
  name: string;
  url: string;
  connections?: number;
  duration?: number;
  /** build each request (e.g. rotate ids); defaults to a fixed POST body */
  requests?: autocannon.Request[];
  body?: string;
  headers?: Record<string, string>;
  method?: 'GET' | 'POST';
  path?: string;
  /** per-process CPU accounting over the measured window (not the warm-up) */
  cpu?: { serverPid?: number; pg?: PgCpu };
}

export const DURATION = Number(process.env.BENCH_DURATION ?? 10);
export const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);

/** Runs autocannon from this process (a second process from the server's). */
export async function load(o: LoadOptions): Promise<LoadResult> {
  const common = {
    url: o.url,
    connections: o.connections ?? CONNECTIONS,
    method: o.method ?? 'POST',
    headers: { 'content-type': 'application/json', ...o.headers },
    body: o.body,
    requests: o.requests,
  } as autocannon.Options;
  // warm-up (JIT, pools, caches), not recorded
  await autocannon({ ...common, duration: Math.min(3, Math.max(1, Math.round((o.duration ?? DURATION) / 4))) });
  const latencies: number[] = [];
  const serverBefore = o.cpu?.serverPid ? await processCpuUs(o.cpu.serverPid) : undefined;
  const pgWindow = await o.cpu?.pg?.start();
  const r = await autocannon({
    ...common,
    duration: o.duration ?? DURATION,
    setupClient: (client: { on(e: 'response', f: (status: number, bytes: number, ms: number) => void): void }) =>
      client.on('response', (status, _b, ms) => {
        if (Number(status) >= 200 && Number(status) < 300) latencies.push(ms);
      }),
  } as autocannon.Options);
  const pgUs = await pgWindow?.();
  const serverAfter = o.cpu?.serverPid ? await processCpuUs(o.cpu.serverPid) : undefined;
  const n = r.requests.total;
  latencies.sort((a, b) => a - b);
  return {
    serverCpuUs: serverBefore !== undefined && serverAfter !== undefined && n ? (serverAfter - serverBefore) / n : undefined,
    pgCpuUs: pgUs !== undefined && n ? pgUs / n : undefined,
    name: o.name,
    rps: r.requests.average,
    p50: r.latency.p50,
    p95: percentile(latencies, 0.95),
    p99: r.latency.p99,
    latencies,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
    requests: r.requests.total,
  };
}

/** Nearest-rank percentile of sorted values: the smallest value with at least q of all values at or below it. */
export function percentile(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]! : 0;
}

/**
 * Prints rps, latencies, errors, the ratio to `baseline` and, when given, to `peer` (e.g. PostGraphile), and the
 * CPU per request of the server process and of PostgreSQL when measured.
 */
export function printTable(rows: LoadResult[], baseline: LoadResult, peer?: LoadResult) {
  const cpu = rows.some((r) => r.serverCpuUs !== undefined || r.pgCpuUs !== undefined);
  const us = (v: number | undefined) => (v === undefined ? '–' : v.toFixed(0));
  const header = [
    'target',
    'rps',
    'p50 ms',
    'p95 ms',
    'p99 ms',
    'errors',
    'non-2xx',
    'ratio vs ' + baseline.name,
    ...(peer ? ['ratio vs ' + peer.name] : []),
    ...(cpu ? ['server CPU µs/req', 'PostgreSQL CPU µs/req'] : []),
  ];
  const lines = rows.map((r) => [
    r.name,
    r.rps.toFixed(0),
    r.p50.toFixed(2),
    r.p95 === undefined ? '–' : r.p95.toFixed(2),
    r.p99.toFixed(2),
    String(r.errors),
    String(r.non2xx),
    `${(r.rps / baseline.rps).toFixed(2)}x`,
    ...(peer ? [`${(r.rps / peer.rps).toFixed(3)}x`] : []),
    ...(cpu ? [us(r.serverCpuUs), us(r.pgCpuUs)] : []),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cols: string[]) => `| ${cols.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(fmt(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const l of lines) console.log(fmt(l));
}

export interface Target extends Omit<LoadOptions, 'url' | 'cpu'> {
  script: string;
  /**
   * the server's environment; a function receives the BENCH_INFO of the servers started before it, by target name
   * (e.g. a peer that needs the database of an earlier server)
   */
  env?: Record<string, string | undefined> | ((infos: Record<string, any>) => Record<string, string | undefined>);
  /** path on the target server, default /graphql */
  path?: string;
  /** prepares the server before load (e.g. seeds, logs in) and may replace headers/requests */
  prepare?: (baseUrl: string, info?: any) => Promise<Partial<LoadOptions> | void>;
  /** reuse the server of an earlier target with this name (e.g. two loads on one seeded server) instead of starting `script` */
  sameServerAs?: string;
}

export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);

export interface CompareOptions {
  /** name of a target to print a second ratio against (the peer, e.g. PostGraphile) */
  peer?: string;
  /** how the peer's ratio column is headed (default: its name) */
  peerLabel?: string;
}

/**
 * Loads every target in alternating rounds (A B A B ...) so that a noisy
 * neighbour hurts all of them alike; reports the mean per target, the
 * ratio to the first target (the baseline) and to `peer` if named, and the
 * CPU per request of each server process and, for a server whose BENCH_INFO
 * names its database (`pg: { url, database }`), of PostgreSQL (./cpu.ts).
 */
export async function compare(targets: Target[], opts: CompareOptions = {}): Promise<LoadResult[]> {
  const servers: { t: Target; s: Server; extra: Partial<LoadOptions> }[] = [];
  const started: { t: Target; s: Server; extra: Partial<LoadOptions> }[] = [];
  const pgCpu = new Map<Server, PgCpu | undefined>();
  // last started first: a server may use an earlier one's database (the PostGraphile peer, the seeded server's PostgreSQL)
  const stopAll = async () => {
    await Promise.all([...pgCpu.values()].map((p) => p?.close().catch(() => undefined)));
    for (const { s } of [...started].reverse()) await s.stop();
  };
  try {
    for (const t of targets) {
      const shared = t.sameServerAs ? servers.find((x) => x.t.name === t.sameServerAs)?.s : undefined;
      const infos = Object.fromEntries(servers.map((x) => [x.t.name, x.s.info]));
      const s = shared ?? (await startServer(t.script, typeof t.env === 'function' ? t.env(infos) : t.env));
      if (!shared) {
        started.push({ t, s, extra: {} });
        pgCpu.set(s, s.info?.pg?.url ? await PgCpu.open({ url: s.info.pg.url, database: s.info.pg.database }) : undefined);
      }
      const extra = (await t.prepare?.(s.url, s.info)) ?? {};
      servers.push({ t, s, extra });
    }
  } catch (e) {
    // a server that failed to start must not leave the others running (they hold the bench's stdio)
    await stopAll();
    throw e;
  }
  const runs = new Map<string, LoadResult[]>();
  try {
    // one request per target first: a load that only measures GraphQL errors (HTTP 200) would be no figure at all
    for (const { t, s, extra } of servers) await checkOnce(t.name, `${s.url}${t.path ?? '/graphql'}`, { ...t, ...extra });
    for (let round = 0; round < ROUNDS; round++) {
      for (const { t, s, extra } of servers) {
        const cpu = { serverPid: s.child.pid, pg: pgCpu.get(s) };
        const r = await load({ ...t, url: `${s.url}${t.path ?? '/graphql'}`, ...extra, name: t.name, cpu });
        runs.set(t.name, [...(runs.get(t.name) ?? []), r]);
      }
    }
  } finally {
    await stopAll();
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const rows = targets.map((t) => {
    const rs = runs.get(t.name)!;
    // percentiles of all rounds' responses together (not a mean of per-round percentiles)
    const all = rs.flatMap((r) => r.latencies ?? []).sort((a, b) => a - b);
    return {
      name: t.name,
      rps: mean(rs.map((r) => r.rps)),
      p50: all.length ? percentile(all, 0.5) : mean(rs.map((r) => r.p50)),
      p95: percentile(all, 0.95),
      p99: all.length ? percentile(all, 0.99) : mean(rs.map((r) => r.p99)),
      errors: rs.reduce((a, r) => a + r.errors, 0),
      non2xx: rs.reduce((a, r) => a + r.non2xx, 0),
      requests: rs.reduce((a, r) => a + r.requests, 0),
      // total CPU over total requests of all rounds
      serverCpuUs: perRequest(rs, (r) => r.serverCpuUs),
      pgCpuUs: perRequest(rs, (r) => r.pgCpuUs),
    };
  });
  const peer = opts.peer === undefined ? undefined : rows.find((r) => r.name === opts.peer);
  if (opts.peer !== undefined && !peer) throw new Error(`compare: no target named ${opts.peer}`);
  printTable(rows, rows[0]!, peer && { ...peer, name: opts.peerLabel ?? peer.name });
  return rows;
}

function perRequest(rs: LoadResult[], f: (r: LoadResult) => number | undefined): number | undefined {
  if (rs.some((r) => f(r) === undefined)) return undefined;
  const n = rs.reduce((a, r) => a + r.requests, 0);
  return n ? rs.reduce((a, r) => a + f(r)! * r.requests, 0) / n : undefined;
}

/** Sends a target's first request once and fails the run if it answers with an HTTP error or GraphQL errors. */
async function checkOnce(name: string, defaultUrl: string, o: Partial<LoadOptions>) {
  const req = (o.requests?.[0] as { setupRequest?: (r: Record<string, unknown>) => { body?: string } } | undefined)?.setupRequest?.({});
  const body = req?.body ?? o.body;
  if (!body || !(o.url ?? defaultUrl).endsWith('/graphql')) return;
  const res = await fetch(o.url ?? defaultUrl, { method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-proto': 'https', ...o.headers }, body });
  const text = await res.text();
  if (!res.ok || /"errors"\s*:/.test(text)) throw new Error(`bench target "${name}" answers ${res.status}: ${text.slice(0, 300)}`);
}

/** A fresh database `carebase_bench_<prefix>_<hex>` on the server of `adminUrl` (the scenario drops it afterwards). */
export async function freshDatabase(adminUrl: string, prefix: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `carebase_bench_${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => undefined });
  await admin.unsafe(`create database "${name}"`);
  await admin.end({ timeout: 5 });
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const a = postgres(adminUrl, { max: 1, onnotice: () => undefined });
      try {
        await a.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await a.end({ timeout: 5 });
      }
    },
  };
}

/**
 * Where a load scenario's server keeps its data: with DATABASE_URL a fresh database on that server, otherwise the
 * embedded PostgreSQL in a fresh temporary DATA_DIR. `env` goes to the server; `cleanup` drops or removes it.
 */
export async function scenarioDatabase(prefix: string): Promise<{ env: Record<string, string>; cleanup: () => Promise<void>; where: string }> {
  if (process.env.DATABASE_URL) {
    const db = await freshDatabase(process.env.DATABASE_URL, prefix);
    return { env: { DATABASE_URL: db.url }, cleanup: db.drop, where: `DATABASE_URL (fresh database ${new URL(db.url).pathname.slice(1)})` };
  }
  const dir = await mkdtemp(join(os.tmpdir(), `carebase-bench-${prefix}-`));
  return { env: { DATA_DIR: dir, DATABASE_URL: '' }, cleanup: () => rm(dir, { recursive: true, force: true }), where: `embedded PostgreSQL in a fresh DATA_DIR (${dir})` };
}

/** A GraphQL answer as the load scenarios count it: `code` undefined = success. */
export interface GraphqlAnswer {
  code?: string;
  data?: any;
}

/**
 * POSTs GraphQL bodies through one node:http keep-alive Agent bounded to `connections` (a clinic's reverse proxy
 * upstream pool). An error is `HTTP_<status> <code> (<reason>)`, the GraphQL code, the network error or CLIENT_TIMEOUT.
 */
export function keepAliveGraphql(baseUrl: string, opts: { connections: number; timeoutMs: number }) {
  const u = new URL(baseUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.connections, maxFreeSockets: opts.connections, scheduling: 'fifo' });
  const post = (token: string, body: string) =>
    new Promise<GraphqlAnswer>((resolve) => {
      const req = http.request(
        {
          host: u.hostname,
          port: u.port,
          path: '/graphql',
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${token}` },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (e) => resolve({ code: (e as NodeJS.ErrnoException).code ?? 'NETWORK' }));
          res.on('end', () => {
            let json: { data?: unknown; errors?: { extensions?: { code?: string; reason?: string } }[] } | undefined;
            try {
              json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              json = undefined;
            }
            const ext = json?.errors?.[0]?.extensions;
            const gqlCode = json?.errors?.length ? `${ext?.code ?? 'GRAPHQL_ERROR'}${ext?.reason ? ` (${ext.reason})` : ''}` : undefined;
            if (res.statusCode !== 200) resolve({ code: gqlCode ? `HTTP_${res.statusCode} ${gqlCode}` : `HTTP_${res.statusCode}` });
            else resolve(gqlCode ? { code: gqlCode } : { data: json?.data });
          });
        },
      );
      req.setTimeout(opts.timeoutMs, () => req.destroy(Object.assign(new Error('client timeout'), { code: 'CLIENT_TIMEOUT' })));
      req.on('error', (e) => resolve({ code: (e as NodeJS.ErrnoException).code ?? 'NETWORK' }));
      req.end(body);
    });
  return { post, close: () => agent.destroy() };
}

