import { randomUUID } from 'node:crypto';
import { and, asc, desc, eq, inArray, isNotNull, isNull, sql } from 'drizzle-orm';
import type { WebhookEvent } from 'livekit-server-sdk';
import { fieldContext } from '../../platform/crypto/index.js';
import type { Db } from '../../platform/db/index.js';
import { AppError, ErrorCode, badInput, notFound } from '../../platform/errors.js';
import { emitEvent } from '../../platform/jobs/index.js';
import type { RequestScope } from '../../platform/scope/index.js';
import { users } from '../identity/index.js';
import { appointmentRooms, authorizeAppointment, loadAppointment, transitionAppointment } from './appointments.js';
import { requireRecordingConsents, requireTelehealthConsent } from './consent.js';
import { instanceOf, invalidTransition, principalOf, uuidArg } from './common.js';
import {
  RECORDING_STATUSES,
  telehealthAppointments,
  telehealthRecordings,
  telehealthRoomParticipants,
  telehealthVideoRooms,
  telehealthWebhookEvents,
  type Appointment,
  type Consent,
  type Recording,
  type RecordingStatus,
  type RoomParticipant,
  type VideoRoom,
} from './tables.js';
import { recordingInfo } from './video/livekit.js';
import type { ParticipantRole, RecordingInfo } from './video/provider.js';

/**
 * The video side of a visit: join tokens (room per visit, identity, grants
 * by role, consent first), provider webhooks (verified, stored by event id,
 * processed once, folded in with least/greatest so any order gives the same
 * result) and recordings (egress, only with every participant's consent;
 * the media location encrypted).
 */

/** How long an empty room stays open at the provider, and how many may join. */
const ROOM_EMPTY_TIMEOUT_S = 10 * 60;
const ROOM_MAX_PARTICIPANTS = 6;
export const WEBHOOK_PROVIDER = 'livekit';
const identityOf = (userId: string) => `user:${userId}`;
const USER_IDENTITY = /^user:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;

export interface VisitJoin {
  appointmentId: string;
  role: ParticipantRole;
  token: string;
  url: string;
  room: string;
  identity: string;
  expiresAt: Date;
  provider: 'livekit' | 'development';
}

/**
 * A join token for the caller's own part in a video visit: the provider from
 * the waiting room on, the patient once admitted; the current telehealth
 * consent of the joining person first. Opens the room at the provider.
 */
export async function joinVisit(scope: RequestScope, idArg: unknown): Promise<VisitJoin> {
  const p = principalOf(scope, 'telehealth:visit:join');
  const appt = await authorizeAppointment(scope, idArg, 'join');
  if (appt.modality !== 'video' || !appt.roomName) throw new AppError(ErrorCode.BAD_USER_INPUT, 'This is not a video visit', { field: 'appointmentId', reason: 'NOT_A_VIDEO_VISIT' });
  const role: ParticipantRole = appt.providerId === p.id ? 'provider' : 'patient';
  const open = role === 'provider' ? ['checked_in', 'waiting', 'in_progress'] : ['in_progress'];
  if (!open.includes(appt.status)) throw invalidTransition(appt.status, 'join');
  const db = await scope.db();
  await requireTelehealthConsent(db, appt.tenantId, role === 'provider' ? { userId: p.id } : { patientId: appt.patientId });
  const inst = instanceOf(scope);
  await inst.video.ensureRoom(appt.roomName, { emptyTimeoutSeconds: ROOM_EMPTY_TIMEOUT_S, maxParticipants: ROOM_MAX_PARTICIPANTS, metadata: JSON.stringify({ appointmentId: appt.id }) });
  await db
    .insert(telehealthVideoRooms)
    .values({ tenantId: appt.tenantId, appointmentId: appt.id, roomName: appt.roomName, provider: inst.video.kind, openedAt: new Date(inst.now()) })
    .onConflictDoNothing();
  const [me] = await db.select({ displayName: users.displayName }).from(users).where(and(eq(users.tenantId, appt.tenantId), eq(users.id, p.id)));
  const token = await inst.video.joinToken({
    room: appt.roomName,
    identity: identityOf(p.id),
    name: me?.displayName,
    role,
    ttlMinutes: inst.joinTokenTtlMinutes,
    metadata: JSON.stringify({ appointmentId: appt.id, role }),
  });
  scope.recordPhiAccess({ patientIds: [appt.patientId], resourceType: 'TelehealthVisit', resourceId: appt.id, fields: ['TelehealthVisit.join'], action: 'read', outcome: 'allowed', detail: { role } });
  return { appointmentId: appt.id, role, token: token.token, url: token.url, room: token.room, identity: token.identity, expiresAt: new Date(token.expiresAt), provider: inst.video.kind };
}

// ------------------------------------------------------------------ webhooks

/** The tenant and visit of a provider room (a definer function: a webhook arrives without a tenant). */
export async function lookupRoom(db: Db, room: string): Promise<{ tenantId: string; appointmentId: string } | undefined> {
  const rows = (await db.execute(sql`select tenant_id, appointment_id from telehealth_room_lookup(${room})`)) as unknown as { tenant_id: string; appointment_id: string }[];
  return rows[0] ? { tenantId: rows[0].tenant_id, appointmentId: rows[0].appointment_id } : undefined;
}

/** The room an event is about (room events carry the room, egress events its name). */
export function roomOfEvent(ev: WebhookEvent): string | undefined {
  return ev.room?.name || ev.egressInfo?.roomName || undefined;
}

const secondsToDate = (s: bigint | undefined) => (s && s > 0n ? new Date(Number(s) * 1000) : undefined);
const rankSql = (col: unknown) =>
  sql`(case ${col} when 'starting' then 0 when 'active' then 1 when 'ending' then 2 else 3 end)`;

export interface WebhookOutcome {
  ok: true;
  eventId: string;
  event: string;
  /** the event id was seen before: nothing was done */
  duplicate: boolean;
}

/**
 * Applies one verified webhook in the scope's tenant transaction: the event
 * row first (a replay finds it and changes nothing), then the visit's state,
 * an outbox event for the visit's rooms, and the audit entry.
 */
export async function applyWebhook(scope: RequestScope, ev: WebhookEvent): Promise<WebhookOutcome> {
  const room = roomOfEvent(ev);
  const tenantId = principalOf(scope).tenantId;
  const db = await scope.db();
  const found = room ? await lookupRoom(db, room) : undefined;
  if (!room || !found || found.tenantId !== tenantId) throw notFound('Room');
  if (!ev.id) throw badInput('the event has no id', 'id');
  const inst = instanceOf(scope);
  const occurredAt = secondsToDate(ev.createdAt) ?? new Date(inst.now());
  const inserted = await db
    .insert(telehealthWebhookEvents)
    .values({ tenantId, provider: WEBHOOK_PROVIDER, eventId: ev.id, event: ev.event, roomName: room, appointmentId: found.appointmentId, occurredAt, receivedAt: new Date(inst.now()) })
    .onConflictDoNothing()
    .returning({ eventId: telehealthWebhookEvents.eventId });
  if (!inserted.length) return { ok: true, eventId: ev.id, event: ev.event, duplicate: true };
  const appt = await loadAppointment(db, tenantId, found.appointmentId);
  await db
    .insert(telehealthVideoRooms)
    .values({ tenantId, appointmentId: appt.id, roomName: room, provider: inst.video.kind, openedAt: occurredAt })
    .onConflictDoNothing();
  const t = occurredAt;
  let outboxType: string | undefined;
  let userId: string | null = null;
  let role: string | null = null;
  switch (ev.event) {
    case 'room_started':
      await db.update(telehealthVideoRooms).set({ roomStartedAt: sql`least(coalesce(${telehealthVideoRooms.roomStartedAt}, ${t}), ${t})` }).where(roomKey(tenantId, appt.id));
      break;
    case 'room_finished':
      await db.update(telehealthVideoRooms).set({ roomFinishedAt: sql`greatest(coalesce(${telehealthVideoRooms.roomFinishedAt}, ${t}), ${t})` }).where(roomKey(tenantId, appt.id));
      outboxType = 'visit.roomFinished';
      // the room is gone (everyone left, its empty timeout passed): a visit still in progress is over
      if (appt.status === 'in_progress') await transitionAppointment(scope, appt.id, 'complete');
      break;
    case 'participant_joined':
    case 'participant_left':
    case 'participant_connection_aborted': {
      const part = ev.participant;
      if (!part?.sid || !part.identity) throw badInput('the event names no participant', 'participant');
      const m = USER_IDENTITY.exec(part.identity);
      userId = m ? m[1]!.toLowerCase() : null;
      role = userId === appt.providerId ? 'provider' : userId && (await isPatientUser(db, appt, userId)) ? 'patient' : 'other';
      const joined = ev.event === 'participant_joined';
      const at = joined ? (secondsToDate(part.joinedAt) ?? t) : t;
      await db
        .insert(telehealthRoomParticipants)
        .values({ tenantId, appointmentId: appt.id, participantSid: part.sid, identity: part.identity, userId, role, joinedAt: joined ? at : null, leftAt: joined ? null : at })
        .onConflictDoUpdate({
          target: [telehealthRoomParticipants.tenantId, telehealthRoomParticipants.appointmentId, telehealthRoomParticipants.participantSid],
          set: joined
            ? { joinedAt: sql`least(coalesce(${telehealthRoomParticipants.joinedAt}, ${at}), ${at})` }
            : { leftAt: sql`greatest(coalesce(${telehealthRoomParticipants.leftAt}, ${at}), ${at})` },
        });
      outboxType = joined ? 'visit.participantJoined' : 'visit.participantLeft';
      break;
    }
    case 'egress_started':
    case 'egress_updated':
    case 'egress_ended': {
      if (!ev.egressInfo?.egressId) throw badInput('the event names no egress', 'egressInfo');
      await upsertRecording(scope, db, appt, recordingInfo(ev.egressInfo), null);
      outboxType = ev.event === 'egress_ended' ? 'visit.recordingEnded' : undefined;
      break;
    }
    default:
      // stored (so a replay stays a no-op) but not used: track events and the like
      break;
  }
  await foldRoom(db, tenantId, appt.id, t);
  if (outboxType) {
    await emitEvent(db, {
      type: outboxType,
      tenantId,
      aggregateId: appt.id,
      payload: { appointmentId: appt.id, userId, role, providerEvent: ev.event.replace(/_/g, '-') },
      rooms: appointmentRooms(appt),
    });
  }
  scope.recordPhiAccess({
    patientIds: [appt.patientId],
    resourceType: 'TelehealthVisit',
    resourceId: appt.id,
    fields: ev.event.startsWith('egress') ? ['TelehealthVisit.recordings'] : ['TelehealthVisit.attendance'],
    action: 'update',
    outcome: 'allowed',
    detail: { webhook: ev.event, eventId: ev.id },
  });
  return { ok: true, eventId: ev.id, event: ev.event, duplicate: false };
}

const roomKey = (tenantId: string, appointmentId: string) => and(eq(telehealthVideoRooms.tenantId, tenantId), eq(telehealthVideoRooms.appointmentId, appointmentId));

async function isPatientUser(db: Db, appt: Appointment, userId: string): Promise<boolean> {
  const rows = (await db.execute(sql`select 1 from patients where tenant_id = ${appt.tenantId} and id = ${appt.patientId} and user_id = ${userId}`)) as unknown as unknown[];
  return rows.length > 0;
}

/**
 * The visit's actual start (first join), end (the room finished, or the
 * last connection closed with none open) and duration, recomputed from the
 * stored rows: the same result whatever order the events came in.
 */
async function foldRoom(db: Db, tenantId: string, appointmentId: string, eventAt: Date): Promise<void> {
  const p = telehealthRoomParticipants;
  await db
    .update(telehealthVideoRooms)
    .set({
      actualStartAt: sql`(select min(${p.joinedAt}) from ${p} where ${p.tenantId} = ${tenantId} and ${p.appointmentId} = ${appointmentId})`,
      actualEndAt: sql`coalesce(${telehealthVideoRooms.roomFinishedAt},
        (select case when count(*) filter (where ${p.leftAt} is null) = 0 then max(${p.leftAt}) end from ${p} where ${p.tenantId} = ${tenantId} and ${p.appointmentId} = ${appointmentId}))`,
      lastEventAt: sql`greatest(coalesce(${telehealthVideoRooms.lastEventAt}, ${eventAt}), ${eventAt})`,
    })
    .where(roomKey(tenantId, appointmentId));
  await db
    .update(telehealthVideoRooms)
    .set({ durationSeconds: sql`case when ${telehealthVideoRooms.actualStartAt} is not null and ${telehealthVideoRooms.actualEndAt} is not null then greatest(0, extract(epoch from ${telehealthVideoRooms.actualEndAt} - ${telehealthVideoRooms.actualStartAt}))::int end` })
    .where(roomKey(tenantId, appointmentId));
}

// ------------------------------------------------------------------ recordings

/** Inserts or advances a recording (never backwards: ended stays ended whatever arrives later); the location encrypted. */
async function upsertRecording(scope: RequestScope, db: Db, appt: Appointment, info: RecordingInfo, startedBy: string | null): Promise<Recording> {
  const inst = instanceOf(scope);
  const status = (RECORDING_STATUSES as readonly string[]).includes(info.status) ? (info.status as RecordingStatus) : 'active';
  const location = info.location ? await inst.crypto.encrypt(info.location, fieldContext(telehealthRecordings, 'location', appt.tenantId)) : null;
  const r = telehealthRecordings;
  const advancing = sql`${rankSql(sql`excluded.status`)} >= ${rankSql(sql`${r.status}`)}`;
  const [row] = await db
    .insert(r)
    .values({
      tenantId: appt.tenantId,
      appointmentId: appt.id,
      egressId: info.egressId,
      status,
      location,
      startedBy,
      startedAt: new Date(info.startedAt ?? inst.now()),
      endedAt: info.endedAt ? new Date(info.endedAt) : null,
      sizeBytes: info.sizeBytes,
      durationMs: info.durationMs,
      updatedAt: new Date(inst.now()),
    })
    .onConflictDoUpdate({
      target: r.egressId,
      set: {
        status: sql`case when ${advancing} then excluded.status else ${r.status} end`,
        location: sql`coalesce(${r.location}, excluded.location)`,
        startedBy: sql`coalesce(${r.startedBy}, excluded.started_by)`,
        startedAt: sql`least(${r.startedAt}, excluded.started_at)`,
        endedAt: sql`coalesce(${r.endedAt}, excluded.ended_at)`,
        sizeBytes: sql`coalesce(excluded.size_bytes, ${r.sizeBytes})`,
        durationMs: sql`coalesce(excluded.duration_ms, ${r.durationMs})`,
        updatedAt: sql`excluded.updated_at`,
      },
      setWhere: sql`${r.tenantId} = excluded.tenant_id`,
    })
    .returning();
  if (!row) throw notFound('Recording'); // an egress id of another tenant
  return row;
}

const ACTIVE: RecordingStatus[] = ['starting', 'active', 'ending'];

/** Users connected to the visit's room right now (joined, not left). */
async function connectedUsers(db: Db, tenantId: string, appointmentId: string): Promise<RoomParticipant[]> {
  const p = telehealthRoomParticipants;
  return db.select().from(p).where(and(eq(p.tenantId, tenantId), eq(p.appointmentId, appointmentId), isNotNull(p.joinedAt), isNull(p.leftAt)));
}

/**
 * Starts recording a visit in progress: only when the patient, the provider
 * and every other user in the room consented to the current recording text.
 */
export async function startRecording(scope: RequestScope, idArg: unknown): Promise<VisitRecording> {
  const p = principalOf(scope, 'telehealth:visit:conduct');
  const appt = await authorizeAppointment(scope, idArg, 'conduct');
  if (appt.modality !== 'video' || !appt.roomName) throw new AppError(ErrorCode.BAD_USER_INPUT, 'This is not a video visit', { field: 'appointmentId', reason: 'NOT_A_VIDEO_VISIT' });
  if (appt.status !== 'in_progress') throw invalidTransition(appt.status, 'start_recording');
  const db = await scope.db();
  const [room] = await db.select().from(telehealthVideoRooms).where(roomKey(appt.tenantId, appt.id));
  if (!room || room.roomFinishedAt) throw new AppError(ErrorCode.BAD_USER_INPUT, 'The visit’s video room is not open', { field: 'appointmentId', reason: 'ROOM_NOT_OPEN' });
  const [active] = await db
    .select({ id: telehealthRecordings.id })
    .from(telehealthRecordings)
    .where(and(eq(telehealthRecordings.tenantId, appt.tenantId), eq(telehealthRecordings.appointmentId, appt.id), inArray(telehealthRecordings.status, ACTIVE)));
  if (active) throw new AppError(ErrorCode.CONFLICT, 'The visit is being recorded already', { reason: 'RECORDING_ACTIVE' });
  const others = (await connectedUsers(db, appt.tenantId, appt.id)).filter((c) => c.role === 'other' && c.userId).map((c) => c.userId!);
  await requireRecordingConsents(db, appt, others);
  const inst = instanceOf(scope);
  const info = await inst.video.startRecording(appt.roomName, `telehealth/${appt.tenantId}/${appt.id}/${randomUUID()}.mp4`);
  let row: Recording;
  try {
    row = await upsertRecording(scope, db, appt, info, p.kind === 'user' ? p.id : null);
  } catch (e) {
    await inst.video.stopRecording(info.egressId).catch(() => undefined); // nothing recorded without its row
    throw e;
  }
  await emitEvent(db, { type: 'visit.recordingStarted', tenantId: appt.tenantId, aggregateId: appt.id, payload: { appointmentId: appt.id, recordingId: row.id }, rooms: appointmentRooms(appt) });
  scope.recordPhiAccess({ patientIds: [appt.patientId], resourceType: 'TelehealthVisit', resourceId: appt.id, fields: ['TelehealthVisit.recordings'], action: 'create', outcome: 'allowed', detail: { recordingId: row.id } });
  return { ...row, patientId: appt.patientId };
}

/** Stops the visit's active recording. */
export async function stopRecording(scope: RequestScope, idArg: unknown): Promise<VisitRecording> {
  const p = principalOf(scope, 'telehealth:visit:conduct');
  const appt = await authorizeAppointment(scope, idArg, 'conduct');
  const db = await scope.db();
  const [active] = await db
    .select()
    .from(telehealthRecordings)
    .where(and(eq(telehealthRecordings.tenantId, appt.tenantId), eq(telehealthRecordings.appointmentId, appt.id), inArray(telehealthRecordings.status, ACTIVE)))
    .orderBy(desc(telehealthRecordings.startedAt))
    .limit(1);
  if (!active) throw new AppError(ErrorCode.CONFLICT, 'The visit is not being recorded', { reason: 'NO_ACTIVE_RECORDING' });
  const info = await instanceOf(scope).video.stopRecording(active.egressId);
  const row = await upsertRecording(scope, db, appt, info, null);
  await db.update(telehealthRecordings).set({ stoppedBy: p.kind === 'user' ? p.id : null }).where(eq(telehealthRecordings.id, row.id));
  await emitEvent(db, { type: 'visit.recordingStopped', tenantId: appt.tenantId, aggregateId: appt.id, payload: { appointmentId: appt.id, recordingId: row.id }, rooms: appointmentRooms(appt) });
  scope.recordPhiAccess({ patientIds: [appt.patientId], resourceType: 'TelehealthVisit', resourceId: appt.id, fields: ['TelehealthVisit.recordings'], action: 'update', outcome: 'allowed', detail: { recordingId: row.id } });
  return { ...row, stoppedBy: p.kind === 'user' ? p.id : null, patientId: appt.patientId };
}

/**
 * A recording consent was withdrawn: every active recording it covered stops at once (the visit it was limited to, or
 * every visit in progress of that patient / conducted by that user). Each stop is a visit.recordingStopped event with
 * reason consent_withdrawn and an audit entry; returns how many stopped.
 */
export async function stopRecordingsAfterWithdrawal(scope: RequestScope, db: Db, consent: Consent): Promise<number> {
  if (consent.kind !== 'recording') return 0;
  const a = telehealthAppointments;
  const covered = consent.appointmentId
    ? [eq(a.id, consent.appointmentId)]
    : [eq(a.status, 'in_progress'), consent.patientId ? eq(a.patientId, consent.patientId) : eq(a.providerId, consent.userId ?? '00000000-0000-0000-0000-000000000000')];
  const appts = await db.select().from(a).where(and(eq(a.tenantId, consent.tenantId), ...covered));
  let stopped = 0;
  for (const appt of appts) {
    const active = await db
      .select()
      .from(telehealthRecordings)
      .where(and(eq(telehealthRecordings.tenantId, appt.tenantId), eq(telehealthRecordings.appointmentId, appt.id), inArray(telehealthRecordings.status, ACTIVE)));
    for (const rec of active) {
      const info = await instanceOf(scope).video.stopRecording(rec.egressId);
      const row = await upsertRecording(scope, db, appt, info, null);
      await emitEvent(db, { type: 'visit.recordingStopped', tenantId: appt.tenantId, aggregateId: appt.id, payload: { appointmentId: appt.id, recordingId: row.id, reason: 'consent_withdrawn' }, rooms: appointmentRooms(appt) });
      scope.recordPhiAccess({ patientIds: [appt.patientId], resourceType: 'TelehealthVisit', resourceId: appt.id, fields: ['TelehealthVisit.recordings'], action: 'update', outcome: 'allowed', detail: { recordingId: row.id, reason: 'consent_withdrawn' } });
      stopped++;
    }
  }
  return stopped;
}

/** The recordings of a visit the caller may read (metadata; the location only through recordingLocation). */
export async function listRecordings(scope: RequestScope, idArg: unknown): Promise<VisitRecording[]> {
  principalOf(scope, 'telehealth:recording:read');
  const appt = await authorizeAppointment(scope, idArg, 'read');
  const db = await scope.db();
  const rows = await db
    .select()
    .from(telehealthRecordings)
    .where(and(eq(telehealthRecordings.tenantId, appt.tenantId), eq(telehealthRecordings.appointmentId, appt.id)))
    .orderBy(asc(telehealthRecordings.startedAt));
  return rows.map((r) => ({ ...r, patientId: appt.patientId }));
}

/** The provider's location of a recording's media, decrypted (audited as a read of the recording). */
export async function recordingLocation(scope: RequestScope, rec: Recording): Promise<string | null> {
  if (!rec.location) return null;
  return instanceOf(scope).crypto.decrypt(rec.location, fieldContext(telehealthRecordings, 'location', rec.tenantId));
}

/** A recording with the patient it is about (for the audit of its fields). */
export type VisitRecording = Recording & { patientId: string };

export interface VisitSession {
  appointmentId: string;
  patientId: string;
  room: VideoRoom | null;
  participants: RoomParticipant[];
}

/** What the video provider told us about a visit: the room's times and every connection. */
export async function visitSession(scope: RequestScope, idArg: unknown): Promise<VisitSession> {
  principalOf(scope, 'telehealth:appointment:read');
  const id = uuidArg(idArg, 'appointmentId');
  const appt = await authorizeAppointment(scope, id, 'read');
  const db = await scope.db();
  const [room] = await db.select().from(telehealthVideoRooms).where(roomKey(appt.tenantId, appt.id));
  const participants = await db
    .select()
    .from(telehealthRoomParticipants)
    .where(and(eq(telehealthRoomParticipants.tenantId, appt.tenantId), eq(telehealthRoomParticipants.appointmentId, appt.id)))
    .orderBy(asc(telehealthRoomParticipants.joinedAt));
  return { appointmentId: appt.id, patientId: appt.patientId, room: room ?? null, participants };
}
