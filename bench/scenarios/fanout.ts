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
 * The client side shares this machine, so the figures include its event loop.
 * With redisUrl the server uses the Redis streams adapter (single node still).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { SignJWT } from 'jose';
import { io, type Socket } from 'socket.io-client';

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

async function openSockets(url: string, tenantId: string, secret: string): Promise<Socket[]> {
  const key = new TextEncoder().encode(secret);
  const sockets: Socket[] = [];
  for (let i = 0; i < SOCKETS; i += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, SOCKETS - i) }, async () => {
        const token = await new SignJWT({ tid: tenantId }).setProtectedHeader({ alg: 'HS256' }).setSubject(randomUUID()).setExpirationTime('1h').sign(key);
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

async function rounds(url: string, sockets: Socket[], mode: 'direct' | 'outbox'): Promise<{ latencies: number[]; missing: number }> {
  const latencies: number[] = [];
  let missing = 0;
  for (let round = 0; round < ROUNDS; round++) {
    let got = 0;
    const all = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 10_000);
      for (const s of sockets) {
        s.once('event', (e: { payload: { round: number; sentAt: number } }) => {
          latencies.push(Date.now() - e.payload.sentAt);
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
    for (const s of sockets) s.removeAllListeners('event');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { latencies, missing };
}

export async function run(opts: RunOptions): Promise<Record<string, number>> {
  if (opts.baseUrl) {
    // the fanout server needs its bench-only token hook and emit route: always start our own
    process.stderr.write('fanout: ignoring baseUrl; starting bench/scenarios/fanout-server.ts\n');
  }
  const secret = randomBytes(32).toString('base64url');
  const server = await startFanoutServer(opts, secret);
  const sockets: Socket[] = [];
  try {
    const t0 = Date.now();
    sockets.push(...(await openSockets(server.url, server.tenantId, secret)));
    const connectSeconds = (Date.now() - t0) / 1000;
    // warm-up round (JIT, pools)
    await rounds(server.url, sockets, 'direct').catch(() => undefined);
    const direct = await rounds(server.url, sockets, 'direct');
    const outbox = await rounds(server.url, sockets, 'outbox');
    return {
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
