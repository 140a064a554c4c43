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
  // reserve(), marking the synchronous part in which the pool may connect a closed connection for this reservation
  const queue = () => {
    reserving = true;
    try {
      return reserve();
    } finally {
      reserving = false;
    }
  };
  const guardedReserve = async () => {
    if (suspect) {
      await pool`select 1`.catch(failed);
      suspect = false;
    }
    // a stale report (see absorbStaleReport) that reached a reservation: nothing was sent for it, so it is retried once;
    // a reservation handed to a reconnecting connection (see absorbStaleReport) is queued again, as often as that happens
    const requeued = (e: { code?: unknown }): Promise<postgres.ReservedSql> => (e?.code === REQUEUE ? queue().catch(requeued) : Promise.reject(e));
    const conn = await queue()
      .catch(requeued)
      .catch((e: { code?: unknown }) => (STALE.has(String(e?.code)) ? queue().catch(requeued) : Promise.reject(e)))
      .catch(failed);
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

/**
 * The server terminated the session (admin shutdown: a restart, pg_terminate_backend; crash shutdown), or refused it
 * at startup while shutting down or starting up (57P03: seen after a restart by reservations that waited through it).
 * Nothing was sent for a reservation that gets one of these, so it is tried once more.
 */
const STALE = new Set(['57P01', '57P02', '57P03']);
/** A reservation the pool handed to a reconnecting connection, given back to be queued again (see absorbStaleReport). */
const REQUEUE = 'CAREBASE_RESERVATION_REQUEUED';
/** true while reserve() runs synchronously (a connection it connects is for that reservation, which stays queued) */
let reserving = false;

/** What the guard reads of postgres-js 3.4.9 internals (src/connection.js, src/index.js, src/query.js). */
interface PgConnection {
  id: number;
  /** set by reserve(), cleared by the pool when the connection closes, set anew when it is reserved again */
  reserved: unknown;
  /** (re)connects with a first request: a query, or a reservation `{ reserve, reject }` */
  connect(first: PgQuery | PgReservation | undefined): void;
  end(): unknown;
  /** rejects what is in flight with CONNECTION_DESTROYED and closes the socket */
  terminate(): void;
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
    if (first && reject && 'reserve' in first && !reserving) {
      // The pool connects a connection that closed with the next waiting request (its onclose). A reservation taken
      // from the queue that way is lost: postgres-js serves reservations only from the queue once the new session is
      // ready (a request that would wait forever when PostgreSQL restarts with reservations waiting). It is given
      // back to be queued again (guardedReserve), and the connection connects on its own; the queue is served when it
      // is ready.
      reject(Object.assign(new Error('reservation queued again'), { code: REQUEUE }));
      connect(undefined);
      return;
    }
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
    if (!alive()) return;
    // a statement still in flight (a COMMIT that timed out, a query abandoned on a deadline): the connection's state is
    // unknown and the next reservation would queue behind it, so it is ended instead of given back (its statements
    // fail with CONNECTION_DESTROYED; the pool reconnects on demand once the socket has closed)
    if (pending.size && connection) connection.terminate();
    else conn.release();
  };
  return new Proxy(conn, {
    apply: (target, self, args) => guard(Reflect.apply(target, self, args)),
    get: (target, prop, receiver) => (prop === 'unsafe' ? unsafe : prop === 'release' ? release : Reflect.get(target, prop, receiver)),
  });
}
