/**
 * The pieces behind the PostgreSQL restart test (pg-restart.test.ts), each on
 * its own: a transaction whose backend dies mid-statement (postgres-js 3.4.9
 * would write its ROLLBACK to the dead socket and exit the process,
 * porsager/postgres#1208), outage errors as drizzle wraps them, a missing
 * Unix socket, and Apollo's log lines.
 */
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDrizzle, createPool } from '../../src/platform/db/index.js';
import { dbAppError } from '../../src/platform/db/errors.js';
import { apolloLogger } from '../../src/platform/http/apollo-logger.js';
import { createLogger } from '../../src/platform/logger.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase({ poolMax: 2 });
});
afterAll(async () => {
  await db?.drop();
});

/** Polls until `cond` holds (every 20 ms, at most 10 s). */
async function until(cond: () => Promise<boolean>) {
  for (let i = 0; i < 500 && !(await cond()); i++) await new Promise((r) => setTimeout(r, 20));
}

describe('a connection that dies under a transaction', () => {
  it('begin(): the transaction fails with a typed outage, nothing is written to the dead socket, the pool goes on', async () => {
    const marker = `guard-${Date.now()}`;
    const tx = db.sql.begin(async (t) => {
      await t.unsafe(`select pg_sleep(5) /* ${marker} */`);
    });
    const settled = tx.then(
      () => undefined,
      (e: unknown) => e,
    );
    // the sleeping statement itself (these probes mention the marker too, after other words)
    const sleeper = `select pg_sleep(5) /* ${marker}%`;
    await until(async () => (await db.owner`select 1 from pg_stat_activity where query like ${sleeper}`).length > 0);
    await db.owner`select pg_terminate_backend(pid) from pg_stat_activity where query like ${sleeper}`;
    const error = await settled;
    expect(dbAppError(error)?.code).toBe('DATABASE_UNAVAILABLE');
    // the pool reconnects on demand; a reserved connection and a transaction work again
    expect(await db.sql.begin(async (t) => (await t`select 1 as one`)[0]!.one)).toBe(1);
    const conn = await db.sql.reserve();
    expect((await conn`select 2 as two`)[0]!.two).toBe(2);
    conn.release();
  });

  it('a reserved connection whose backend died: statements fail fast, release() leaves it to the pool', async () => {
    const conn = await db.sql.reserve();
    await conn`begin`;
    const [{ pid }] = (await conn`select pg_backend_pid() as pid`) as unknown as [{ pid: number }];
    const sleeping = conn`select pg_sleep(5)`.then(
      () => undefined,
      (e: unknown) => e,
    );
    await until(async () => (await db.owner`select 1 from pg_stat_activity where pid = ${pid} and query like 'select pg_sleep%'`).length > 0);
    await db.owner`select pg_terminate_backend(${pid})`;
    expect(dbAppError(await sleeping)?.code).toBe('DATABASE_UNAVAILABLE');
    const next = await conn`select 1`.then(
      () => undefined,
      (e: { code?: string }) => e,
    );
    expect(next?.code).toBe('CONNECTION_CLOSED');
    conn.release();
    // the pool has all its connections (2) again, and the terminated session's FATAL report fails nothing new
    const both = await Promise.all([db.sql.reserve(), db.sql.reserve()]);
    expect(await Promise.all(both.map(async (c, i) => (await c`select ${i}::int as i`)[0]!.i))).toEqual([0, 1]);
    for (const c of both) c.release();
    const results = await Promise.all([1, 2, 3, 4].map((n) => db.sql`select ${n}::int as n`));
    expect(results.map((r) => r[0]!.n)).toEqual([1, 2, 3, 4]);
  });
});

describe('a reservation waiting when a connection closes', () => {
  it('is served by the reconnected connection (postgres-js hands it to the reconnect and then drops it)', async () => {
    const url = new URL(inject('pgAdminUrl'));
    url.pathname = `/${db.name}`;
    const pool = createPool(url.toString(), 1);
    try {
      const held = await pool.reserve();
      const [{ pid }] = (await held`select pg_backend_pid() as pid`) as unknown as [{ pid: number }];
      // the only connection is reserved: this reservation waits in the pool's queue
      const waiting = pool.reserve();
      await new Promise((r) => setTimeout(r, 50));
      // PostgreSQL ends the session (a restart, an administrator): the pool reconnects with the waiting reservation
      await db.owner`select pg_terminate_backend(${pid})`;
      const never = Symbol('never served');
      const served = await Promise.race([waiting, new Promise<symbol>((r) => setTimeout(() => r(never), 15_000))]);
      expect(served).not.toBe(never);
      const next = served as Awaited<typeof waiting>;
      const [{ pid: nextPid }] = (await next`select pg_backend_pid() as pid`) as unknown as [{ pid: number }];
      expect(nextPid).not.toBe(pid);
      next.release();
      held.release();
    } finally {
      await pool.end({ timeout: 5 });
    }
  });
});

describe('a connection given back with a statement in flight', () => {
  it('is ended, not handed to the next reservation (which would wait behind the statement)', async () => {
    const url = new URL(inject('pgAdminUrl'));
    url.pathname = `/${db.name}`;
    const pool = createPool(url.toString(), 1);
    try {
      const conn = await pool.reserve();
      await conn`begin`;
      const [{ pid }] = (await conn`select pg_backend_pid() as pid`) as unknown as [{ pid: number }];
      // a COMMIT or query abandoned on its deadline: still running when the connection is released
      const abandoned = conn`select pg_sleep(3)`.then(
        () => undefined,
        (e: { code?: string }) => e,
      );
      await until(async () => (await db.owner`select 1 from pg_stat_activity where pid = ${pid} and query like 'select pg_sleep%'`).length > 0);
      conn.release();
      expect((await abandoned)?.code).toBe('CONNECTION_DESTROYED');
      // the next reservation gets a new session, never the one still running the abandoned statement
      const next = await pool.reserve();
      const [{ pid: nextPid }] = (await next`select pg_backend_pid() as pid`) as unknown as [{ pid: number }];
      expect(nextPid).not.toBe(pid); // a new session, not the one inside the abandoned transaction
      next.release();
    } finally {
      await pool.end({ timeout: 5 });
    }
  });
});

describe('a reservation answered "the database system is starting up" (57P03)', () => {
  it('is tried once more: nothing was sent for it, and the database may be up by then', async () => {
    // PostgreSQL in front: the first session is refused at startup as a starting server refuses it, the others pass
    const target = new URL(db.appUrl);
    let sessions = 0;
    const sockets = new Set<net.Socket>();
    const server = net.createServer((client) => {
      sockets.add(client);
      if (sessions++ === 0) {
        client.once('data', () => {
          const fields = Buffer.from('SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0\0');
          const head = Buffer.alloc(5);
          head.write('E', 0);
          head.writeInt32BE(fields.length + 4, 1);
          client.end(Buffer.concat([head, fields]));
        });
        return;
      }
      const upstream = net.connect(Number(target.port || 5432), target.hostname);
      sockets.add(upstream);
      const drop = () => (client.destroy(), upstream.destroy());
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = new URL(db.appUrl);
    url.hostname = '127.0.0.1';
    url.port = String((server.address() as net.AddressInfo).port);
    const pool = createPool(url.toString(), 1, 2);
    try {
      const conn = await pool.reserve();
      expect((await conn`select 1 as one`)[0]!.one).toBe(1);
      conn.release();
      expect(sessions).toBe(2);
    } finally {
      await pool.end({ timeout: 1 });
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});

describe('outage errors are typed', () => {
  it('a refused connection, as drizzle wraps it ("Failed query: ..."), is DATABASE_UNAVAILABLE without SQL', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as net.AddressInfo;
        srv.close(() => resolve(port));
      });
    });
    const pool = createPool(`postgres://carebase_app@127.0.0.1:${port}/nowhere`, 1, 1);
    try {
      const error = await createDrizzle(pool)
        .execute(sql`select ${'secret-value'} as x`)
        .then(
          () => undefined,
          (e: Error) => e,
        );
      expect(error?.message).toMatch(/Failed query/);
      const typed = dbAppError(error);
      expect(typed?.code).toBe('DATABASE_UNAVAILABLE');
      expect(typed?.message).not.toMatch(/select|secret/i);
    } finally {
      await pool.end({ timeout: 1 });
    }
  });

  it('a missing embedded Unix socket (ENOENT on connect) is DATABASE_UNAVAILABLE', async () => {
    const pool = createPool('postgres://carebase_app@localhost:5999/nowhere', 1, 1, path.join(os.tmpdir(), 'carebase-no-such-socket-dir'));
    try {
      const error = await pool`select 1`.then(
        () => undefined,
        (e: { code?: string }) => e,
      );
      expect(error?.code).toBe('ENOENT');
      expect(dbAppError(error)?.code).toBe('DATABASE_UNAVAILABLE');
    } finally {
      await pool.end({ timeout: 1 });
    }
  });
});

describe("Apollo's own log lines", () => {
  it('go to the JSON log with Apollo\'s wording only, never the error text after it', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const logger = apolloLogger(createLogger('info', sink));
    logger.error('Unexpected error processing request: DrizzleQueryError: Failed query: insert into idempotency_keys (key) values ($1)');
    logger.warn({ not: 'a string' });
    expect(lines).toHaveLength(2);
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(first).toMatchObject({ level: 'error', component: 'apollo', apollo: 'Unexpected error processing request' });
    expect(lines.join('\n')).not.toMatch(/insert|Failed query|idempotency_keys|a string/i);
  });
});
