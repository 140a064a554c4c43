import type postgres from 'postgres';

/**
 * postgres-js 3.4.9 (the latest release) exits the process when a statement
 * is sent on a connection that has closed: the write is deferred to
 * setImmediate and then reads the socket that closed() has set to null
 * (`TypeError: Cannot read properties of null (reading 'write') at
 * Immediate.nextWrite`, porsager/postgres#1154 and #1208, open upstream).
 * When PostgreSQL restarts, its own code does exactly that: `sql.begin()`
 * sends ROLLBACK on the dead connection after the statement that failed, a
 * reserved connection keeps sending, and `release()` of a dead connection
 * puts it among the pool's open ones, where the next query meets the null
 * socket.
 *
 * guardPool replaces a pool's reserve() and begin(): once a reserved
 * connection has closed, its statements fail at once with CONNECTION_CLOSED
 * (nothing is written) and release() leaves it alone (the pool already took
 * it back and reconnects it on demand). Two more defects of the same code
 * paths are handled below (a reservation that failed to connect, a stale
 * FATAL report). test/platform/pg-guard.test.ts and pg-restart.test.ts
 * cover them; re-run both when upgrading postgres-js.
 */
export function guardPool(pool: postgres.Sql): postgres.Sql {
  const reserve = pool.reserve;
  // After a connection failed, a reservation waits for one plain query to get through first: postgres-js gives a
  // reservation that failed to connect (database down) a connection later all the same, which nobody then holds,
  // so none is attempted until the database answers.
  let suspect = false;
  const failed = (e: unknown) => {
    suspect = true;
    return Promise.reject(e);
  };
  const guardedReserve = async () => {
    if (suspect) {
      await pool`select 1`.catch(failed);
      suspect = false;
    }
    // a stale report (see absorbStaleReport) that reached a reservation: nothing was sent for it, so it is retried once
    const conn = await reserve().catch((e: { code?: unknown }) => (STALE.has(String(e?.code)) ? reserve() : Promise.reject(e))).catch(failed);
    return guardReserved(conn, () => (suspect = true));
  };
  const begin = async (options: unknown, fn?: unknown) => {
    const [mode, work] = typeof options === 'function' ? ['', options] : [String(options), fn];
    const conn = await guardedReserve();
    try {
      // its first statement has no parameters: it identifies the connection for the guard
      await conn.unsafe(`begin ${mode.replace(/[^a-z ]/gi, '')}`);
      const result = await (work as (sql: postgres.ReservedSql) => unknown)(conn);
      await conn`commit`;
      return result;
    } catch (e) {
      await conn`rollback`.catch(() => undefined);
      throw e;
    } finally {
      conn.release();
    }
  };
  return Object.assign(pool, { reserve: guardedReserve, begin: begin as postgres.Sql['begin'] });
}

/** The server terminated the session (admin shutdown: a restart, pg_terminate_backend; crash shutdown). */
const STALE = new Set(['57P01', '57P02']);

/** What the guard reads of postgres-js 3.4.9 internals (src/connection.js, src/index.js, src/query.js). */
interface PgConnection {
  id: number;
  /** set by reserve(), cleared by the pool when the connection closes, set anew when it is reserved again */
  reserved: unknown;
  /** (re)connects with a first request: a query, or a reservation `{ reserve, reject }` */
  connect(first: PgQuery | PgReservation | undefined): void;
  end(): unknown;
}
interface PgQuery {
  handler(q: PgQuery): unknown;
  options: Record<string, unknown>;
  state: unknown;
  reject(e: unknown): void;
}
interface PgReservation {
  reserve(c: PgConnection): void;
  reject(e: unknown): void;
}

const absorbing = new WeakSet<PgConnection>();
/**
 * postgres-js also keeps the FATAL report that ended a session (57P01: PostgreSQL restarted) and hands it to the
 * first request of the connection's next session. A query that gets it this way was never sent: it goes back to
 * the pool. A reservation that gets it fails (guardPool retries it), and the pool then gives the connection to
 * that failed reservation, which nobody holds: the connection is ended, so the pool gets it back.
 */
function absorbStaleReport(c: PgConnection) {
  if (absorbing.has(c)) return;
  absorbing.add(c);
  const connect = c.connect;
  c.connect = (first) => {
    const reject = first?.reject;
    if (first && reject && 'reserve' in first) {
      const reserve = first.reserve;
      let failed = false;
      first.reject = (e) => ((failed = true), reject(e));
      first.reserve = (conn) => (failed ? void conn.end() : reserve(conn));
    } else if (first && reject) {
      const q = first as PgQuery;
      q.reject = (e) => {
        q.reject = reject;
        if (q.state === null && STALE.has(String((e as { code?: unknown } | null)?.code))) queueMicrotask(() => q.handler(q));
        else reject(e);
      };
    }
    connect(first);
  };
}

/** Reservations to tell when their connection closes, by connection id (createPool passes this as `onclose`). */
const onClose = new Map<number, () => void>();
export function connectionClosed(id: number) {
  onClose.get(id)?.();
}

const isQuery = (x: unknown): x is PgQuery => typeof (x as PgQuery | null)?.handler === 'function' && typeof (x as PgQuery).reject === 'function';

function guardReserved(conn: postgres.ReservedSql, died: () => void): postgres.ReservedSql {
  let connection: PgConnection | undefined;
  let reservation: unknown;
  // statements handed over and not settled: postgres-js queues those that wait behind a Describe in the reservation,
  // and never settles them if the connection closes meanwhile
  const pending = new Set<PgQuery>();
  const closed = () => Object.assign(new Error('database connection closed'), { code: 'CONNECTION_CLOSED' });
  const rejectPending = () => {
    if (connection && onClose.get(connection.id) === rejectPending) onClose.delete(connection.id);
    for (const q of pending) q.reject(closed());
  };
  const alive = () => {
    if (!connection || connection.reserved === reservation) return true;
    died();
    return false;
  };
  // postgres-js hands the connection to a statement's `onexecute` (as sql.begin does); true = what it answers without one
  const onexecute = (c: PgConnection) => {
    if (!connection) {
      connection = c;
      reservation = c.reserved;
      absorbStaleReport(c);
      onClose.set(c.id, rejectPending);
    }
    return true;
  };
  const guard = <T>(q: T): T => {
    if (!isQuery(q)) return q; // sql('identifier') and other helpers
    if (!connection) q.options = { ...q.options, onexecute };
    const send = q.handler;
    // checked when the statement is handed to the connection, not when it is built
    q.handler = (query) => {
      if (!alive()) return query.reject(closed());
      pending.add(query);
      const settled = () => pending.delete(query);
      Promise.prototype.then.call(query, settled, settled); // the native then: does not start the query again
      return send(query);
    };
    return q;
  };
  const unsafe = (...args: Parameters<postgres.ReservedSql['unsafe']>) => guard(conn.unsafe(...args));
  const release = () => {
    if (connection && onClose.get(connection.id) === rejectPending) onClose.delete(connection.id);
    if (alive()) conn.release();
  };
  return new Proxy(conn, {
    apply: (target, self, args) => guard(Reflect.apply(target, self, args)),
    get: (target, prop, receiver) => (prop === 'unsafe' ? unsafe : prop === 'release' ? release : Reflect.get(target, prop, receiver)),
  });
}
