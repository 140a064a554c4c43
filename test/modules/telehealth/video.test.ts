import { createHash, randomUUID } from 'node:crypto';
import { AccessToken, ParticipantInfo, Room, TokenVerifier, WebhookEvent } from 'livekit-server-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiveKitSimulator, WEBHOOK_PATH, type TelehealthInstance } from '../../../src/modules/telehealth/index.js';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { createUser, loginAs } from '../../helpers/auth.js';
import {
  APPOINTMENT_FIELDS,
  BOOK,
  consentAll,
  createClinic,
  CREATE_VISIT_TYPE,
  errorOf,
  FakeClock,
  gqlAs,
  ok,
  publishConsent,
  RECORD_CONSENT,
  telehealthModules,
  telehealthTestEnv,
  type AppointmentView,
  type Clinic,
} from './helpers.js';

/**
 * Video through the LiveKit adapter, against the in-repo LiveKit simulator
 * started by this test as "the LiveKit server" (LIVEKIT_URL/KEY/SECRET set:
 * the production code path, the real livekit-server-sdk client on the
 * Twirp wire): join tokens decoded with the SDK's TokenVerifier (room,
 * identity, grants by role, expiry); webhooks signed with the SDK's
 * AccessToken (sha256 claim) accepted, tampered or forged refused with
 * nothing changed, replayed processed once, out of order giving the same
 * final state; recordings only with every participant's consent, the media
 * location encrypted. Then the development provider (no LIVEKIT_*): the same
 * flow, the simulator posting its webhooks to the app by itself.
 */
const KEY = 'test-livekit-key';
const SECRET = 'test-livekit-secret-of-at-least-32-characters';
const clock = new FakeClock(Date.parse('2030-03-04T08:00:00Z'));
let sim: LiveKitSimulator;
let t: TestApp;
let c: Clinic;
let b: Clinic;

const JOIN = 'mutation($a: UUID!) { joinVisit(appointmentId: $a) { appointmentId role token url room identity expiresAt provider } }';
const SESSION = 'query($a: UUID!) { visitSession(appointmentId: $a) { appointmentId actualStartAt actualEndAt durationSeconds roomFinishedAt participants { userId role joinedAt leftAt } } }';
const START_REC = 'mutation($a: UUID!) { startVisitRecording(appointmentId: $a) { id status startedAt location } }';
const STOP_REC = 'mutation($a: UUID!) { stopVisitRecording(appointmentId: $a) { id status endedAt durationMs sizeBytes } }';
const RECORDINGS = 'query($a: UUID!) { visitRecordings(appointmentId: $a) { id status location endedAt } }';
const step = (field: string) => `mutation($id: UUID!) { ${field}(id: $id) { ${APPOINTMENT_FIELDS} } }`;
type Join = { appointmentId: string; role: string; token: string; url: string; room: string; identity: string; expiresAt: string; provider: string };
type Session = { actualStartAt: string | null; actualEndAt: string | null; durationSeconds: number | null; roomFinishedAt: string | null; participants: { userId: string | null; role: string; joinedAt: string | null; leftAt: string | null }[] };

beforeAll(async () => {
  sim = await LiveKitSimulator.start({ apiKey: KEY, apiSecret: SECRET });
  t = await startTestApp({
    modules: telehealthModules({ now: clock.now }),
    env: { ...telehealthTestEnv, LIVEKIT_URL: sim.url.replace('http', 'ws'), LIVEKIT_API_KEY: KEY, LIVEKIT_API_SECRET: SECRET, LIVEKIT_TOKEN_TTL_MINUTES: '30' },
  });
  sim.webhookUrl = `${t.url}${WEBHOOK_PATH}`;
  c = await createClinic(t);
  b = await createClinic(t);
  await publishConsent(c, 'TELEHEALTH');
  await consentAll(c, 'TELEHEALTH');
  await publishConsent(b, 'TELEHEALTH');
  await consentAll(b, 'TELEHEALTH');
}, 180_000);
afterAll(async () => {
  await t?.close();
  await sim?.close();
});

/** A video visit booked 30 minutes after the clock (moved on 2 hours each time), taken to `status`. */
async function visit(clinic: Clinic, status: 'scheduled' | 'waiting' | 'in_progress' = 'in_progress'): Promise<AppointmentView & { room: string }> {
  clock.advance(120);
  const startsAt = new Date(clock.now() + 30 * 60_000).toISOString();
  const appt = ok(await clinic.as.frontDesk<{ bookAppointment: AppointmentView }>(BOOK, { i: { patientId: clinic.patientId, providerId: clinic.provider.user.id, visitTypeId: clinic.visitTypeId, startsAt } })).bookAppointment;
  if (status !== 'scheduled') {
    ok(await clinic.as.patient(step('checkInAppointment'), { id: appt.id }));
    ok(await clinic.as.patient(step('enterWaitingRoom'), { id: appt.id }));
  }
  if (status === 'in_progress') ok(await clinic.as.provider(step('admitPatient'), { id: appt.id }));
  return { ...appt, room: `visit_${appt.id}` };
}

async function signed(body: string, secret = SECRET, key = KEY): Promise<string> {
  const at = new AccessToken(key, secret);
  at.sha256 = createHash('sha256').update(body).digest('base64');
  return at.toJwt();
}

function event(name: string, room: string, over: { participant?: { sid: string; identity: string; joinedAt?: number }; at: number; id?: string }): string {
  const ev = new WebhookEvent({
    id: over.id ?? `EV_${randomUUID().slice(0, 12)}`,
    createdAt: BigInt(Math.floor(over.at / 1000)),
    room: new Room({ name: room, sid: 'RM_test' }),
    participant: over.participant ? new ParticipantInfo({ sid: over.participant.sid, identity: over.participant.identity, joinedAt: BigInt(Math.floor((over.participant.joinedAt ?? over.at) / 1000)) }) : undefined,
  });
  ev.event = name as WebhookEvent['event']; // the SDK's subclass resets `event` after its constructor
  return JSON.stringify(ev.toJson());
}

async function post(body: string, authorization: string | undefined, contentType = 'application/webhook+json') {
  const res = await fetch(`${t.url}${WEBHOOK_PATH}`, { method: 'POST', headers: { 'content-type': contentType, ...(authorization ? { authorization } : {}) }, body });
  return { status: res.status, body: (await res.json()) as { ok?: boolean; duplicate?: boolean; errors?: { extensions: { code: string } }[] } };
}

async function webhookRows(tenantId: string) {
  const [row] = await t.db.owner<{ events: number; parts: number; outbox: number }[]>`
    select (select count(*)::int from telehealth_webhook_events where tenant_id = ${tenantId}) as events,
           (select count(*)::int from telehealth_room_participants where tenant_id = ${tenantId}) as parts,
           (select count(*)::int from outbox where tenant_id = ${tenantId} and type like 'visit.%') as outbox`;
  return row!;
}

describe('join tokens', () => {
  it('are scoped to the visit\u2019s room and the participant\u2019s identity, with grants by role and the configured lifetime', async () => {
    const appt = await visit(c, 'waiting');
    const verifier = new TokenVerifier(KEY, SECRET);
    const before = Date.now();
    const provider = ok(await c.as.provider<{ joinVisit: Join }>(JOIN, { a: appt.id })).joinVisit;
    expect(provider).toMatchObject({ appointmentId: appt.id, role: 'PROVIDER', room: appt.room, identity: `user:${c.provider.user.id}`, provider: 'livekit', url: sim.url.replace('http', 'ws') });
    const pc = await verifier.verify(provider.token);
    expect(pc.sub).toBe(`user:${c.provider.user.id}`);
    expect(pc.name).toBe('Dr Test');
    expect(pc.video).toMatchObject({ room: appt.room, roomJoin: true, roomAdmin: true, canPublish: true, canSubscribe: true });
    expect(pc.video!.canPublishSources).toEqual(['camera', 'microphone', 'screen_share', 'screen_share_audio']);
    expect(pc.exp! * 1000).toBeGreaterThanOrEqual(before + 30 * 60_000 - 5_000);
    expect(pc.exp! * 1000).toBeLessThanOrEqual(Date.now() + 30 * 60_000 + 5_000);
    expect(Date.parse(provider.expiresAt)).toBe(pc.exp! * 1000);
    // the room exists at the provider now
    expect(sim.rooms.has(appt.room)).toBe(true);

    // the patient joins once admitted, with fewer grants
    const early = errorOf(await c.as.patient(JOIN, { a: appt.id }));
    expect([early.code, early.extensions.from]).toEqual(['INVALID_STATE_TRANSITION', 'waiting']);
    ok(await c.as.provider(step('admitPatient'), { id: appt.id }));
    const patient = ok(await c.as.patient<{ joinVisit: Join }>(JOIN, { a: appt.id })).joinVisit;
    const cc = await verifier.verify(patient.token);
    expect(cc.sub).toBe(`user:${c.patientUser.user.id}`);
    expect(cc.video).toMatchObject({ room: appt.room, roomJoin: true, roomAdmin: false, canPublish: true, canSubscribe: true });
    expect(cc.video!.canPublishSources).toEqual(['camera', 'microphone']);
    // a token for one room is not one for another
    await expect(new TokenVerifier(KEY, 'another-secret-of-at-least-32-characters!').verify(patient.token)).rejects.toThrow();
  });

  it('are refused to someone not part of the visit, without consent, and for another tenant\u2019s visit', async () => {
    const appt = await visit(c);
    const otherPatient = await loginAs(t, await createUser(t, c.tenant, 'PATIENT'));
    const notMine = errorOf(await t.gql(JOIN, { a: appt.id }, otherPatient.headers));
    expect([notMine.code, notMine.extensions.reason]).toEqual(['FORBIDDEN', 'NOT_A_PARTICIPANT']);
    const otherProvider = await loginAs(t, await createUser(t, c.tenant, 'PROVIDER'));
    expect(errorOf(await t.gql(JOIN, { a: appt.id }, otherProvider.headers)).extensions.reason).toBe('NOT_A_PARTICIPANT');
    expect(errorOf(await c.as.frontDesk(JOIN, { a: appt.id })).code).toBe('FORBIDDEN');
    expect(errorOf(await b.as.provider(JOIN, { a: appt.id })).code).toBe('NOT_FOUND');
    expect(errorOf(await b.as.patient(JOIN, { a: appt.id })).code).toBe('NOT_FOUND');
    // without the current telehealth consent: a new version makes the provider's consent outdated
    await publishConsent(c, 'TELEHEALTH');
    const noConsent = errorOf(await c.as.provider(JOIN, { a: appt.id }));
    expect([noConsent.code, noConsent.extensions.reason]).toEqual(['FORBIDDEN', 'CONSENT_REQUIRED']);
    await consentAll(c, 'TELEHEALTH');
    ok(await c.as.provider(JOIN, { a: appt.id }));
    // an in-person visit has no video room
    const inPerson = ok(await c.as.admin<{ createVisitType: { id: string } }>(CREATE_VISIT_TYPE, { i: { code: 'office', name: 'Office', durationMinutes: 20, modality: 'IN_PERSON' } })).createVisitType.id;
    clock.advance(120);
    const office = ok(await c.as.frontDesk<{ bookAppointment: AppointmentView }>(BOOK, { i: { patientId: c.patientId, providerId: c.provider.user.id, visitTypeId: inPerson, startsAt: new Date(clock.now() + 30 * 60_000).toISOString() } })).bookAppointment;
    ok(await c.as.patient(step('checkInAppointment'), { id: office.id }));
    expect(errorOf(await c.as.provider(JOIN, { a: office.id })).extensions.reason).toBe('NOT_A_VIDEO_VISIT');
  });
});

describe('webhooks', () => {
  it('from the LiveKit server (the simulator, signed by it) update the visit: attendance, start, end, duration', async () => {
    const appt = await visit(c);
    ok(await c.as.provider(JOIN, { a: appt.id }));
    await sim.join(appt.room, `user:${c.provider.user.id}`);
    await sim.join(appt.room, `user:${c.patientUser.user.id}`);
    await sim.leave(appt.room, `user:${c.patientUser.user.id}`);
    await sim.finish(appt.room);
    await sim.flush();
    const mine = sim.deliveries.slice(-6);
    expect(mine.map((d) => [d.event, d.status])).toEqual([
      ['room_started', 200],
      ['participant_joined', 200],
      ['participant_joined', 200],
      ['participant_left', 200],
      ['participant_left', 200],
      ['room_finished', 200],
    ]);
    const s = ok(await c.as.provider<{ visitSession: Session }>(SESSION, { a: appt.id })).visitSession;
    expect(s.participants.map((p) => [p.role, p.userId])).toEqual(expect.arrayContaining([['PROVIDER', c.provider.user.id], ['PATIENT', c.patientUser.user.id]]));
    expect(s.participants.every((p) => p.joinedAt && p.leftAt)).toBe(true);
    expect(s.actualStartAt).not.toBeNull();
    expect(s.actualEndAt).not.toBeNull();
    expect(s.durationSeconds).toBe(Math.round((Date.parse(s.actualEndAt!) - Date.parse(s.actualStartAt!)) / 1000));
    const events = await t.db.owner<{ type: string; rooms: string[] }[]>`select type, rooms from outbox where aggregate_id = ${appt.id} and type like 'visit.%' order by seq`;
    expect(events.map((e) => e.type)).toEqual(['visit.participantJoined', 'visit.participantJoined', 'visit.participantLeft', 'visit.participantLeft', 'visit.roomFinished']);
    expect(events[0]!.rooms).toEqual([`visit:${appt.id}`, `waitingRoom:${c.provider.user.id}`]);
    // the room finished with the visit in progress: the visit is completed (the state machine's step, its own event)
    expect((await t.db.owner<{ status: string }[]>`select status from telehealth_appointments where id = ${appt.id}`)[0]!.status).toBe('completed');
    expect(await t.db.owner`select 1 from outbox where aggregate_id = ${appt.id} and type = 'appointment.completed'`).toHaveLength(1);
    const [audit] = await t.db.owner`select actor_type, actor_id, patient_id, action from audit_events where resource_id = ${appt.id} and operation_name = 'livekit:webhook' limit 1`;
    expect(audit).toEqual({ actor_type: 'system', actor_id: 'system:livekit-webhook', patient_id: c.patientId, action: 'update' });
  });

  it('signed with the SDK: accepted once; a replay is processed once; tampered, forged, unsigned or mistyped refused with nothing changed', async () => {
    const appt = await visit(c);
    const body = event('participant_joined', appt.room, { participant: { sid: 'PA_signed', identity: `user:${c.provider.user.id}` }, at: Date.now() });
    const first = await post(body, await signed(body));
    expect(first).toEqual({ status: 200, body: { ok: true, eventId: expect.any(String), event: 'participant_joined', duplicate: false } });
    const after = await webhookRows(c.tenant.id);
    const replay = await post(body, await signed(body));
    expect(replay.body).toMatchObject({ ok: true, duplicate: true });
    expect(await webhookRows(c.tenant.id)).toEqual(after);

    const other = event('participant_left', appt.room, { participant: { sid: 'PA_signed', identity: `user:${c.provider.user.id}` }, at: Date.now() });
    const auth = await signed(other);
    const refusals = [
      await post(other.replace('participant_left', 'room_finished'), auth), // body changed after signing
      await post(other, await signed(other, 'a-forger-secret-that-is-long-enough-0123')), // another secret
      await post(other, await signed(other, SECRET, 'another-key')), // another API key (issuer)
      await post(other, undefined),
      await post(other, `Bearer ${auth}`),
    ];
    expect(refusals.map((r) => [r.status, r.body.errors?.[0]?.extensions.code])).toEqual(Array(5).fill([401, 'UNAUTHENTICATED']));
    expect((await post(other, auth, 'application/json')).status).toBe(400);
    expect(await webhookRows(c.tenant.id)).toEqual(after);
    // a valid signature for a room nobody booked
    const unknown = event('room_started', `visit_${randomUUID()}`, { at: Date.now() });
    const u = await post(unknown, await signed(unknown));
    expect([u.status, u.body.errors?.[0]?.extensions.code]).toEqual([404, 'NOT_FOUND']);
    expect(await webhookRows(c.tenant.id)).toEqual(after);
    // the genuine event still goes through
    expect((await post(other, auth)).body).toMatchObject({ ok: true, duplicate: false });
  });

  it('out of order: the same final state as in order', async () => {
    const inOrder = await visit(c);
    const reversed = await visit(c);
    const t0 = Date.parse('2030-03-04T10:00:00Z');
    const script = (room: string, tag: string) => [
      event('room_started', room, { at: t0 }),
      event('participant_joined', room, { participant: { sid: `PA_p${tag}`, identity: `user:${c.provider.user.id}`, joinedAt: t0 + 60_000 }, at: t0 + 60_000 }),
      event('participant_joined', room, { participant: { sid: `PA_c${tag}`, identity: `user:${c.patientUser.user.id}`, joinedAt: t0 + 120_000 }, at: t0 + 120_000 }),
      event('participant_left', room, { participant: { sid: `PA_c${tag}`, identity: `user:${c.patientUser.user.id}` }, at: t0 + 900_000 }),
      event('participant_left', room, { participant: { sid: `PA_p${tag}`, identity: `user:${c.provider.user.id}` }, at: t0 + 960_000 }),
      event('room_finished', room, { at: t0 + 1_000_000 }),
    ];
    for (const body of script(inOrder.room, 'a')) expect((await post(body, await signed(body))).status).toBe(200);
    const backwards = script(reversed.room, 'b').reverse();
    // reversed, and the middle one delivered twice
    for (const body of [...backwards.slice(0, 3), backwards[2]!, ...backwards.slice(3)]) expect((await post(body, await signed(body))).status).toBe(200);
    const sessionOf = async (id: string) => {
      const s = ok(await c.as.provider<{ visitSession: Session }>(SESSION, { a: id })).visitSession;
      return { ...s, participants: [...s.participants].sort((x, y) => x.role.localeCompare(y.role)) };
    };
    const a = await sessionOf(inOrder.id);
    const r = await sessionOf(reversed.id);
    expect(a).toMatchObject({ actualStartAt: '2030-03-04T10:01:00.000Z', actualEndAt: '2030-03-04T10:16:40.000Z', durationSeconds: 940, roomFinishedAt: '2030-03-04T10:16:40.000Z' });
    expect(r).toEqual({ ...a, appointmentId: reversed.id });
  });
});

describe('recording', () => {
  it('needs every participant\u2019s recording consent; stores metadata with the location encrypted; stops', async () => {
    const appt = await visit(c);
    ok(await c.as.provider(JOIN, { a: appt.id }));
    await sim.join(appt.room, `user:${c.provider.user.id}`);
    await sim.join(appt.room, `user:${c.patientUser.user.id}`);
    await sim.flush();
    const egresses = sim.egresses.size;
    // no recording text published yet
    expect(errorOf(await c.as.provider(START_REC, { a: appt.id })).extensions.reason).toBe('CONSENT_TEXT_MISSING');
    await publishConsent(c, 'RECORDING');
    const none = errorOf(await c.as.provider(START_REC, { a: appt.id }));
    expect([none.code, none.extensions.reason, none.extensions.missing]).toEqual(['FORBIDDEN', 'CONSENT_REQUIRED', 2]);
    // the patient consents for this visit only; the provider not yet
    ok(await c.as.patient(RECORD_CONSENT, { i: { kind: 'RECORDING', version: 1, appointmentId: appt.id } }));
    expect(errorOf(await c.as.provider(START_REC, { a: appt.id })).extensions.missing).toBe(1);
    expect(sim.egresses.size).toBe(egresses);
    ok(await c.as.provider(RECORD_CONSENT, { i: { kind: 'RECORDING', version: 1 } }));
    // a third user in the room (a nurse who joined) has not consented
    const nurse = await createUser(t, c.tenant, 'NURSE');
    await sim.join(appt.room, `user:${nurse.id}`);
    await sim.flush();
    expect(errorOf(await c.as.provider(START_REC, { a: appt.id })).extensions.missing).toBe(1);
    await sim.leave(appt.room, `user:${nurse.id}`);
    await sim.flush();

    const rec = ok(await c.as.provider<{ startVisitRecording: { id: string; status: string; location: string } }>(START_REC, { a: appt.id })).startVisitRecording;
    expect(rec.status).toBe('ACTIVE');
    expect(rec.location).toMatch(new RegExp(`^livekit-simulator://recordings/telehealth/${c.tenant.id}/${appt.id}/`));
    expect(sim.egresses.size).toBe(egresses + 1);
    const [stored] = await t.db.owner<{ location: Buffer }[]>`select location from telehealth_recordings where id = ${rec.id}`;
    expect(stored!.location.toString('latin1')).not.toContain(appt.id); // an envelope, not the path
    expect(errorOf(await c.as.provider(START_REC, { a: appt.id })).extensions.reason).toBe('RECORDING_ACTIVE');
    // only the visit's provider (or a nurse) records; the patient may not
    expect(errorOf(await c.as.patient(START_REC, { a: appt.id })).code).toBe('FORBIDDEN');

    const stopped = ok(await c.as.provider<{ stopVisitRecording: { status: string; endedAt: string; durationMs: number } }>(STOP_REC, { a: appt.id })).stopVisitRecording;
    expect(stopped.status).toBe('COMPLETE');
    expect(stopped.endedAt).not.toBeNull();
    await sim.flush(); // egress_started / egress_ended webhooks arrive too: the recording stays complete
    const list = ok(await c.as.provider<{ visitRecordings: { id: string; status: string; location: string }[] }>(RECORDINGS, { a: appt.id })).visitRecordings;
    expect(list).toEqual([{ id: rec.id, status: 'COMPLETE', location: rec.location, endedAt: stopped.endedAt }]);
    expect(errorOf(await c.as.provider(STOP_REC, { a: appt.id })).extensions.reason).toBe('NO_ACTIVE_RECORDING');
    expect(errorOf(await b.as.provider(RECORDINGS, { a: appt.id })).code).toBe('NOT_FOUND');

    // recording again; the patient withdraws the recording consent: the recording stops at once
    ok(await c.as.patient(RECORD_CONSENT, { i: { kind: 'RECORDING', version: 1, appointmentId: appt.id } }));
    const again = ok(await c.as.provider<{ startVisitRecording: { id: string; status: string } }>(START_REC, { a: appt.id })).startVisitRecording;
    expect(again.status).toBe('ACTIVE');
    const [consent] = await t.db.owner<{ id: string }[]>`select id from telehealth_consents where appointment_id = ${appt.id} and kind = 'recording' and withdrawn_at is null`;
    ok(await c.as.patient('mutation($id: UUID!) { withdrawConsent(id: $id) { id withdrawnAt } }', { id: consent!.id }));
    const after = ok(await c.as.provider<{ visitRecordings: { id: string; status: string }[] }>(RECORDINGS, { a: appt.id })).visitRecordings;
    expect(after.find((r) => r.id === again.id)?.status).toBe('COMPLETE');
    const [ev] = await t.db.owner<{ payload: Record<string, unknown> }[]>`select payload from outbox where aggregate_id = ${appt.id} and type = 'visit.recordingStopped' order by seq desc limit 1`;
    expect(ev!.payload).toMatchObject({ recordingId: again.id, reason: 'consent_withdrawn' });
    expect(errorOf(await c.as.provider(START_REC, { a: appt.id })).extensions.reason).toBe('CONSENT_REQUIRED');
  });
});

describe('the development provider (no LIVEKIT_*)', () => {
  it('issues tokens of the same shape and its simulator posts its webhooks to the app', async () => {
    const dev = await startTestApp({ modules: telehealthModules({ now: clock.now }), env: telehealthTestEnv });
    try {
      const d = await createClinic(dev);
      await publishConsent(d);
      await consentAll(d);
      const appt = ok(await d.as.frontDesk<{ bookAppointment: AppointmentView }>(BOOK, { i: { patientId: d.patientId, providerId: d.provider.user.id, visitTypeId: d.visitTypeId, startsAt: new Date(clock.now() + 30 * 60_000).toISOString() } })).bookAppointment;
      ok(await d.as.patient(step('checkInAppointment'), { id: appt.id }));
      ok(await d.as.patient(step('enterWaitingRoom'), { id: appt.id }));
      const join = ok(await d.as.provider<{ joinVisit: Join }>(JOIN, { a: appt.id })).joinVisit;
      expect(join.provider).toBe('development');
      const inst = dev.app.scopes.env.instances!.get<TelehealthInstance>('telehealth');
      const claims = await new TokenVerifier('carebase-dev', (inst.video as unknown as { opts: { apiSecret: string } }).opts.apiSecret).verify(join.token);
      expect(claims.video).toMatchObject({ room: `visit_${appt.id}`, roomJoin: true, roomAdmin: true });
      await inst.simulator!.join(join.room, join.identity);
      await inst.simulator!.flush();
      const s = ok(await gqlAs(dev, d.provider.headers)<{ visitSession: Session }>(SESSION, { a: appt.id })).visitSession;
      expect(s.participants.map((p) => p.role)).toEqual(['PROVIDER']);
    } finally {
      await dev.close();
    }
  });
});
