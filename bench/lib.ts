import { spawn, type ChildProcess } from 'node:child_process';
import autocannon from 'autocannon';

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
export async function startServer(script: string, env: Record<string, string | undefined> = {}): Promise<Server> {
  const child = spawn(process.execPath, [...NODE_ARGS, '--import', 'tsx', script], {
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
  const r = await autocannon({
    ...common,
    duration: o.duration ?? DURATION,
    setupClient: (client: { on(e: 'response', f: (status: number, bytes: number, ms: number) => void): void }) =>
      client.on('response', (status, _b, ms) => {
        if (Number(status) >= 200 && Number(status) < 300) latencies.push(ms);
      }),
  } as autocannon.Options);
  latencies.sort((a, b) => a - b);
  return {
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

export function printTable(rows: LoadResult[], baseline: LoadResult) {
  const header = ['target', 'rps', 'p50 ms', 'p95 ms', 'p99 ms', 'errors', 'non-2xx', 'ratio vs ' + baseline.name];
  const lines = rows.map((r) => [
    r.name,
    r.rps.toFixed(0),
    r.p50.toFixed(2),
    r.p95 === undefined ? '–' : r.p95.toFixed(2),
    r.p99.toFixed(2),
    String(r.errors),
    String(r.non2xx),
    `${(r.rps / baseline.rps).toFixed(2)}x`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cols: string[]) => `| ${cols.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(fmt(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const l of lines) console.log(fmt(l));
}

export interface Target extends Omit<LoadOptions, 'url'> {
  script: string;
  env?: Record<string, string | undefined>;
  /** path on the target server, default /graphql */
  path?: string;
  /** prepares the server before load (e.g. seeds, logs in) and may replace headers/requests */
  prepare?: (baseUrl: string, info?: any) => Promise<Partial<LoadOptions> | void>;
  /** reuse the server of an earlier target with this name (e.g. two loads on one seeded server) instead of starting `script` */
  sameServerAs?: string;
}

export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);

/**
 * Loads every target in alternating rounds (A B A B ...) so that a noisy
 * neighbour hurts all of them alike; reports the mean per target and the
 * ratio to the first target (the baseline).
 */
export async function compare(targets: Target[]): Promise<LoadResult[]> {
  const servers: { t: Target; s: Server; extra: Partial<LoadOptions> }[] = [];
  const started: { t: Target; s: Server; extra: Partial<LoadOptions> }[] = [];
  try {
    for (const t of targets) {
      const shared = t.sameServerAs ? servers.find((x) => x.t.name === t.sameServerAs)?.s : undefined;
      const s = shared ?? (await startServer(t.script, t.env));
      if (!shared) started.push({ t, s, extra: {} });
      const extra = (await t.prepare?.(s.url, s.info)) ?? {};
      servers.push({ t, s, extra });
    }
  } catch (e) {
    // a server that failed to start must not leave the others running (they hold the bench's stdio)
    for (const { s } of started) await s.stop();
    throw e;
  }
  const runs = new Map<string, LoadResult[]>();
  try {
    // one request per target first: a load that only measures GraphQL errors (HTTP 200) would be no figure at all
    for (const { t, s, extra } of servers) await checkOnce(t.name, `${s.url}${t.path ?? '/graphql'}`, { ...t, ...extra });
    for (let round = 0; round < ROUNDS; round++) {
      for (const { t, s, extra } of servers) {
        const r = await load({ ...t, url: `${s.url}${t.path ?? '/graphql'}`, ...extra, name: t.name });
        runs.set(t.name, [...(runs.get(t.name) ?? []), r]);
      }
    }
  } finally {
    for (const { s } of started) await s.stop();
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
    };
  });
  printTable(rows, rows[0]!);
  return rows;
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
