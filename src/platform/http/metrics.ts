import client from 'prom-client';
import { RequestTransaction } from '../db/tenancy.js';
import { settledWithin } from '../deadline.js';

/**
 * How long a scrape waits for a datastore read (queue counts in Redis or
 * PostgreSQL): /metrics answers within a second whatever is down.
 */
export const COLLECT_TIMEOUT_MS = 300;

/**
 * Wraps a datastore read for a metrics collector: a scrape waits for it at
 * most `timeoutMs`, never starts a second one while the first is pending
 * (a dead Redis queues commands until it returns), and otherwise gets the
 * last value read, with `stale: true`.
 */
export function lastKnown<T>(read: () => Promise<T>, timeoutMs = COLLECT_TIMEOUT_MS) {
  let last: T | undefined;
  let ok = false;
  let pending: Promise<void> | undefined;
  return async (): Promise<{ value: T | undefined; stale: boolean }> => {
    pending ??= read()
      .then(
        (v) => {
          last = v;
          ok = true;
        },
        () => {
          ok = false;
        },
      )
      .finally(() => {
        pending = undefined;
      });
    const settled = await settledWithin(pending, timeoutMs);
    return { value: last, stale: !settled || !ok };
  };
}

const OPERATION_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const MAX_OPERATION_NAMES = 200;

/** One registry per app instance (tests run several apps in one process). */
export function createMetrics(poolMax: number) {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const http = new client.Histogram({
    name: 'carebase_http_request_duration_seconds',
    help: 'HTTP request duration by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const graphql = new client.Histogram({
    name: 'carebase_graphql_operation_duration_seconds',
    help: 'GraphQL operation duration by operation name and outcome',
    labelNames: ['operation', 'type', 'outcome'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  new client.Gauge({
    name: 'carebase_db_pool_max_connections',
    help: 'Configured size of the app connection pool',
    registers: [registry],
    collect() {
      this.set(poolMax);
    },
  });
  new client.Gauge({
    name: 'carebase_db_transactions_open',
    help: 'Request transactions currently holding a pool connection',
    registers: [registry],
    collect() {
      this.set(RequestTransaction.open);
    },
  });
  const seen = new Set<string>();
  /** Operation names come from clients: bound the label's cardinality. */
  const operationLabel = (name: string | null | undefined): string => {
    if (!name) return 'anonymous';
    if (!OPERATION_NAME.test(name)) return 'invalid';
    if (seen.has(name)) return name;
    if (seen.size >= MAX_OPERATION_NAMES) return 'other';
    seen.add(name);
    return name;
  };
  return { registry, http, graphql, operationLabel };
}

export type Metrics = ReturnType<typeof createMetrics>;
