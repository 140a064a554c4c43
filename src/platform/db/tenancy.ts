import postgres from 'postgres';
import { drizzle } from 'drizzle-orm/postgres-js';
import { AppError } from '../errors.js';
import { classifyDbError, dbAppError } from './errors.js';

/** Per-transaction deadlines (set_config(..., true) = SET LOCAL). */
export interface Deadlines {
  statementTimeoutMs: number;
  lockTimeoutMs: number;
}
const DEFAULT_DEADLINES: Deadlines = { statementTimeoutMs: 10_000, lockTimeoutMs: 3_000 };
/** After a connection failure, fail fast for this long instead of queueing on a dead server. */
const OPEN_CIRCUIT_MS = 500;
/**
 * While the circuit is open, one request per interval still goes to the database (half-open): the first that
 * gets BEGIN answered closes the circuit, so requests flow again as soon as the database is back, not up to
 * OPEN_CIRCUIT_MS later (each late failure of a connection attempt made during the outage reopened it).
 */
const PROBE_INTERVAL_MS = 50;

/** A drizzle client bound to one connection inside one transaction. */
export type Db = ReturnType<typeof bind>;

function bind(pool: postgres.Sql, conn: postgres.ReservedSql, around: (q: postgres.PendingQuery<postgres.Row[]>) => postgres.PendingQuery<postgres.Row[]>) {
  // A reserved connection shares the pool's parsers but does not expose them;
  // drizzle needs them to install its date codecs.
  if (!(conn as { options?: unknown }).options) Object.assign(conn, { options: pool.options });
  const unsafe = (query: string, params?: unknown[], options?: postgres.UnsafeQueryOptions) =>
    around(conn.unsafe(query, params as never, preparedOptions(params, options)));
  const client = new Proxy(conn, { get: (target, prop, receiver) => (prop === 'unsafe' ? unsafe : Reflect.get(target, prop, receiver)) });
  return drizzle({ client: client as postgres.Sql });
}

/**
 * One request's database work: a single connection reserved from the app
 * pool, one transaction, with app.tenant_id (and app.user_id) set locally so
 * row level security scopes every statement. Opened lazily on first use, so
 * requests that touch no table cost no round trip. Services receive the Db
 * and never open transactions themselves.
 */
export class RequestTransaction {
  /** the reserved connection, its Db, and `ready`: settles once BEGIN and the settings ran (with their error, if any) */
  private opening?: Promise<{ conn: postgres.ReservedSql; db: Db; ready: Promise<unknown> }>;
  private done = false;
  /** each statement is a transaction of its own (perStatement), until raw access opens one for the rest */
  private autocommit = false;
  /** the per-statement transactions' BEGIN, settings and COMMIT, settled before the connection goes back */
  private inflight: Promise<unknown>[] = [];
  /** transactions currently open in this process (metrics) */
  static open = 0;
  /** requests waiting for a pool connection (load shedding, metrics) */
  static waiting = 0;
  /** while in the future, the database is presumed down and db() fails fast */
  static unavailableUntil = 0;
  /** while the circuit is open, when the next request may probe the database */
  static nextProbeAt = 0;
  static deadlines: Deadlines = DEFAULT_DEADLINES;

  constructor(
    readonly pool: postgres.Sql,
    private tenantId: string | null,
    private readonly userId: string | null = null,
    /** this transaction's own deadlines (a scheduled scan may need more than a request); default: the request's */
    private readonly ownDeadlines?: Partial<Deadlines>,
  ) {}

  private get deadlines(): Deadlines {
    return this.ownDeadlines ? { ...RequestTransaction.deadlines, ...this.ownDeadlines } : RequestTransaction.deadlines;
  }

  get isOpen(): boolean {
    return !!this.opening && !this.done;
  }

  /** Set the tenant before the transaction opens (e.g. login by tenant slug). */
  setTenant(tenantId: string) {
    if (this.opening) throw new Error('tenant can only be set before the transaction opens');
    this.tenantId = tenantId;
  }

  /**
   * For a read-only GraphQL operation (a query; the transaction plugin calls this once the operation is known,
   * before its first statement): each statement goes out as BEGIN, the tenant settings, the statement and
   * COMMIT, started together so that postgres-js sends them in one socket write. A query that reads once then
   * costs one write and one round trip, where a request transaction costs two writes (the statement with BEGIN,
   * then COMMIT at the end). RLS is as strict (every statement runs under its own settings) and the answers are
   * the same: under READ COMMITTED each statement of a transaction sees its own snapshot anyway. Raw access
   * (`connection()`: cursors, SET TRANSACTION, the audit trail's staging) opens one transaction for the rest of
   * the request, as without this. Does nothing once the transaction is open, or when a beforeCommit hook waits for it.
   */
  perStatement(): void {
    if (!this.opening && !this.hooks.length) this.autocommit = true;
  }

  /** BEGIN and the tenant settings, started (not awaited). */
  private begin(conn: postgres.ReservedSql): Promise<unknown>[] {
    const d = this.deadlines;
    return [
      conn`begin`.execute(),
      conn`select set_config('app.tenant_id', ${this.tenantId ?? ''}, true), set_config('app.user_id', ${this.userId ?? ''}, true),
        set_config('statement_timeout', ${String(d.statementTimeoutMs)}, true), set_config('lock_timeout', ${String(d.lockTimeoutMs)}, true)`.execute(),
    ];
  }

  /** A statement of the Db: in per-statement mode wrapped in its own BEGIN, settings and COMMIT (one write). */
  private around(conn: postgres.ReservedSql, q: postgres.PendingQuery<postgres.Row[]>): postgres.PendingQuery<postgres.Row[]> {
    if (!this.autocommit) return q;
    const [begin, settings] = this.begin(conn);
    q.execute();
    // a statement that failed makes this COMMIT a ROLLBACK: the connection is clean for the next one
    const commit = conn`commit`.execute();
    // BEGIN answered closes the circuit; a connection failure opens it, as for a request transaction (started)
    this.inflight.push(begin!.then(RequestTransaction.answered, RequestTransaction.failed), settings!.catch(() => undefined), commit.catch(() => undefined));
    return q;
  }

  db(): Promise<Db> {
    if (this.done) return Promise.reject(new Error('request transaction already finished'));
    this.opening ??= (async () => {
      const now = Date.now();
      if (now < RequestTransaction.unavailableUntil) {
        if (now < RequestTransaction.nextProbeAt) throw dbAppError({ code: 'ECONNREFUSED' })!;
        RequestTransaction.nextProbeAt = now + PROBE_INTERVAL_MS; // this request probes
      }
      let conn: postgres.ReservedSql;
      RequestTransaction.waiting++;
      try {
        conn = await this.pool.reserve();
      } catch (e) {
        throw RequestTransaction.failed(e);
      } finally {
        RequestTransaction.waiting--;
      }
      RequestTransaction.open++;
      const db = bind(this.pool, conn, (q) => this.around(conn, q));
      // per statement: each statement brings its own BEGIN and settings (around)
      return { conn, db, ready: this.autocommit ? Promise.resolve(undefined) : this.started(conn) };
    })();
    return this.opening.then((o) => o.db);
  }

  /**
   * BEGIN and the settings are started, not awaited: postgres-js writes queries started before its next
   * flush (setImmediate) in one socket write, so the caller's first statement goes out with them and a
   * request that reads one row costs one round trip before COMMIT instead of two. PostgreSQL runs them in
   * order: if BEGIN or the settings fail, so does that statement; the returned promise keeps their own error,
   * and the connection is given back only after they settled (never with a query in flight).
   */
  private started(conn: postgres.ReservedSql): Promise<unknown> {
    return Promise.allSettled(this.begin(conn)).then((settled) => {
      const failed = settled.find((r) => r.status === 'rejected');
      if (!failed) RequestTransaction.answered();
      return failed ? RequestTransaction.failed((failed as PromiseRejectedResult).reason) : undefined;
    });
  }

  /** the app's pools (createPool registers each until it ends): warmed when the circuit closes */
  static readonly pools = new Set<postgres.Sql>();

  /**
   * The database answered: close the circuit. If it was open, every pool connects one connection now, beside the
   * request that closed it: a request after an outage otherwise connects the request pool, the side pool (MRN) and
   * the audit writer's pool one after the other, each waiting out its reconnect delay.
   */
  static answered(): void {
    if (!RequestTransaction.unavailableUntil) return;
    RequestTransaction.unavailableUntil = 0;
    for (const pool of RequestTransaction.pools) pool`select 1`.execute().catch(() => undefined);
  }

  /** Maps a connection failure to DATABASE_UNAVAILABLE and opens the circuit briefly. */
  static failed(e: unknown): unknown {
    if (classifyDbError(e) === 'unavailable') RequestTransaction.unavailableUntil = Date.now() + OPEN_CIRCUIT_MS;
    return dbAppError(e) ?? e;
  }

  /** Raw connection of the transaction (for COPY / streaming). */
  async connection(): Promise<postgres.ReservedSql> {
    await this.db();
    const opened = await this.opening!;
    if (this.autocommit) {
      // raw access wants a transaction (a cursor, SET TRANSACTION): the rest of the request is one
      this.autocommit = false;
      opened.ready = this.started(opened.conn);
    }
    const { conn, ready } = opened;
    const failed = await ready;
    if (failed) throw failed;
    return conn;
  }

  /**
   * Work that must be the last thing before COMMIT, on this transaction's
   * connection (the audit hash chain: its head row stays locked from the
   * hook's first statement until COMMIT, so that window must be as short as
   * possible). The hook awaits what it must, then *starts* its final
   * statements and returns their promises without awaiting them: COMMIT goes
   * out in the same socket write. If any of them fails, the commit fails
   * (PostgreSQL ends an aborted transaction with ROLLBACK) and commit()
   * throws the hook's error.
   */
  beforeCommit(hook: (conn: postgres.ReservedSql) => Promise<Promise<unknown>[]>): void {
    if (this.done) throw new Error('request transaction already finished');
    // per statement there is no transaction to end with the hook: it would be skipped (connection() opens one first)
    if (this.autocommit) throw new Error('beforeCommit needs the request transaction: call connection() first');
    this.hooks.push(hook);
  }
  private hooks: ((conn: postgres.ReservedSql) => Promise<Promise<unknown>[]>)[] = [];

  /**
   * Work to run once the transaction has committed (and only then), awaited
   * before commit() resolves: the audit trail's chaining of the events the
   * transaction staged. A failure there is the work's own to report (it must
   * not fail a commit that happened); it is not thrown here.
   */
  afterCommit(fn: () => Promise<unknown>): void {
    if (this.done) throw new Error('request transaction already finished');
    this.afterCommitWork.push(fn);
  }
  private afterCommitWork: (() => Promise<unknown>)[] = [];

  async commit(): Promise<void> {
    await this.finish('commit');
  }

  async rollback(): Promise<void> {
    await this.finish('rollback');
  }

  private async commitWithHooks(conn: postgres.ReservedSql) {
    const hooks = this.hooks.splice(0);
    let pending: Promise<unknown>[] = [];
    try {
      for (const hook of hooks) pending.push(...(await hook(conn)));
    } catch (e) {
      await Promise.allSettled(pending);
      await withTimeout(conn`rollback`, 1_000).catch(() => undefined);
      throw new HookFailed(e);
    }
    // started in the same tick as the hooks' last statements: one write, one round trip
    const commit = conn`commit`.execute();
    const settled = await withTimeout(Promise.allSettled([...pending, commit]), this.deadlines.lockTimeoutMs + 2_000);
    const failed = settled.slice(0, -1).find((r) => r.status === 'rejected');
    if (failed) throw new HookFailed((failed as PromiseRejectedResult).reason);
    const c = settled.at(-1)!;
    if (c.status === 'rejected') throw c.reason;
  }

  private async finish(how: 'commit' | 'rollback') {
    if (!this.opening || this.done) return;
    this.done = true;
    let opened: { conn: postgres.ReservedSql; ready: Promise<unknown> };
    try {
      opened = await this.opening;
    } catch {
      return; // never opened
    }
    const { conn } = opened;
    let committed = false;
    try {
      if (this.autocommit) {
        // every statement ended its own transaction: wait for their last COMMIT, bounded like a commit
        await withTimeout(Promise.all(this.inflight), this.deadlines.lockTimeoutMs + 2_000).catch(() => undefined);
      } else {
        // BEGIN or the settings failed: there is no transaction to end (a commit fails with their error)
        const failed = await opened.ready;
        if (failed) {
          if (how === 'commit') throw failed;
          return;
        }
        if (how === 'commit' && this.hooks.length) await this.commitWithHooks(conn);
        // a connection cut mid-transaction must not hang the request: bound the wait
        else await withTimeout(how === 'commit' ? conn`commit` : conn`rollback`, this.deadlines.lockTimeoutMs + 2_000);
      }
      // per statement: the request's statements are committed, so its after-commit work runs too
      committed = how === 'commit';
    } catch (e) {
      if (e instanceof HookFailed) {
        // the transaction is over (COMMIT of an aborted transaction rolls back); report the hook's own error
        throw e.cause instanceof AppError ? e.cause : RequestTransaction.failed(e.cause);
      }
      if (e instanceof AppError) throw e;
      if (how === 'commit') {
        if (classifyDbError(e) !== 'unavailable') await withTimeout(conn`rollback`, 1_000).catch(() => undefined);
        throw RequestTransaction.failed(e);
      }
    } finally {
      RequestTransaction.open--;
      conn.release(); // a dead connection stays with the pool (guarded pool, createPool)
    }
    // with the connection given back: this work uses its own
    if (committed) for (const fn of this.afterCommitWork.splice(0)) await fn().catch(() => undefined);
  }
}

/**
 * drizzle sends every statement unnamed (`prepare: false`), and postgres-js
 * then spends a Describe round trip on each one before running it. Statements
 * with few parameters are prepared instead (named, cached per connection by
 * their text, re-prepared by postgres-js if the schema changed); bulk
 * statements stay unnamed so row-count variants do not pile up on the server.
 */
const MAX_PREPARED_PARAMS = 64;
function preparedOptions(params: unknown[] | undefined, options: postgres.UnsafeQueryOptions | undefined): postgres.UnsafeQueryOptions | undefined {
  if (!params?.length || params.length > MAX_PREPARED_PARAMS) return options;
  return { ...options, prepare: true };
}

class HookFailed extends Error {
  constructor(override readonly cause: unknown) {
    super('pre-commit work failed');
  }
}

function withTimeout<T>(p: PromiseLike<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(Object.assign(new Error('database did not answer'), { code: 'CONNECT_TIMEOUT' })), ms);
    Promise.resolve(p).then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/** Options of a tenant transaction opened outside a request (withTenant). */
export interface TenantTransactionOptions {
  /** app.user_id of the transaction (default none) */
  userId?: string | null;
  /**
   * statement_timeout of this transaction, in ms (default: the request deadline, RequestTransaction.deadlines).
   * Scheduled scans (anomaly checks, chain verification) read more than a request may.
   */
  statementTimeoutMs?: number;
  /** lock_timeout of this transaction, in ms (default: the request's) */
  lockTimeoutMs?: number;
}

/**
 * The one way to open a tenant transaction outside a request (jobs' own work, schedules, CLIs): one reserved
 * connection, BEGIN with app.tenant_id (and app.user_id) set locally so RLS applies, the deadlines of a request
 * unless `opts` lifts them; committed when `fn` resolves, rolled back when it throws. `fn` gets the drizzle client
 * and the same transaction's raw postgres-js connection (for set-returning functions, COPY, tagged SQL).
 * Work that reads PHI on someone's behalf runs in a request scope instead (ScopeFactory.run in platform/scope),
 * which records the access. `opts` as a string or null is the user id (older call form).
 */
export async function withTenant<T>(
  pool: postgres.Sql,
  tenantId: string | null,
  fn: (db: Db, sql: postgres.ReservedSql) => Promise<T>,
  opts: TenantTransactionOptions | string | null = null,
): Promise<T> {
  const o: TenantTransactionOptions = typeof opts === 'string' || opts === null ? { userId: opts } : opts;
  const own: Partial<Deadlines> = {};
  if (o.statementTimeoutMs !== undefined) own.statementTimeoutMs = positiveMs(o.statementTimeoutMs, 'statementTimeoutMs');
  if (o.lockTimeoutMs !== undefined) own.lockTimeoutMs = positiveMs(o.lockTimeoutMs, 'lockTimeoutMs');
  const tx = new RequestTransaction(pool, tenantId, o.userId ?? null, Object.keys(own).length ? own : undefined);
  try {
    const db = await tx.db();
    const result = await fn(db, await tx.connection());
    await tx.commit();
    return result;
  } catch (e) {
    await tx.rollback();
    throw e;
  }
}

function positiveMs(ms: number, name: string): number {
  if (!Number.isInteger(ms) || ms <= 0) throw new Error(`withTenant: ${name} must be a positive integer of milliseconds`);
  return ms;
}
