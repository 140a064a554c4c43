import type { Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { adminSession, createTenantWithAdmin, userSession, type TestTenant } from '../helpers/auth.js';
import { connect, request } from '../helpers/realtime.js';

/**
 * The real identity module's access tokens on sockets and on the dead-letter
 * admin API (every module enabled, as in production).
 */
let t: TestApp;
let clinicA: TestTenant;
let clinicB: TestTenant;
const open: Socket[] = [];

beforeAll(async () => {
  t = await startTestApp({ env: { LOAD_SHED_EVENT_LOOP_DELAY_MS: '0' } });
  clinicA = await createTenantWithAdmin(t);
  clinicB = await createTenantWithAdmin(t);
});

afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

afterAll(async () => {
  await t?.close();
});

describe('sockets with identity access tokens', () => {
  it('accepts a real access token and joins the caller to its tenant and user rooms only', async () => {
    const nurse = await userSession(t, clinicA, 'NURSE');
    const s = await connect(t.url, nurse.token);
    open.push(s);
    expect(await request(s, 'room:join', { room: `user:${nurse.user.id}` })).toMatchObject({ ok: true });
    expect(await request(s, 'room:join', { room: `tenant:${clinicA.id}` })).toMatchObject({ ok: true });
    expect(await request(s, 'room:join', { room: `tenant:${clinicB.id}` })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await request(s, 'room:join', { room: `user:${clinicA.admin.id}` })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
  });

  it('refuses a tampered token', async () => {
    const nurse = await userSession(t, clinicB, 'NURSE');
    const [h, p, sig] = nurse.token.split('.');
    const tampered = `${h}.${p}.${sig!.slice(0, -2)}${sig!.endsWith('AA') ? 'BB' : 'AA'}`;
    await expect(connect(t.url, tampered)).rejects.toMatchObject({ data: { code: 'UNAUTHENTICATED' } });
  });

  it('an ADMIN may read the dead-letter queue of its tenant; a nurse may not', async () => {
    const admin = await adminSession(t, clinicA);
    const ok = await t.gql('{ deadLetterJobs { id queue } }', {}, admin.headers);
    expect(ok.body).toEqual({ data: { deadLetterJobs: [] } });
    const nurse = await userSession(t, clinicA, 'NURSE');
    const denied = await t.gql('{ deadLetterJobs { id } }', {}, nurse.headers);
    expect(denied.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });
});
