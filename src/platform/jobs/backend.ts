import { createPostgresBackend, createRedisBackend, Queue, runMigrations as runBullmqMigrations, Worker, type Job, type QueueOptions, type WorkerOptions } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { Logger } from '../logger.js';

/** PostgreSQL schema of BullMQ's tables (created by the jobs migration, filled by BullMQ's migrator). */
export const BULLMQ_SCHEMA = 'bullmq';

export type JobProcessor = (job: Job) => Promise<unknown>;

/**
 * The one place where the queue datastore is chosen: BullMQ on Redis when
 * REDIS_URL is set, on BullMQ's PostgreSQL backend otherwise. Everything
 * above this (queues, workers, schedulers, the relay, the admin API) is the
 * same code for both.
 */
export interface JobBackend {
  kind: 'redis' | 'postgres';
  queue(name: string, opts?: Omit<QueueOptions, 'connection'>): Queue;
  worker(name: string, processor: JobProcessor, opts?: Omit<WorkerOptions, 'connection'>): Worker;
  close(): Promise<void>;
}

export interface JobBackendOptions {
  redisUrl?: string;
  /** Redis key prefix (Redis only; PostgreSQL namespaces by database + schema) */
  prefix: string;
  /** app-role URL (PostgreSQL backend) */
  appUrl: string;
  /** owner URL: BullMQ's schema migrations run as the owner, never as the app role */
  ownerUrl: string;
  /** PostgreSQL pool size for queues + workers (each worker holds one LISTEN connection) */
  poolMax: number;
  /** every queue this process uses (PostgreSQL: their id sequences are created up front, as the owner) */
  queues: readonly string[];
  log: Logger;
}

export async function createJobBackend(opts: JobBackendOptions): Promise<JobBackend> {
  if (opts.redisUrl) return createRedisJobBackend(opts.redisUrl, opts.prefix, opts.log);
  await migrateBullmqSchema(opts.ownerUrl, opts.queues);
  return createPostgresJobBackend(opts.appUrl, opts.poolMax, opts.queues.length, opts.log);
}

function createRedisJobBackend(url: string, prefix: string, log: Logger): JobBackend {
  // BullMQ requires maxRetriesPerRequest: null on connections it blocks on.
  const connection = new Redis(url, { maxRetriesPerRequest: null, lazyConnect: false });
  connection.on('error', (e) => log.warn({ errorName: e.name, code: (e as { code?: string }).code }, 'jobs: redis connection error'));
  const opened: { close(): Promise<void> }[] = [];
  return {
    kind: 'redis',
    queue(name, o = {}) {
      const q = new Queue(name, { ...o, connection, prefix }, createRedisBackend);
      q.on('error', (e) => log.warn({ queue: name, errorName: e.name }, 'jobs: queue error'));
      opened.push(q);
      return q;
    },
    worker(name, processor, o = {}) {
      const w = new Worker(name, processor, { ...o, connection, prefix }, createRedisBackend);
      opened.push(w);
      return w;
    },
    async close() {
      await Promise.allSettled(opened.map((c) => c.close()));
      connection.disconnect();
    },
  };
}

function createPostgresJobBackend(appUrl: string, poolMax: number, queues: number, log: Logger): JobBackend {
  // One pool for every queue and worker, connected as the app role with the
  // BullMQ schema first on the search_path (BullMQ's SQL uses unqualified names).
  const pool = new pg.Pool({
    connectionString: appUrl,
    max: poolMax,
    idleTimeoutMillis: 30_000,
    application_name: 'carebase-jobs',
    options: `-c search_path=${BULLMQ_SCHEMA}`,
    keepAlive: true,
  });
  pool.on('error', (e) => log.warn({ errorName: e.name, code: (e as { code?: string }).code }, 'jobs: postgres pool error'));
  // every queue, worker and job scheduler of this process listens for the shared pool's errors
  pool.setMaxListeners(10 + 4 * queues);
  const opened: { close(): Promise<void> }[] = [];
  // The pool is ours (BullMQ leaves caller-owned pools open); its type is structurally BullMQ's PgPool.
  const connection = pool as unknown as string;
  return {
    kind: 'postgres',
    queue(name, o = {}) {
      const q = new Queue(name, { ...o, connection } as QueueOptions<string>, createPostgresBackend);
      q.on('error', (e) => log.warn({ queue: name, errorName: e.name }, 'jobs: queue error'));
      opened.push(q);
      return q as unknown as Queue;
    },
    worker(name, processor, o = {}) {
      const w = new Worker(name, processor, { ...o, connection } as WorkerOptions<string>, createPostgresBackend);
      opened.push(w);
      return w as unknown as Worker;
    },
    async close() {
      await Promise.allSettled(opened.map((c) => c.close()));
      await pool.end();
    },
  };
}

/**
 * Brings BullMQ's PostgreSQL schema up to date as the owner (idempotent,
 * serialised by BullMQ's advisory lock), then grants the app role data
 * access to what it created.
 */
export async function migrateBullmqSchema(ownerUrl: string, queues: readonly string[] = []): Promise<void> {
  const client = new pg.Client({ connectionString: ownerUrl, application_name: 'carebase-jobs-migrate' });
  await client.connect();
  try {
    await client.query('SET client_min_messages = warning');
    await client.query('SELECT pg_advisory_lock(hashtext($1))', ['carebase:bullmq:grants']);
    await runBullmqMigrations(client, BULLMQ_SCHEMA);
    // BullMQ creates a job-id sequence per queue on first use; the app role has
    // no CREATE on the schema, so the owner creates them for the known queues.
    for (const q of queues) {
      const { rows } = await client.query<{ name: string }>(`SELECT ${BULLMQ_SCHEMA}.job_id_seq_name($1) AS name`, [q]);
      await client.query(`CREATE SEQUENCE IF NOT EXISTS ${BULLMQ_SCHEMA}."${rows[0]!.name.replace(/"/g, '')}"`);
    }
    await client.query(`GRANT USAGE ON SCHEMA ${BULLMQ_SCHEMA} TO carebase_app`);
    await client.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${BULLMQ_SCHEMA} TO carebase_app`);
    await client.query(`GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA ${BULLMQ_SCHEMA} TO carebase_app`);
    await client.query('SELECT pg_advisory_unlock(hashtext($1))', ['carebase:bullmq:grants']);
  } finally {
    await client.end();
  }
}
