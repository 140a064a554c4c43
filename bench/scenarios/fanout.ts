/**
 * fanout: delivery latency of one event to 2,000 sockets on one node.
 *
 * The server (bench/scenarios/fanout-server.ts, a child process running the
 * real createApp) holds the sockets; this process opens BENCH_SOCKETS
 * (default 2000) socket.io clients (websocket) in the same tenant, then for
 * BENCH_ROUNDS_FANOUT rounds (default 20) asks the server to emit one event
 * to the tenant room and records, for every socket, receive time - send time
 * (same machine clock). Two modes per run:
 *   direct: realtime.publish -> socket.io fan-out (the baseline: no database)
 *   outbox: emitEvent committed -> NOTIFY -> relay -> fan-out (end to end)
 * The client side shares this machine, so the figures include its event loop;
 * the default light clients keep that share small (see openLightClients).
 * With redisUrl the server uses the Redis streams adapter (single node still).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { SignJWT } from 'jose';
import { io, type Socket } from 'socket.io-client';
import WebSocket from 'ws';

export interface RunOptions {
  baseUrl?: string;
  redisUrl?: string;
  databaseUrl: string;
}

const SOCKETS = Number(process.env.BENCH_SOCKETS ?? 2000);
const ROUNDS = Number(process.env.BENCH_ROUNDS_FANOUT ?? 20);

const pct = (xs: number[], p: number) => {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function startFanoutServer(opts: RunOptions, secret: string) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/scenarios/fanout-server.ts'], {
    env: {
      ...process.env,
      NODE_OPTIONS: '',
      BENCH_SECRET: secret,
      DATABASE_URL: opts.databaseUrl,
      REDIS_URL: opts.redisUrl ?? '',
      JOBS_KEY_PREFIX: `cbbench-${randomBytes(4).toString('hex')}`,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const info = await new Promise<{ url: string; tenantId: string }>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += String(d);
      const u = /BENCH_URL (\S+)/.exec(out);
      const t = /BENCH_TENANT (\S+)/.exec(out);
      if (u && t) resolve({ url: u[1]!, tenantId: t[1]! });
    });
    child.on('exit', (code) => reject(new Error(`fanout server exited with ${code}`)));
  });
  return { ...info, stop: () => new Promise<void>((r) => (child.once('exit', () => r()), child.kill('SIGTERM'))) };
}

/** One connected client: `handle` receives each `event`'s sentAt (undefined = stop listening). */
interface Client {
  handle(fn: ((sentAt: number) => void) | undefined): void;
  close(): void;
}

const bearer = (tenantId: string, key: Uint8Array) => new SignJWT({ tid: tenantId }).setProtectedHeader({ alg: 'HS256' }).setSubject(randomUUID()).setExpirationTime('1h').sign(key);

/**
 * Light clients (default, BENCH_FANOUT_CLIENT=light): the socket.io v4 protocol
 * over a bare `ws` WebSocket — engine.io open, namespace connect with the
 * token as auth, pong to pings, `42["event",…]` frames — ~20 µs per received
 * event instead of socket.io-client's few hundred. With 2,000 socket.io-client
 * instances in one process, the p99 mostly measured this process parsing
 * 2,000 frames in turn on a 2-core machine it shares with the server.
 */
async function openLightClients(url: string, tenantId: string, secret: string): Promise<Client[]> {
  const key = new TextEncoder().encode(secret);
  const wsUrl = `${url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;
  const clients: Client[] = [];
  for (let i = 0; i < SOCKETS; i += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, SOCKETS - i) }, async () => {
        const token = await bearer(tenantId, key);
        const ws = new WebSocket(wsUrl);
        let onEvent: ((sentAt: number) => void) | undefined;
        await new Promise<void>((resolve, reject) => {
          ws.on('error', reject);
          ws.on('message', (data: Buffer) => {
            const m = data.toString();
            if (m === '2') return void ws.send('3'); // engine.io ping -> pong
            if (m.startsWith('42')) {
              const [name, e] = JSON.parse(m.slice(2)) as [string, { payload?: { sentAt?: number } }];
              if (name === 'event' && onEvent && e.payload?.sentAt) onEvent(e.payload.sentAt);
              return;
            }
            if (m[0] === '0') return void ws.send(`40${JSON.stringify({ token })}`); // engine.io open -> connect with auth
            if (m.startsWith('40')) return resolve();
            if (m.startsWith('44')) reject(new Error(`connect refused: ${m.slice(2, 200)}`));
          });
        });
        return { handle: (fn: ((sentAt: number) => void) | undefined) => void (onEvent = fn), close: () => ws.close() };
      }),
    );
    clients.push(...batch);
  }
  return clients;
}

async function openSocketIoClients(url: string, tenantId: string, secret: string): Promise<Client[]> {
  return (await openSockets(url, tenantId, secret)).map((s) => ({
    handle: (fn: ((sentAt: number) => void) | undefined) => {
      s.removeAllListeners('event');
      if (fn) s.on('event', (e: { payload: { sentAt: number } }) => fn(e.payload.sentAt));
    },
    close: () => s.close(),
  }));
}

async function openSockets(url: string, tenantId: string, secret: string): Promise<Socket[]> {
  const key = new TextEncoder().encode(secret);
  const sockets: Socket[] = [];
  for (let i = 0; i < SOCKETS; i += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, SOCKETS - i) }, async () => {
        const token = await bearer(tenantId, key);
        const s = io(url, { transports: ['websocket'], auth: { token }, reconnection: false, forceNew: true });
        await new Promise<void>((resolve, reject) => {
          s.once('connect', () => resolve());
          s.once('connect_error', reject);
        });
        return s;
      }),
    );
    sockets.push(...batch);
  }
  return sockets;
}

async function rounds(url: string, sockets: Client[], mode: 'direct' | 'outbox'): Promise<{ latencies: number[]; missing: number }> {
  const latencies: number[] = [];
  let missing = 0;
  for (let round = 0; round < ROUNDS; round++) {
    let got = 0;
    const all = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 10_000);
      for (const s of sockets) {
        s.handle((sentAt) => {
          s.handle(undefined);
          latencies.push(Date.now() - sentAt);
          if (++got === sockets.length) {
            clearTimeout(timer);
            resolve();
          }
        });
      }
    });
    // the app sheds load (503 SERVER_BUSY) while its event loop is busy fanning out: retry the trigger
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(`${url}/__bench/emit`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode, round }) });
      if (res.ok) break;
      if (res.status !== 503 || attempt > 50) throw new Error(`emit failed: HTTP ${res.status}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await all;
    if (process.env.BENCH_DEBUG) process.stderr.write(`${mode} round ${round}: ${got}/${sockets.length}\n`);
    missing += sockets.length - got;
    for (const s of sockets) s.handle(undefined);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { latencies, missing };
}

export async function run(opts: RunOptions): Promise<Record<string, number | string>> {
  if (opts.baseUrl) {
    // the fanout server needs its bench-only token hook and emit route: always start our own
    process.stderr.write('fanout: ignoring baseUrl; starting bench/scenarios/fanout-server.ts\n');
  }
  const secret = randomBytes(32).toString('base64url');
  const server = await startFanoutServer(opts, secret);
  const sockets: Client[] = [];
  const light = (process.env.BENCH_FANOUT_CLIENT ?? 'light') === 'light';
  try {
    const t0 = Date.now();
    sockets.push(...(await (light ? openLightClients : openSocketIoClients)(server.url, server.tenantId, secret)));
    const connectSeconds = (Date.now() - t0) / 1000;
    // warm-up round (JIT, pools)
    await rounds(server.url, sockets, 'direct').catch(() => undefined);
    const direct = await rounds(server.url, sockets, 'direct');
    const outbox = await rounds(server.url, sockets, 'outbox');
    return {
      client: light ? 'light (ws + socket.io protocol)' : 'socket.io-client',
      sockets: sockets.length,
      rounds: ROUNDS,
      connect_per_s: Math.round(sockets.length / connectSeconds),
      direct_p50_ms: pct(direct.latencies, 50),
      direct_p99_ms: pct(direct.latencies, 99),
      direct_max_ms: pct(direct.latencies, 100),
      direct_missing: direct.missing,
      outbox_p50_ms: pct(outbox.latencies, 50),
      outbox_p99_ms: pct(outbox.latencies, 99),
      outbox_max_ms: pct(outbox.latencies, 100),
      outbox_missing: outbox.missing,
    };
  } finally {
    for (const s of sockets) s.close();
    await server.stop();
  }
}

// standalone: tsx bench/scenarios/fanout.ts (DATABASE_URL required, REDIS_URL optional)
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/bench\//, '/bench/'))) {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is required');
  console.log(await run({ databaseUrl, redisUrl: process.env.REDIS_URL || undefined }));
  process.exit(0);
}
