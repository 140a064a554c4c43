import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import type { ModuleManifest } from '../../src/schema/index.js';
import { startTestApp } from '../helpers/app.js';

describe('graceful shutdown (in process)', () => {
  it('finishes in-flight requests, then refuses new connections', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const slow: ModuleManifest = {
      name: 'slow',
      phase: 0,
      description: 'fixture',
      dependsOn: [],
      schema: (b) =>
        b.queryField('slow', (t) =>
          t.string({
            authScopes: { public: true },
            resolve: async () => {
              entered();
              await gate;
              return 'done';
            },
          }),
        ),
    };
    const t = await startTestApp({ modules: [slow] });
    const inflight = t.gql<{ slow: string }>('{ slow }');
    await inside;
    const closing = t.app.close();
    await new Promise((r) => setTimeout(r, 50));
    release();
    const res = await inflight;
    expect(res.status).toBe(200);
    expect(res.body.data?.slow).toBe('done');
    await closing;
    await expect(fetch(`${t.url}/healthz`)).rejects.toThrow();
    await t.db.drop();
  });

  it('a stage that never finishes (jobs stuck on a dead connection) does not hold the shutdown', async () => {
    const t = await startTestApp({ env: { SHUTDOWN_TIMEOUT_MS: '300' } });
    const realClose = t.app.background.jobs.close.bind(t.app.background.jobs);
    t.app.background.jobs.close = () => new Promise(() => undefined);
    await t.close();
    expect(t.logs.find((l) => l.msg === 'shutdown timeout: moving on')).toMatchObject({ stage: 'jobs' });
    await expect(fetch(`${t.url}/healthz`)).rejects.toThrow();
    await realClose();
    await t.db.drop();
  });
});

/** Runs `npm start`'s entry point as a child process, like a user would. */
function startServer(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: { ...process.env, NODE_OPTIONS: '', LOG_LEVEL: 'info', PORT: '0', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const started = Date.now();
  const url = new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      for (const line of String(d).split('\n').filter(Boolean)) {
        lines.push(line);
        try {
          const j = JSON.parse(line) as { msg?: string; url?: string };
          if (j.msg === 'Carebase is listening' && j.url) resolve(j.url);
        } catch {
          /* not JSON */
        }
      }
    });
    child.stderr.on('data', (d: Buffer) => lines.push(String(d)));
    child.on('exit', (code) => reject(new Error(`exited ${code}: ${lines.join('\n').slice(-2000)}`)));
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, url, exited, lines, started };
}

function postgresProcessesFor(dir: string): string[] {
  const out = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes(dir) && /postgres/.test(l));
}

describe('npm start on the embedded database', () => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'carebase-embedded-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('first boot initialises PostgreSQL, serves serverInfo, and Ctrl-C leaves no postgres behind', { timeout: 120_000 }, async () => {
    const s = startServer({ DATA_DIR: dataDir });
    const url = (await s.url).replace('localhost', '127.0.0.1');
    const bootMs = Date.now() - s.started;
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ serverInfo { version } }"}' });
    expect(((await res.json()) as { data: { serverInfo: { version: string } } }).data.serverInfo.version).toBeTruthy();
    expect(postgresProcessesFor(dataDir).length).toBeGreaterThan(0);
    // the app pools come in through the Unix socket in DATA_DIR/pg-run (mode 700), not loopback TCP
    const runDir = path.join(dataDir, 'pg-run');
    expect(statSync(runDir).mode & 0o777).toBe(0o700);
    const socket = readdirSync(runDir).find((f) => /^\.s\.PGSQL\.\d+$/.test(f));
    expect(socket).toBeTruthy();
    const owner = postgres({ host: runDir, port: Number(socket!.split('.').pop()), user: 'postgres', database: 'carebase', password: readFileSync(path.join(dataDir, 'pg-superuser-password'), 'utf8').trim(), max: 1 });
    const conns = await owner<{ socket: boolean }[]>`select client_addr is null as socket from pg_stat_activity where usename = 'carebase_app' and application_name = 'carebase'`;
    await owner.end();
    expect(conns.length).toBeGreaterThan(0);
    expect(conns.every((c) => c.socket)).toBe(true);
    s.child.kill('SIGINT');
    expect(await s.exited).toBe(0);
    expect(postgresProcessesFor(dataDir)).toEqual([]);
    expect(existsSync(path.join(dataDir, 'pg', 'postmaster.pid'))).toBe(false);
    console.info(`embedded first boot: ${bootMs} ms`);
  });

  it('a later boot reuses the cluster; SIGTERM exits 0 and stops PostgreSQL', { timeout: 120_000 }, async () => {
    const s = startServer({ DATA_DIR: dataDir });
    await s.url;
    const bootMs = Date.now() - s.started;
    expect(s.lines.join('\n')).not.toContain('initialising embedded PostgreSQL');
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
    expect(postgresProcessesFor(dataDir)).toEqual([]);
    console.info(`embedded later boot: ${bootMs} ms`);
  });

  it('after a kill -9, the next boot stops the orphaned PostgreSQL and starts cleanly', { timeout: 120_000 }, async () => {
    const s = startServer({ DATA_DIR: dataDir });
    await s.url;
    s.child.kill('SIGKILL');
    await s.exited;
    expect(postgresProcessesFor(dataDir).length).toBeGreaterThan(0);
    const again = startServer({ DATA_DIR: dataDir });
    const url = (await again.url).replace('localhost', '127.0.0.1');
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ serverInfo { version } }"}' });
    expect(res.status).toBe(200);
    again.child.kill('SIGINT');
    expect(await again.exited).toBe(0);
    expect(postgresProcessesFor(dataDir)).toEqual([]);
  });
});
