/**
 * `npm run bench -- profile <read|create|search>`: a CPU profile of the seeded
 * Carebase server under 32 connections of one operation, summarised as the
 * share of busy CPU per phase of the pipeline (self time of each sampled
 * function, attributed by the file it lives in). The raw `.cpuprofile` is
 * kept under `.data/profiles` for Chrome DevTools or speedscope.
 *
 * The server runs with `--cpu-prof`; the profile covers the whole life of the
 * process, so seeding and the warm-up are cut out by the sample timestamps:
 * only the samples of the measured window are counted.
 */
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { DURATION, load, startServer } from '../lib.js';
import { patientCreateBody, patientReadBody, patientSearchBody, searchPrefixes } from './patients.js';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string };
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Phases, first match wins: [phase, test on "url functionName"]. */
const PHASES: [string, RegExp][] = [
  ['GC', /\(garbage collector\)/],
  ['idle', /\(idle\)/],
  ['native, unattributed ((program): syscalls, libuv)', /\(program\)/],
  ['postgres-js (protocol, parsing rows)', /node_modules\/postgres\//],
  ['drizzle-orm (query building, row mapping)', /node_modules\/drizzle-orm\//],
  ['graphql-js (parse, validate, execute)', /node_modules\/graphql\//],
  ['Apollo Server', /node_modules\/@apollo\//],
  ['Pothos (plugins, wrappers)', /node_modules\/@pothos\//],
  ['Fastify (HTTP routing, hooks)', /node_modules\/(fastify|@fastify|find-my-way|avvio|light-my-request|fast-json-stringify|secure-json-parse)\//],
  ['jose (JWT)', /node_modules\/jose\//],
  ['rate-limiter-flexible', /node_modules\/rate-limiter-flexible\//],
  ['pino (logging)', /node_modules\/(pino|sonic-boom)/],
  ['prom-client (metrics)', /node_modules\/prom-client\//],
  ['audit (canonical form, hashing, trail)', /src\/platform\/audit\//],
  ['crypto (envelopes, keys)', /src\/platform\/crypto\//],
  ['rate limiting (Carebase)', /src\/platform\/ratelimit\//],
  ['access rules (RBAC/ABAC)', /src\/(platform\/access|modules\/access)\//],
  ['request scope, transaction', /src\/platform\/(scope|db)\//],
  ['HTTP adapter (Carebase)', /src\/platform\/http\//],
  ['schema wiring (Carebase)', /src\/schema\//],
  ['identity (tokens, sessions)', /src\/modules\/identity\//],
  ['patients module', /src\/modules\/patients\//],
  ['other Carebase code', /src\//],
  ['other npm packages', /node_modules\//],
  ['node: sockets, streams, http', /node:(net|_http|http|stream|internal\/streams|internal\/stream_base|_stream)|\b(writev|writeBuffer|writeUtf8String|writeLatin1String|readableAddChunk|onStreamRead)\b/],
  ['node: crypto', /node:(crypto|internal\/crypto)|\b(update|digest|final|createHmac|createHash|Hmac|Hash|Decipheriv|Cipheriv)\b/],
  ['node/V8 other', /./],
];

export async function run(kind = process.argv[3] ?? 'read') {
  const dir = path.resolve('.data/profiles', `${kind}-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  const server = await startServer('bench/servers/carebase-seeded.ts', { BENCH_PATIENTS: process.env.BENCH_PATIENTS ?? '10000' }, ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
  const info = server.info as { token: string; ids: string[] };
  let i = 0;
  const prefixes = searchPrefixes(200);
  const body = {
    read: () => patientReadBody(info.ids[i++ % info.ids.length]!),
    create: () => patientCreateBody(i++),
    search: () => patientSearchBody(prefixes[i++ % prefixes.length]!),
  }[kind];
  if (!body) throw new Error(`profile: unknown operation ${kind} (read, create, search)`);
  // a profile of refusals would measure the error path: the operation must answer without errors
  const probe = await fetch(`${server.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${info.token}` }, body: body() });
  const answer = (await probe.json()) as { errors?: unknown[] };
  if (!probe.ok || answer.errors) {
    await server.stop();
    throw new Error(`profile: the ${kind} operation failed: ${probe.status} ${JSON.stringify(answer).slice(0, 500)}`);
  }
  const r = await load({
    name: `profile ${kind}`,
    url: `${server.url}/graphql`,
    headers: { authorization: `Bearer ${info.token}` },
    requests: [{ method: 'POST', setupRequest: (req: any) => ({ ...req, body: body() }) } as never],
    cpu: { serverPid: server.child.pid! },
  });
  await server.stop();
  const file = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(dir, f)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
  if (!file) throw new Error(`no profile written in ${dir}`);
  const measuredMs = (DURATION * 1000) | 0;
  const rows = summarise(JSON.parse(readFileSync(file, 'utf8')) as Profile, measuredMs);
  console.log(`${r.requests} requests, ${Math.round(r.rps)} rps, server CPU ${Math.round(r.serverCpuUs ?? 0)} µs/request; profile ${file}`);
  console.log(`(the last ${measuredMs} ms of samples before the server stopped are counted, idle excluded)`);
  console.log('| phase | % of busy CPU | µs/request |\n|---|---:|---:|');
  const busy = rows.filter(([p]) => p !== 'idle').reduce((s, [, us]) => s + us, 0);
  for (const [phase, us] of rows) {
    if (phase === 'idle') continue;
    console.log(`| ${phase} | ${((100 * us) / busy).toFixed(1)} | ${(((r.serverCpuUs ?? 0) * us) / busy).toFixed(0)} |`);
  }
}

/** Self time per phase (µs) over the last `windowMs` of samples before the server's shutdown began. */
function summarise(p: Profile, windowMs: number): [string, number][] {
  const phaseOf = new Map<number, string>();
  for (const n of p.nodes) {
    const key = `${n.callFrame.url} ${n.callFrame.functionName}`;
    phaseOf.set(n.id, PHASES.find(([, re]) => re.test(key))![0]);
  }
  // timestamps of each sample; the window ends at the last busy sample (shutdown follows the load)
  const times: number[] = [];
  let t = p.startTime;
  for (const d of p.timeDeltas) times.push((t += d));
  let end = times.length - 1;
  while (end > 0 && phaseOf.get(p.samples[end]!) === 'idle') end--;
  const from = times[end]! - windowMs * 1000;
  const totals = new Map<string, number>();
  for (let k = 1; k <= end; k++) {
    if (times[k]! < from) continue;
    const phase = phaseOf.get(p.samples[k]!) ?? 'node/V8 other';
    totals.set(phase, (totals.get(phase) ?? 0) + (times[k]! - times[k - 1]!));
  }
  return [...totals.entries()].sort((a, b) => b[1] - a[1]);
}
