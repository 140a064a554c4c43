import http from 'node:http';
import { spawn } from 'node:child_process';
import { load } from '../lib.js';

/** Starts the fixture server and returns its URL and principal header. */
async function startFixture() {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/servers/carebase-fixture.ts'], {
    env: { ...process.env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const info = await new Promise<{ url: string; principal: string }>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const u = /BENCH_URL (\S+)/.exec(out);
      const p = /BENCH_PRINCIPAL (\S+)/.exec(out);
      if (u && p) resolve({ url: u[1]!, principal: p[1]! });
    });
    child.on('exit', (c) => reject(new Error(`fixture server exited ${c}`)));
  });
  return { ...info, stop: () => new Promise<void>((r) => (child.once('exit', () => r()), child.kill('SIGTERM'))) };
}

interface OpenLoopResult {
  sent: number;
  ok: number;
  busy: number;
  other: number;
  p50ok: number;
  p99ok: number;
  p99busy: number;
}

const pct = (xs: number[], p: number) => {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

/** Open-loop load: sends at a fixed rate whatever the server does (as real clients do), records each latency. */
async function openLoop(url: string, headers: Record<string, string>, body: string, rate: number, seconds: number): Promise<OpenLoopResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2048 });
  const target = new URL(`${url}/graphql`);
  const okLat: number[] = [];
  const busyLat: number[] = [];
  let sent = 0;
  let other = 0;
  const inflight = new Set<Promise<void>>();
  const one = () =>
    new Promise<void>((resolve) => {
      const started = performance.now();
      const req = http.request(
        { hostname: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', ...headers }, timeout: 30_000 },
        (res) => {
          res.resume();
          res.on('end', () => {
            const ms = performance.now() - started;
            if (res.statusCode === 200) okLat.push(ms);
            else if (res.statusCode === 503) busyLat.push(ms);
            else other++;
            resolve();
          });
        },
      );
      req.on('error', () => {
        other++;
        resolve();
      });
      req.end(body);
    });
  const interval = 1000 / rate;
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    const due = start + sent * interval;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const p = one();
    inflight.add(p);
    void p.then(() => inflight.delete(p));
    sent++;
  }
  await Promise.all(inflight);
  agent.destroy();
  return { sent, ok: okLat.length, busy: busyLat.length, other, p50ok: pct(okLat, 50), p99ok: pct(okLat, 99), p99busy: pct(busyLat, 99) };
}

/**
 * Overload: measure the sustainable rate of a database-backed query (closed
 * loop), then offer 1x and 4x that rate open-loop. Accepted requests should
 * keep a bounded p99; the excess should get 503 SERVER_BUSY quickly.
 */
export async function run() {
  const s = await startFixture();
  const headers = { 'x-test-principal': s.principal };
  const body = JSON.stringify({ query: 'query Count { noteCount }' });
  try {
    const closed = await load({ name: 'closed loop (32 conns)', url: `${s.url}/graphql`, body, headers });
    const sustainable = Math.max(50, Math.round(closed.rps));
    const seconds = Number(process.env.BENCH_DURATION ?? 10);
    const at1 = await openLoop(s.url, headers, body, sustainable, seconds);
    const at4 = await openLoop(s.url, headers, body, sustainable * 4, seconds);
    console.log(`sustainable (closed loop, 32 connections): ${sustainable} rps, p50 ${closed.p50} ms, p99 ${closed.p99} ms`);
    console.log('| offered | sent | 200 | 503 SERVER_BUSY | other | p50 200 ms | p99 200 ms | p99 503 ms |');
    console.log('|---|---|---|---|---|---|---|---|');
    for (const [label, r] of [['1x', at1], ['4x', at4]] as const) {
      console.log(`| ${label} (${label === '1x' ? sustainable : sustainable * 4} rps) | ${r.sent} | ${r.ok} | ${r.busy} | ${r.other} | ${r.p50ok.toFixed(1)} | ${r.p99ok.toFixed(1)} | ${r.p99busy.toFixed(1)} |`);
    }
    return { sustainable, at1, at4 };
  } finally {
    await s.stop();
  }
}
