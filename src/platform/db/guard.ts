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
 * it back and reconnects it on demand).
 */
export function guardPool(pool: postgres.Sql): postgres.Sql {
  const reserve = pool.reserve;
  const guardedReserve = async () => guardReserved(await reserve());
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

/** What the guard reads of postgres-js 3.4.9 internals (src/connection.js, src/index.js, src/query.js). */
interface PgConnection {
  /** set by reserve(), cleared by the pool when the connection closes, set anew when it is reserved again */
  reserved: unknown;
}
interface PgQuery {
  handler(q: PgQuery): unknown;
  options: Record<string, unknown>;
  reject(e: unknown): void;
}

const isQuery = (x: unknown): x is PgQuery => typeof (x as PgQuery | null)?.handler === 'function' && typeof (x as PgQuery).reject === 'function';

function guardReserved(conn: postgres.ReservedSql): postgres.ReservedSql {
  let connection: PgConnection | undefined;
  let reservation: unknown;
  const alive = () => !connection || connection.reserved === reservation;
  // postgres-js hands the connection to a statement's `onexecute` (as sql.begin does); true = what it answers without one
  const onexecute = (c: PgConnection) => {
    if (!connection) {
      connection = c;
      reservation = c.reserved;
    }
    return true;
  };
  const guard = <T>(q: T): T => {
    if (!isQuery(q)) return q; // sql('identifier') and other helpers
    if (!connection) q.options = { ...q.options, onexecute };
    const send = q.handler;
    // checked when the statement is handed to the connection, not when it is built
    q.handler = (query) => (alive() ? send(query) : query.reject(Object.assign(new Error('database connection closed'), { code: 'CONNECTION_CLOSED' })));
    return q;
  };
  const unsafe = (...args: Parameters<postgres.ReservedSql['unsafe']>) => guard(conn.unsafe(...args));
  const release = () => {
    if (alive()) conn.release();
  };
  return new Proxy(conn, {
    apply: (target, self, args) => guard(Reflect.apply(target, self, args)),
    get: (target, prop, receiver) => (prop === 'unsafe' ? unsafe : prop === 'release' ? release : Reflect.get(target, prop, receiver)),
  });
}
