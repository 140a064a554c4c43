import net from 'node:net';
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

/**
 * Open-loop load: requests are scheduled at a fixed rate whatever the server
 * does (as real clients do) and each latency is measured from its scheduled
 * time, so time spent queued in this client counts too (no coordinated
 * omission). `connections` keep-alive sockets carry them; the HTTP/1.1 is
 * written and parsed by hand (a pre-built request, status line and
 * Content-Length), because node:http costs more CPU per request than the
 * server's shedding path and would measure itself on a 2-core machine.
 */
async function openLoop(url: string, headers: Record<string, string>, body: string, rate: number, seconds: number, connections = 256): Promise<OpenLoopResult> {
  const target = new URL(`${url}/graphql`);
  const head = Object.entries({ 'content-type': 'application/json', ...headers, 'content-length': String(Buffer.byteLength(body)) })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  const request = Buffer.from(`POST ${target.pathname} HTTP/1.1\r\nhost: ${target.host}\r\nconnection: keep-alive\r\n${head}\r\n${body}`);
  const okLat: number[] = [];
  const busyLat: number[] = [];
  let other = 0;
  const queue: number[] = []; // scheduled start times waiting for a free connection
  const idle: Conn[] = [];
  interface Conn {
    socket: net.Socket;
    buf: Buffer;
    started: number;
  }
  const dispatch = (c: Conn) => {
    const t = queue.shift();
    if (t === undefined) return void idle.push(c);
    c.started = t;
    c.socket.write(request);
  };
  const open = (): Promise<Conn> =>
    new Promise((resolve, reject) => {
      const socket = net.connect(Number(target.port), target.hostname, () => resolve(c));
      socket.setNoDelay(true);
      const c: Conn = { socket, buf: Buffer.alloc(0), started: 0 };
      socket.on('error', reject);
      socket.on('data', (d: Buffer) => {
        c.buf = c.buf.length ? Buffer.concat([c.buf, d]) : d;
        for (;;) {
          const end = c.buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const headText = c.buf.subarray(0, end).toString('latin1');
          const len = Number(/content-length:\s*(\d+)/i.exec(headText)?.[1] ?? 0);
          if (c.buf.length < end + 4 + len) return;
          c.buf = c.buf.subarray(end + 4 + len);
          const status = Number(headText.slice(9, 12));
          const ms = performance.now() - c.started;
          if (status === 200) okLat.push(ms);
          else if (status === 503) busyLat.push(ms);
          else other++;
          dispatch(c);
        }
      });
    });
  const conns = await Promise.all(Array.from({ length: connections }, open));
  idle.push(...conns);
  const interval = 1000 / rate;
  const start = performance.now();
  const end = start + seconds * 1000;
  let sent = 0;
  while (performance.now() < end) {
    // everything due by now is scheduled (at its due time) and handed to idle connections
    const now = performance.now();
    while (start + sent * interval <= now) {
      queue.push(start + sent * interval);
      sent++;
    }
    while (queue.length && idle.length) dispatch(idle.pop()!);
    await new Promise((r) => setImmediate(r));
  }
  // drain: wait until every scheduled request has been answered (or 60 s)
  const deadline = performance.now() + 60_000;
  while (okLat.length + busyLat.length + other < sent && performance.now() < deadline) {
    while (queue.length && idle.length) dispatch(idle.pop()!);
    await new Promise((r) => setTimeout(r, 5));
  }
  other += sent - (okLat.length + busyLat.length + other);
  for (const c of conns) c.socket.destroy();
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
