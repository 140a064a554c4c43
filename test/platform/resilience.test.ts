import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, withTenant } from '../../src/platform/db/index.js';
import { RequestTransaction } from '../../src/platform/db/tenancy.js';
import { tenants } from '../../src/db/schema.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { createNotesTable, executions, notesModule } from './fixtures/notes-module.js';

const ADD = 'mutation Add($body: String!, $clientRef: String, $sleepMs: Int) { addNote(body: $body, clientRef: $clientRef, sleepMs: $sleepMs) { id body total } }';

/** A raw POST of `{ slowQuery(ms) }` (status, Retry-After and body: the load-shedding tests look at all three). */
async function slowRequest(t: TestApp, who: Record<string, string>, ms: number) {
  const r = await fetch(`${t.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...who },
    body: JSON.stringify({ query: `{ slowQuery(ms: ${ms}) }` }),
  });
  return { status: r.status, retryAfter: r.headers.get('retry-after'), body: (await r.json()) as { errors?: { extensions: { code: string } }[] } };
}

async function tenantIn(db: TestDatabase): Promise<string> {
  const id = randomUUID();
  await withTenant(db.sql, id, (tx) => tx.insert(tenants).values({ id, slug: `r-${id.slice(0, 8)}`, name: 'Resilient clinic' }));
  return id;
}

describe('idempotency keys', () => {
  let t: TestApp;
  let who: Record<string, string>;
  beforeAll(async () => {
    const db = await createTestDatabase();
    await createNotesTable(db.owner);
    t = await startTestApp({ db, modules: [notesModule] });
    who = { 'x-test-principal': `${await tenantIn(db)}:${randomUUID()}` };
  });
  afterAll(async () => {
    await t?.close();
    await t?.db.drop();
  });
  const count = async () => (await t.db.owner<{ n: number }[]>`select count(*)::int as n from notes`)[0]!.n;

  it('a retry with the same key returns the stored outcome without running the mutation again', async () => {
    const before = executions.addNote;
    const key = `k-${randomUUID()}`;
    const first = await t.gql(ADD, { body: 'hello' }, { ...who, 'idempotency-key': key });
    const again = await t.gql(ADD, { body: 'hello' }, { ...who, 'idempotency-key': key });
    expect(first.body.errors).toBeUndefined();
    expect(again.body).toEqual(first.body);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(executions.addNote - before).toBe(1);
    const rows = await t.db.owner`select * from notes where body = 'hello'`;
    expect(rows).toHaveLength(1);
  });

  it('the stored outcome is encrypted at rest', async () => {
    const key = `k-${randomUUID()}`;
    await t.gql(ADD, { body: 'Secret Note 42' }, { ...who, 'idempotency-key': key });
    const [row] = await t.db.owner<{ response: Buffer }[]>`select response from idempotency_keys where key = ${key}`;
    expect(row!.response.length).toBeGreaterThan(0);
    expect(row!.response.toString('latin1')).not.toContain('Secret Note 42');
  });

  it('the same key with different variables is refused with IDEMPOTENCY_KEY_REUSED and changes nothing', async () => {
    const key = `k-${randomUUID()}`;
    await t.gql(ADD, { body: 'one' }, { ...who, 'idempotency-key': key });
    const n = await count();
    const other = await t.gql(ADD, { body: 'two' }, { ...who, 'idempotency-key': key });
    expect(other.body.errors?.[0]?.extensions?.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(await count()).toBe(n);
  });

  it('keys are scoped to the actor: another user with the same key runs their own mutation', async () => {
    const key = `k-${randomUUID()}`;
    const tenantId = who['x-test-principal']!.split(':')[0];
    const a = await t.gql(ADD, { body: 'scoped' }, { ...who, 'idempotency-key': key });
    const b = await t.gql(ADD, { body: 'scoped' }, { 'x-test-principal': `${tenantId}:${randomUUID()}`, 'idempotency-key': key });
    expect(b.headers.get('idempotent-replayed')).toBeNull();
    expect((b.body.data as { addNote: { id: number } }).addNote.id).not.toBe((a.body.data as { addNote: { id: number } }).addNote.id);
  });

  it('two identical requests at once apply the mutation once and both get its outcome', async () => {
    const before = executions.addNote;
    const key = `k-${randomUUID()}`;
    const [a, b] = await Promise.all([
      t.gql(ADD, { body: 'race', sleepMs: 300 }, { ...who, 'idempotency-key': key }),
      t.gql(ADD, { body: 'race', sleepMs: 300 }, { ...who, 'idempotency-key': key }),
    ]);
    expect(a.body.data).toEqual(b.body.data);
    expect(executions.addNote - before).toBe(1);
    expect(await t.db.owner`select 1 from notes where body = 'race'`).toHaveLength(1);
  });

  it('a typed error is the outcome too: the retry replays it', async () => {
    const before = executions.addNote;
    const key = `k-${randomUUID()}`;
    const first = await t.gql(ADD, { body: '  ' }, { ...who, 'idempotency-key': key });
    expect(first.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const again = await t.gql(ADD, { body: '  ' }, { ...who, 'idempotency-key': key });
    expect(again.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(executions.addNote - before).toBe(1);
  });

  it('the key can also come in the request extensions', async () => {
    const key = `k-${randomUUID()}`;
    const send = () =>
      fetch(`${t.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...who },
        body: JSON.stringify({ query: ADD, variables: { body: 'ext' }, extensions: { idempotencyKey: key } }),
      });
    await send();
    const r = await send();
    expect(r.headers.get('idempotent-replayed')).toBe('true');
  });

  it('a malformed key or an anonymous caller gets a typed error and nothing changes', async () => {
    const n = await count();
    const bad = await t.gql(ADD, { body: 'x' }, { ...who, 'idempotency-key': 'short' });
    expect(bad.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const anon = await t.gql(ADD, { body: 'x' }, { 'idempotency-key': `k-${randomUUID()}` });
    expect(anon.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(await count()).toBe(n);
  });

  it('expired keys are purged', async () => {
    const key = `k-${randomUUID()}`;
    await t.gql(ADD, { body: 'old' }, { ...who, 'idempotency-key': key });
    await t.db.owner`update idempotency_keys set expires_at = now() - interval '1 minute' where key = ${key}`;
    const [r] = await t.db.sql<{ n: number }[]>`select carebase_purge_idempotency_keys() as n`;
    expect(r!.n).toBeGreaterThanOrEqual(1);
    expect(await t.db.owner`select 1 from idempotency_keys where key = ${key}`).toHaveLength(0);
  });
});

describe('database outage (a proxy in front of PostgreSQL is cut, like a restart or failover)', () => {
  let t: TestApp;
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
  let who: Record<string, string>;
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await createNotesTable(db.owner);
    const target = new URL(db.appUrl);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    const proxied = createPool(proxy.url(db.appUrl), 5, 2);
    // every pool of the app goes through the proxy (the request pool, the audit writer's, the readiness probe's)
    const viaProxy = (max: number) => createPool(proxy.url(db.appUrl), max, 2);
    t = await startTestApp({ db: { ...db, sql: proxied, appPool: viaProxy }, modules: [notesModule], env: { DATABASE_CONNECT_TIMEOUT_S: '2' } });
    who = { 'x-test-principal': `${await tenantIn(db)}:${randomUUID()}` };
  });
  afterAll(async () => {
    await t?.close();
    await t?.db.sql.end({ timeout: 1 });
    await proxy?.close();
    await db?.drop();
  });

  it('fails fast with DATABASE_UNAVAILABLE, keeps /healthz alive, reports /readyz not ready, and recovers without a restart', async () => {
    const acked: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await t.gql<{ addNote: { id: number } }>(ADD, { body: `before-${i}` }, who);
      acked.push(r.body.data!.addNote.id);
    }
    proxy.down();
    const during = await t.gql(ADD, { body: 'during' }, who);
    expect(during.body.errors?.[0]?.extensions?.code).toBe('DATABASE_UNAVAILABLE');
    expect(JSON.stringify(during.body)).not.toMatch(/ECONN|stack|postgres/i);
    const started = Date.now();
    const fast = await t.gql('{ noteCount }', {}, who);
    expect(fast.body.errors?.[0]?.extensions?.code).toBe('DATABASE_UNAVAILABLE');
    void started;
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${t.url}/readyz`)).status).toBe(503);

    proxy.up();
    // the circuit re-closes after a short pause; the pool reconnects by itself
    let recovered = false;
    for (let i = 0; i < 50 && !recovered; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const r = await t.gql<{ noteCount: number }>('{ noteCount }', {}, who);
      recovered = !r.body.errors;
    }
    expect(recovered).toBe(true);
    expect((await fetch(`${t.url}/readyz`)).status).toBe(200);
    const ids = (await db.owner<{ id: number }[]>`select id from notes`).map((r) => r.id);
    for (const id of acked) expect(ids).toContain(id);
    expect(await db.owner`select 1 from notes where body = 'during'`).toHaveLength(0);
  });

  it('a backend terminated mid-request (pg_terminate_backend) gives a typed error, then service continues', async () => {
    const slow = t.gql('{ slowQuery(ms: 3000) }', {}, who);
    // terminate it once it is running (a busy machine may take a while to get there)
    let terminated = 0;
    for (let i = 0; i < 100 && terminated === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      terminated = (await db.owner`select pg_terminate_backend(pid) from pg_stat_activity where query like '%pg_sleep%' and usename = 'carebase_app'`).length;
    }
    expect(terminated).toBe(1);
    const r = await slow;
    expect(r.body.errors?.[0]?.extensions?.code).toBe('DATABASE_UNAVAILABLE');
    await new Promise((res) => setTimeout(res, 1100));
    const after = await t.gql<{ noteCount: number }>('{ noteCount }', {}, who);
    expect(after.body.errors).toBeUndefined();
  });
});

describe('deadlines and load shedding', () => {
  let t: TestApp;
  let who: Record<string, string>;
  beforeAll(async () => {
    const db = await createTestDatabase();
    await createNotesTable(db.owner);
    t = await startTestApp({ db, modules: [notesModule], env: { REQUEST_TIMEOUT_MS: '300', LOAD_SHED_POOL_WAITING: '3' } });
    who = { 'x-test-principal': `${await tenantIn(db)}:${randomUUID()}` };
  });
  afterAll(async () => {
    await t?.close();
    await t?.db.drop();
    RequestTransaction.deadlines = { statementTimeoutMs: 10_000, lockTimeoutMs: 3_000 };
  });

  it('a request whose handler never settles still gets an answer: 503 TIMEOUT from the watchdog, and an error line names the route', async () => {
    const res = await fetch(`${t.url}/test-notes/stuck`, { headers: who, signal: AbortSignal.timeout(30_000) });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { errors: { extensions: { code: string } }[] }).errors[0]!.extensions.code).toBe('TIMEOUT');
    expect(t.logs.some((l) => l.msg === 'request watchdog: no answer in time' && l.route === '/test-notes/stuck')).toBe(true);
    // the server goes on answering
    expect((await t.gql('{ noteCount }', {}, who)).body.errors).toBeUndefined();
  });

  it('a streamed answer that outlasts the watchdog is left alone: its headers are sent, so it has its answer', async () => {
    // watchdog: REQUEST_TIMEOUT_MS (300) + 5 s; the stream takes 7 s. The watchdog once sent its JSON 503 into the
    // started text stream (an uncaught FST_ERR_REP_INVALID_PAYLOAD_TYPE) and rolled back the stream's transaction.
    const before = t.logs.filter((l) => l.msg === 'request watchdog: no answer in time').length;
    const res = await fetch(`${t.url}/test-notes/slow-stream?chunks=8`, { headers: who, signal: AbortSignal.timeout(30_000) });
    expect(res.status).toBe(200);
    expect((await res.text()).trim().split('\n')).toEqual(Array.from({ length: 8 }, (_, i) => `chunk ${i}`));
    expect(t.logs.filter((l) => l.msg === 'request watchdog: no answer in time').length).toBe(before);
  }, 30_000);

  it('a statement past the request deadline is cancelled with TIMEOUT', async () => {
    const r = await t.gql('{ slowQuery(ms: 2000) }', {}, who);
    expect(r.body.errors?.[0]?.extensions?.code).toBe('TIMEOUT');
    const ok = await t.gql('{ slowQuery(ms: 10) }', {}, who);
    expect(ok.body.errors).toBeUndefined();
  });

  it('when too many requests wait for a connection, new ones get 503 SERVER_BUSY instead of queueing', async () => {
    // the test pool has 10 connections: 30 slow requests keep > 3 waiting for about half a second
    // (three rounds of 250 ms); requests that arrive while they wait are refused at once
    const slow = () => slowRequest(t, who, 250);
    const first = Array.from({ length: 30 }, slow);
    for (let i = 0; i < 500 && RequestTransaction.waiting < 3; i++) await new Promise((r) => setTimeout(r, 5));
    expect(RequestTransaction.waiting).toBeGreaterThanOrEqual(3);
    const second = await Promise.all(Array.from({ length: 5 }, slow));
    const results = [...(await Promise.all(first)), ...second];
    expect(second.filter((r) => r.status === 503).length).toBeGreaterThan(0);
    const busy = results.filter((r) => r.status === 503);
    const served = results.filter((r) => r.status === 200 && !r.body.errors);
    expect(served.length).toBeGreaterThan(0);
    for (const b of busy) {
      expect(b.body.errors?.[0]?.extensions.code).toBe('SERVER_BUSY');
      expect(b.retryAfter).toBe('1');
    }
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toMatch(/carebase_requests_shed_total\{reason="pool_queue"\} [1-9]/);
  });
});

describe('admission limit (LOAD_SHED_MAX_IN_FLIGHT)', () => {
  let t: TestApp;
  let who: Record<string, string>;
  beforeAll(async () => {
    const db = await createTestDatabase();
    await createNotesTable(db.owner);
    t = await startTestApp({ db, modules: [notesModule], env: { LOAD_SHED_MAX_IN_FLIGHT: '4', LOAD_SHED_POOL_WAITING: '0' } });
    who = { 'x-test-principal': `${await tenantIn(db)}:${randomUUID()}` };
  });
  afterAll(async () => {
    await t?.close();
    await t?.db.drop();
  });

  it('past the in-flight limit new requests get 503 SERVER_BUSY at once, probes still answer, and service goes on', async () => {
    const slow = () => slowRequest(t, who, 1500);
    const pending = Array.from({ length: 12 }, slow);
    // while the limit is taken, the probes are neither refused nor counted
    await new Promise((r) => setTimeout(r, 150));
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
    const results = await Promise.all(pending);
    const busy = results.filter((r) => r.status === 503);
    const served = results.filter((r) => r.status === 200 && !r.body.errors);
    expect(served.length).toBeGreaterThan(0);
    expect(served.length).toBeLessThanOrEqual(4);
    expect(busy.length).toBe(12 - served.length);
    for (const b of busy) {
      expect(b.body.errors?.[0]?.extensions.code).toBe('SERVER_BUSY');
      expect(b.retryAfter).toBe('1');
    }
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toMatch(/carebase_requests_shed_total\{reason="in_flight"\} [1-9]/);
    // the slots are given back: the next request is served
    const after = await t.gql<{ noteCount: number }>('{ noteCount }', {}, who);
    expect(after.body.errors).toBeUndefined();
  });
});
