/**
 * Per-process CPU accounting for the bench (Linux /proc): the user + system
 * time of a server process (all its threads, not its children: the embedded
 * PostgreSQL a Carebase bench server starts is counted apart), and of a
 * PostgreSQL server: the postmaster and its children, that is every auxiliary
 * process (WAL writer, checkpointer, autovacuum, ...) and the client backends
 * connected to the database under test; backends of other databases (other
 * work on a shared server) are left out. Processes that exit inside a window
 * are missed (pools keep their connections, so backends live through a run).
 */
import { execFileSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import postgres from 'postgres';

let tck: number | undefined;
/** clock ticks per second of /proc/<pid>/stat times (USER_HZ) */
function ticksPerSecond(): number {
  if (tck === undefined) {
    try {
      tck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      tck = 100;
    }
  }
  return tck;
}

interface Stat {
  ppid: number;
  /** utime + stime, in clock ticks */
  ticks: number;
}

async function stat(pid: number): Promise<Stat | undefined> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // the command name (field 2) may hold spaces and parentheses: fields 3.. follow the last ')'
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
}

/** CPU time of one process (user + system, all threads), in µs; undefined once it is gone. */
/** /proc/pressure/cpu `some` total (µs during which at least one runnable task waited for a CPU), if the kernel has PSI */
export async function cpuPressureUs(): Promise<number | undefined> {
  try {
    return Number(/^some .*total=(\d+)/m.exec(await readFile('/proc/pressure/cpu', 'utf8'))?.[1]);
  } catch {
    return undefined;
  }
}

export async function processCpuUs(pid: number): Promise<number | undefined> {
  const s = await stat(pid);
  return s && (s.ticks * 1e6) / ticksPerSecond();
}

export interface PgTarget {
  /** a URL the bench may connect with to read pg_stat_activity (the owner URL) */
  url: string;
  /** client backends of this database are counted */
  database: string;
}

/** Measures a local PostgreSQL server's CPU spent for one database between two snapshots. */
export class PgCpu {
  private constructor(
    private readonly sql: postgres.Sql,
    private readonly postmaster: number,
    private readonly database: string,
    /** this class's own backend (its pg_stat_activity reads are not the load's) */
    private readonly self: number,
  ) {}

  /** undefined when the server is not a local process this machine's /proc can see */
  static async open(t: PgTarget): Promise<PgCpu | undefined> {
    const sql = postgres(t.url, { max: 1, onnotice: () => undefined, connection: { application_name: 'bench-cpu' } });
    try {
      const [r] = await sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
      const backend = r && (await stat(r.pid));
      const postmaster = backend && (await stat(backend.ppid)) ? backend.ppid : undefined;
      if (!postmaster) {
        await sql.end({ timeout: 5 });
        return undefined;
      }
      return new PgCpu(sql, postmaster, t.database, r!.pid);
    } catch {
      await sql.end({ timeout: 5 }).catch(() => undefined);
      return undefined;
    }
  }

  /** CPU ticks of the counted processes, by pid */
  private async snapshot(): Promise<Map<number, number>> {
    const activity = await this.sql<{ pid: number; datname: string | null; backend_type: string | null }[]>`
      select pid, datname, backend_type from pg_stat_activity`;
    const skip = new Set(activity.filter((a) => a.backend_type === 'client backend' && a.datname !== this.database).map((a) => a.pid));
    skip.add(this.self);
    const out = new Map<number, number>();
    const pm = await stat(this.postmaster);
    if (pm) out.set(this.postmaster, pm.ticks);
    for (const name of await readdir('/proc')) {
      const pid = Number(name);
      if (!pid || skip.has(pid)) continue;
      const s = await stat(pid);
      if (s && s.ppid === this.postmaster) out.set(pid, s.ticks);
    }
    return out;
  }

  /** starts a window; the returned function ends it and gives the CPU time in µs */
  async start(): Promise<() => Promise<number>> {
    const before = await this.snapshot();
    return async () => {
      const after = await this.snapshot();
      let ticks = 0;
      for (const [pid, t] of after) ticks += t - (before.get(pid) ?? 0);
      return (ticks * 1e6) / ticksPerSecond();
    };
  }

  close(): Promise<void> {
    return this.sql.end({ timeout: 5 });
  }
}
