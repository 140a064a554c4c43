import { randomBytes, randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { withTenant } from '../../src/platform/db/index.js';
import { emitEvent } from '../../src/platform/jobs/index.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { connect, createTenant, dropRedisPrefix, next, request, signTestToken, testAuthModule, testPatientRoomsModule } from '../helpers/realtime.js';
import { enableTenantRls } from '../helpers/rls.js';

/**
 * Scale-out: two API processes' worth of apps against one database and one
 * Redis (TEST_REDIS_URL). The streams adapter delivers each node's emits to
 * the other node's sockets; only node B runs the outbox relay.
 */
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const env = { REDIS_URL, JOBS_KEY_PREFIX: `cbtest-rt-${randomBytes(4).toString('hex')}` };

let a: TestApp;
let b: TestApp;
let tenant: string;
const patient = randomUUID();
const alice = { userId: randomUUID(), permissions: ['patient:read'] };
const bob = { userId: randomUUID(), permissions: ['patient:read'] };
const open: Socket[] = [];

async function client(app: TestApp, who: { userId: string; permissions: string[] }) {
  const s = await connect(app.url, await signTestToken({ ...who, tenantId: tenant }));
  open.push(s);
  return s;
}

beforeAll(async () => {
  a = await startTestApp({ modules: [testAuthModule, testPatientRoomsModule], env, background: { relay: false } });
  b = await startTestApp({ modules: [testAuthModule, testPatientRoomsModule], env, db: a.db });
  tenant = await createTenant(a.db.sql);
  await a.db.owner`create table test_patients (id uuid primary key, tenant_id uuid not null default carebase_current_tenant() references tenants(id))`;
  await enableTenantRls(a.db.owner, 'test_patients');
  await a.db.owner`grant select, insert on test_patients to carebase_app`;
  await withTenant(a.db.sql, tenant, (db) => db.execute(sql`insert into test_patients (id) values (${patient})`));
});

afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

afterAll(async () => {
  await b?.close();
  await a?.close();
  await dropRedisPrefix(REDIS_URL, env.JOBS_KEY_PREFIX);
});

describe('two nodes on one Redis', () => {
  it('use the Redis backends', () => {
    expect(a.app.background.jobs.kind).toBe('redis');
    expect(a.app.background.relay).toBeUndefined();
    expect(b.app.background.relay).toBeDefined();
  });

  it('a socket on node A receives what node B emits to its room', async () => {
    const s = await client(a, alice);
    expect(await request(s, 'room:join', { room: `patient:${patient}` })).toMatchObject({ ok: true });
    const got = next<{ id: string; type: string }>(s, 'event');
    const id = randomUUID();
    b.app.background.realtime.publish({
      id,
      type: 'patient.updated',
      tenantId: tenant,
      aggregateId: patient,
      payload: { patientId: patient },
      rooms: [`patient:${patient}`],
      jobs: [],
      occurredAt: new Date(),
    });
    expect(await got).toMatchObject({ id, type: 'patient.updated' });
  });

  it('an outbox event committed anywhere reaches sockets on both nodes (relay on B only)', async () => {
    const sa = await client(a, alice);
    const sb = await client(b, bob);
    const gotA = next<{ id: string }>(sa, 'event');
    const gotB = next<{ id: string }>(sb, 'event');
    const id = await withTenant(a.db.sql, tenant, (db) => emitEvent(db, { type: 'visit.waiting', tenantId: tenant, aggregateId: randomUUID(), rooms: [`tenant:${tenant}`] }));
    expect((await gotA).id).toBe(id);
    expect((await gotB).id).toBe(id);
  });

  it('presence spans nodes', async () => {
    const sa = await client(a, alice);
    const sb = await client(b, bob);
    const room = `patient:${patient}`;
    await request(sa, 'room:join', { room });
    const joined = next<{ room: string; userId: string }>(sa, 'presence:join');
    const res = await request<{ members: string[] }>(sb, 'room:join', { room });
    expect(res.members.sort()).toEqual([alice.userId, bob.userId].sort());
    expect(await joined).toEqual({ room, userId: bob.userId });
    const members = await request<{ members: string[] }>(sa, 'room:members', { room });
    expect(members.members.sort()).toEqual([alice.userId, bob.userId].sort());
  });

  it('keeps tenants apart across nodes', async () => {
    const other = await createTenant(a.db.sql);
    const outsider = await connect(b.url, await signTestToken({ userId: randomUUID(), tenantId: other, permissions: ['patient:read'] }));
    open.push(outsider);
    expect(await request(outsider, 'room:join', { room: `patient:${patient}` })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await request(outsider, 'room:join', { room: `tenant:${tenant}` })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    let leaked = 0;
    outsider.on('event', () => leaked++);
    const sa = await client(a, alice);
    const got = next(sa, 'event');
    await withTenant(a.db.sql, tenant, (db) => emitEvent(db, { type: 'visit.waiting', tenantId: tenant, aggregateId: randomUUID(), rooms: [`tenant:${tenant}`] }));
    await got;
    expect(leaked).toBe(0);
  });
});
