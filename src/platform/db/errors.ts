import { AppError, ErrorCode } from '../errors.js';

/** Driver / socket codes meaning "the database is not reachable right now". */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH',
  'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT',
  '57P01', // admin_shutdown (terminated backend, restart)
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up / recovery)
  '53300', // too_many_connections
  '25006', // read_only_sql_transaction (a failover left us on a replica)
]);
/** PostgreSQL codes for a deadline hit: statement_timeout / lock_timeout / idle-in-transaction timeout. */
const TIMEOUT_CODES = new Set(['57014', '55P03', '25P03']);

/** An error and its causes (drizzle wraps driver errors: DrizzleQueryError "Failed query: ..." with `.cause`). */
function causes(e: unknown): { code?: unknown; syscall?: unknown }[] {
  const out: { code?: unknown; syscall?: unknown }[] = [];
  let cur = e as { code?: unknown; syscall?: unknown; cause?: unknown } | undefined;
  for (let i = 0; cur && typeof cur === 'object' && i < 5; i++) {
    out.push(cur);
    cur = cur.cause as typeof cur;
  }
  return out;
}

export function classifyDbError(e: unknown): 'unavailable' | 'timeout' | undefined {
  const all = causes(e);
  const cs = all.flatMap((c) => (typeof c.code === 'string' ? [c.code] : []));
  // the embedded server's Unix socket is missing while it is down or restarting
  const noSocket = all.some((c) => c.code === 'ENOENT' && c.syscall === 'connect');
  if (noSocket || cs.some((c) => UNAVAILABLE_CODES.has(c) || c.startsWith('08'))) return 'unavailable';
  if (cs.some((c) => TIMEOUT_CODES.has(c))) return 'timeout';
  return undefined;
}

/** The typed error a client gets for a database outage or deadline; undefined for other errors. */
export function dbAppError(e: unknown): AppError | undefined {
  switch (classifyDbError(e)) {
    case 'unavailable':
      return new AppError(ErrorCode.DATABASE_UNAVAILABLE, 'The database is unavailable; retry shortly', { retryAfter: 1 });
    case 'timeout':
      return new AppError(ErrorCode.TIMEOUT, 'The request took too long and was cancelled; nothing was changed');
    default:
      return undefined;
  }
}
