import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { withTenant } from '../../src/platform/db/index.js';
import { AppError, ErrorCode } from '../../src/platform/errors.js';
import { emitEvent } from '../../src/platform/jobs/index.js';
import type { ModuleManifest } from '../../src/schema/index.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { connect, createTenant, next, request, revokedSessions, signTestToken, stallingSessions, testAuthModule, testPatientRoomsModule, until } from '../helpers/realtime.js';
import { enableTenantRls } from '../helpers/rls.js';

/** A module with a visit room type and a socket handler, as a telehealth module would declare them. */
const visitsModule: ModuleManifest = {
  name: 'test-visits',
  phase: 0,
  description: 'test visits',
  dependsOn: [],
  roomAccess: {
    visit: { permission: 'patient:clinical:read', check: async (_principal, id, db) => (await db.execute(sql`select 1 from test_visits where id = ${id}`)).length > 0 },
  },
  socketHandlers: [
    {
      event: 'visit:chat',
      permission: 'patient:clinical:write',
      handle: (_socket, payload, ctx) => {
        const p = payload as { visitId?: unknown; messageId?: unknown };
        if (typeof p?.visitId !== 'string') throw new AppError(ErrorCode.BAD_USER_INPUT, 'visitId is required');
        ctx.broadcast(`visit:${p.visitId}`, 'visit:chat', { visitId: p.visitId, messageId: p.messageId, from: ctx.principal.id });
        return { delivered: true };
      },
    },
  ],
};

let t: TestApp;
let tenantA: string;
let tenantB: string;
const patientA = randomUUID();
const patientB = randomUUID();
const visitA = randomUUID();
const clinician = { userId: randomUUID(), permissions: ['patient:read', 'patient:clinical:read', 'patient:clinical:write'] };
const colleague = { userId: randomUUID(), permissions: ['patient:read', 'patient:clinical:read'] };
const frontDesk = { userId: randomUUID(), permissions: [] as string[] };
const open: Socket[] = [];

async function client(who: { userId: string; permissions: string[] }, tenantId = tenantA, opts: { expiresInSec?: number; sessionId?: string } = {}) {
  const s = await connect(t.url, await signTestToken({ ...who, tenantId }, opts));
  open.push(s);
  return s;
}

beforeAll(async () => {
  t = await startTestApp({
    modules: [testAuthModule, testPatientRoomsModule, visitsModule],
    env: { SOCKET_MAX_PAYLOAD_BYTES: '4096' },
    background: { sweepMs: 100, revalidateMs: 300, burst: 10 },
  });
  tenantA = await createTenant(t.db.sql);
  tenantB = await createTenant(t.db.sql);
  // tenant-owned tables standing in for the patients and visits modules
  await t.db.owner`create table test_patients (id uuid primary key, tenant_id uuid not null default carebase_current_tenant() references tenants(id))`;
  await t.db.owner`create table test_visits (id uuid primary key, tenant_id uuid not null default carebase_current_tenant() references tenants(id))`;
  await enableTenantRls(t.db.owner, 'test_patients', 'test_visits');
  await t.db.owner`grant select, insert on test_patients, test_visits to carebase_app`;
  await withTenant(t.db.sql, tenantA, (db) => db.execute(sql`insert into test_patients (id) values (${patientA})`));
  await withTenant(t.db.sql, tenantB, (db) => db.execute(sql`insert into test_patients (id) values (${patientB})`));
  await withTenant(t.db.sql, tenantA, (db) => db.execute(sql`insert into test_visits (id) values (${visitA})`));
});

afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

afterAll(async () => {
  await t?.close();
});

describe('handshake', () => {
  it('refuses a connection without a token, with a bad token and with an expired one', async () => {
    await expect(connect(t.url, undefined)).rejects.toMatchObject({ data: { code: 'UNAUTHENTICATED' } });
    await expect(connect(t.url, 'not-a-jwt.at.all')).rejects.toMatchObject({ data: { code: 'UNAUTHENTICATED' } });
    const expired = await signTestToken({ ...clinician, tenantId: tenantA }, { expiresInSec: -10 });
    await expect(connect(t.url, expired)).rejects.toMatchObject({ data: { code: 'UNAUTHENTICATED' } });
  });

  it('accepts the access token from the Authorization header too', async () => {
    const token = await signTestToken({ ...clinician, tenantId: tenantA });
    const s = await connect(t.url, undefined, { headers: { authorization: `Bearer ${token}` } });
    open.push(s);
    expect(s.connected).toBe(true);
  });

  it('does not log the token', async () => {
    const token = await signTestToken({ ...clinician, tenantId: tenantA });
    await connect(t.url, token).then((s) => open.push(s));
    await connect(t.url, `${token}x`).catch(() => undefined);
    expect(t.logText()).not.toContain(token.split('.')[2]);
  });
});

describe('rooms', () => {
  it('refuses joins across tenants: the tenant room, a patient and a visit of another tenant', async () => {
    const s = await client(clinician);
    expect(await request(s, 'room:join', { room: `tenant:${tenantB}` })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await request(s, 'room:join', { room: `patient:${patientB}` })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    const sb = await client(clinician, tenantB);
    expect(await request(sb, 'room:join', { room: `visit:${visitA}` })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await request(sb, 'room:join', { room: `user:${randomUUID()}` })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
  });

  it('applies RBAC before ABAC: without patient:read a visible patient is refused', async () => {
    const s = await client(frontDesk);
    expect(await request(s, 'room:join', { room: `patient:${patientA}` })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    const c = await client(clinician);
    expect(await request(c, 'room:join', { room: `patient:${patientA}` })).toMatchObject({ ok: true, room: `patient:${patientA}` });
    expect(await request(c, 'room:join', { room: `visit:${visitA}` })).toMatchObject({ ok: true });
  });

  it('refuses unknown room types and malformed names', async () => {
    const s = await client(clinician);
    expect(await request(s, 'room:join', { room: `ward:${randomUUID()}` })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await request(s, 'room:join', { room: 't:x:patient:y' })).toMatchObject({ ok: false, error: { code: 'BAD_USER_INPUT' } });
    expect(await request(s, 'room:join', { room: 42 })).toMatchObject({ ok: false, error: { code: 'BAD_USER_INPUT' } });
  });

  it('delivers a committed outbox event to the rooms it names, and only in its tenant', async () => {
    const a = await client(clinician);
    const b = await client(clinician, tenantB);
    await request(a, 'room:join', { room: `patient:${patientA}` });
    const gotA = next<{ id: string; type: string; payload: Record<string, unknown>; rooms: string[] }>(a, 'event');
    let bGot = 0;
    b.on('event', () => bGot++);
    const id = await withTenant(t.db.sql, tenantA, (db) =>
      emitEvent(db, { type: 'patient.updated', tenantId: tenantA, aggregateId: patientA, payload: { patientId: patientA }, rooms: [`patient:${patientA}`, `tenant:${tenantA}`] }),
    );
    const ev = await gotA;
    expect(ev).toMatchObject({ id, type: 'patient.updated', payload: { patientId: patientA } });
    expect(ev.rooms).toContain(`patient:${patientA}`);
    // b is in tenant B: its tenant room has another name, so nothing arrives; a second event proves ordering
    const second = next(a, 'event');
    await withTenant(t.db.sql, tenantA, (db) => emitEvent(db, { type: 'patient.viewed', tenantId: tenantA, aggregateId: patientA, rooms: [`tenant:${tenantA}`] }));
    await second;
    expect(bGot).toBe(0);
  });

  it('never publishes an event whose transaction rolled back', async () => {
    const a = await client(clinician);
    const seen: string[] = [];
    a.on('event', (e: { type: string }) => seen.push(e.type));
    await expect(
      withTenant(t.db.sql, tenantA, async (db) => {
        await emitEvent(db, { type: 'patient.deleted', tenantId: tenantA, aggregateId: patientA, rooms: [`user:${clinician.userId}`] });
        throw new Error('rollback');
      }),
    ).rejects.toThrow('rollback');
    const marker = next(a, 'event', 5000, (e: { type: string }) => e.type === 'patient.marker');
    await withTenant(t.db.sql, tenantA, (db) => emitEvent(db, { type: 'patient.marker', tenantId: tenantA, aggregateId: patientA, rooms: [`user:${clinician.userId}`] }));
    await marker;
    expect(seen).toEqual(['patient.marker']);
    const [row] = await t.db.owner<{ n: number }[]>`select count(*)::int as n from outbox where type = 'patient.deleted'`;
    expect(row!.n).toBe(0);
  });
});

describe('presence', () => {
  it('lists members and announces joins and leaves', async () => {
    const a = await client(clinician);
    const b = await client(colleague);
    const room = `patient:${patientA}`;
    expect(await request(a, 'room:join', { room })).toMatchObject({ ok: true, members: [clinician.userId] });
    const joined = next<{ room: string; userId: string }>(a, 'presence:join');
    const res = await request<{ ok: boolean; members: string[] }>(b, 'room:join', { room });
    expect(res.members.sort()).toEqual([clinician.userId, colleague.userId].sort());
    expect(await joined).toEqual({ room, userId: colleague.userId });
    const members = await request<{ members: string[] }>(a, 'room:members', { room });
    expect(members.members.sort()).toEqual([clinician.userId, colleague.userId].sort());
    const left = next<{ room: string; userId: string }>(a, 'presence:leave');
    b.close();
    expect(await left).toEqual({ room, userId: colleague.userId });
  });

  it('shows members only to members', async () => {
    const a = await client(clinician);
    expect(await request(a, 'room:members', { room: `patient:${patientA}` })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
  });
});

describe('token lifecycle', () => {
  it('disconnects a socket when its token expires', async () => {
    const s = await client(clinician, tenantA, { expiresInSec: 2 });
    const expired = next<{ code: string }>(s, 'auth:expired', 10_000);
    const disconnected = next<string>(s, 'disconnect', 10_000);
    expect(await expired).toEqual({ code: 'UNAUTHENTICATED' });
    expect(await disconnected).toBe('io server disconnect');
  });

  it('a token that expires while it is being re-verified is reported as expired, not revoked', async () => {
    // sign just after a second boundary: the token's exp (whole seconds) is then ~2 s away
    await until(() => Date.now() % 1000 < 50, 5_000, 5);
    const sessionId = randomUUID();
    const s = await client(clinician, tenantA, { expiresInSec: 2, sessionId });
    const kicked = new Promise<string>((resolve) => {
      s.once('auth:expired', () => resolve('auth:expired'));
      s.once('auth:revoked', () => resolve('auth:revoked'));
    });
    // the next re-verification (within revalidateMs) holds the loop past the expiry, as a loaded machine does
    stallingSessions.set(sessionId, 2_500);
    expect(await kicked).toBe('auth:expired');
  });

  it('disconnects a socket whose session is revoked', async () => {
    const sessionId = randomUUID();
    const s = await client(clinician, tenantA, { sessionId });
    const revoked = next<{ code: string }>(s, 'auth:revoked', 10_000);
    revokedSessions.add(sessionId);
    expect(await revoked).toEqual({ code: 'UNAUTHENTICATED' });
    await until(() => !s.connected);
  });

  it('accepts a refreshed token pushed over the socket, and refuses one of another user', async () => {
    const s = await client(clinician, tenantA, { expiresInSec: 3 });
    const fresh = await signTestToken({ ...clinician, tenantId: tenantA }, { expiresInSec: 3600 });
    const res = await request<{ ok: boolean; expiresAt: string }>(s, 'auth:refresh', { token: fresh });
    expect(res.ok).toBe(true);
    expect(Date.parse(res.expiresAt)).toBeGreaterThan(Date.now() + 3000_000);
    const other = await signTestToken({ ...colleague, tenantId: tenantA });
    expect(await request(s, 'auth:refresh', { token: other })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await request(s, 'auth:refresh', { token: 'garbage' })).toMatchObject({ ok: false });
    // past the original expiry the socket is still there and still served
    let kicked = false;
    s.on('auth:expired', () => (kicked = true));
    await new Promise((r) => setTimeout(r, 3500));
    expect(kicked).toBe(false);
    expect(await request(s, 'room:join', { room: `patient:${patientA}` })).toMatchObject({ ok: true });
  });

  it('leaves rooms the refreshed token no longer allows', async () => {
    const s = await client(clinician);
    await request(s, 'room:join', { room: `patient:${patientA}` });
    const revoked = next<{ room: string }>(s, 'room:revoked');
    const downgraded = await signTestToken({ userId: clinician.userId, tenantId: tenantA, permissions: [] });
    expect(await request(s, 'auth:refresh', { token: downgraded })).toMatchObject({ ok: true });
    expect(await revoked).toEqual({ room: `patient:${patientA}` });
  });
});

describe('limits', () => {
  it('rate-limits each socket', async () => {
    const s = await client(clinician);
    const results = await Promise.all(Array.from({ length: 30 }, () => request<{ ok: boolean; error?: { code: string } }>(s, 'room:join', { room: `tenant:${tenantA}` })));
    expect(results.filter((r) => r.ok).length).toBeGreaterThan(0);
    expect(results.filter((r) => r.error?.code === 'RATE_LIMITED').length).toBeGreaterThan(0);
  });

  it('drops a connection that sends more than the payload limit', async () => {
    const s = await client(clinician);
    const gone = next<string>(s, 'disconnect');
    s.emit('room:join', { room: 'x'.repeat(10_000) });
    expect(await gone).toBe('transport close');
  });
});

describe('module socket handlers', () => {
  it('checks the handler permission and broadcasts only to rooms the sender joined', async () => {
    const sender = await client(clinician);
    const peer = await client(colleague);
    await request(peer, 'room:join', { room: `visit:${visitA}` });
    // not in the room yet
    expect(await request(sender, 'visit:chat', { visitId: visitA, messageId: 'm1' })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    await request(sender, 'room:join', { room: `visit:${visitA}` });
    const got = next<{ visitId: string; messageId: string; from: string }>(peer, 'visit:chat');
    expect(await request(sender, 'visit:chat', { visitId: visitA, messageId: 'm2' })).toEqual({ ok: true, result: { delivered: true } });
    expect(await got).toEqual({ visitId: visitA, messageId: 'm2', from: clinician.userId });
    // the peer lacks patient:clinical:write
    expect(await request(peer, 'visit:chat', { visitId: visitA, messageId: 'm3' })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await request(sender, 'visit:chat', {})).toMatchObject({ ok: false, error: { code: 'BAD_USER_INPUT' } });
  });
});

describe('connection state recovery', () => {
  it('restores rooms and delivers events missed during a short disconnect', async () => {
    const token = await signTestToken({ ...clinician, tenantId: tenantA });
    const s = await connect(t.url, token, { reconnection: true });
    open.push(s);
    await request(s, 'room:join', { room: `patient:${patientA}` });
    // let the server record an offset for this session
    const first = next(s, 'event');
    await withTenant(t.db.sql, tenantA, (db) => emitEvent(db, { type: 'patient.updated', tenantId: tenantA, aggregateId: patientA, rooms: [`patient:${patientA}`] }));
    await first;
    const reconnected = next(s, 'connect', 10_000);
    s.io.engine.close(); // transport drops; the client reconnects on its own
    await until(() => !s.connected);
    const missedId = await withTenant(t.db.sql, tenantA, (db) =>
      emitEvent(db, { type: 'patient.updated', tenantId: tenantA, aggregateId: patientA, rooms: [`patient:${patientA}`] }),
    );
    // wait until the relay published it (while the client is away)
    await until(async () => (await t.db.owner`select 1 from outbox where id = ${missedId} and published_at is not null`).length > 0);
    const missed = next<{ id: string }>(s, 'event', 10_000, (e) => e.id === missedId);
    await reconnected;
    expect(s.recovered).toBe(true);
    expect((await missed).id).toBe(missedId);
  });
});
