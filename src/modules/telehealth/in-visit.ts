import { and, asc, eq, sql } from 'drizzle-orm';
import { fieldContext } from '../../platform/crypto/index.js';
import { badInput } from '../../platform/errors.js';
import { emitEvent } from '../../platform/jobs/index.js';
import type { RequestScope } from '../../platform/scope/index.js';
import { authorizeAppointment } from './appointments.js';
import { intArg } from '../../platform/args.js';
import { instanceOf, participantRole, principalOf, textArg, visitNotOpen } from './common.js';
import { telehealthChatMessages, telehealthChatReads, telehealthVitals } from './tables.js';

/**
 * In-visit tools: the visit's chat (participants only, stored encrypted, idempotent by the client's message id, read
 * receipts) and vital signs (recorded by whoever conducts the visit, validated against plausible ranges, with LOINC
 * codes). Times are the database's wall clock (messages and vitals order by it). Each change is an outbox event to the visit's room `visit:<appointmentId>` carrying ids only (the
 * participants fetch the content over GraphQL, where every read is audited).
 */

/** Statuses in which the visit's chat is open for new messages. */
const CHAT_OPEN = new Set(['checked_in', 'waiting', 'in_progress']);

export interface ChatMessage {
  id: string;
  appointmentId: string;
  patientId: string;
  senderUserId: string;
  senderRole: string;
  clientMessageId: string;
  body: string;
  sentAt: Date;
}

const bodyContext = (tenantId: string) => fieldContext(telehealthChatMessages, 'body', tenantId);

export async function sendChatMessage(scope: RequestScope, args: { appointmentId: unknown; body: unknown; clientMessageId: unknown }): Promise<ChatMessage> {
  const appt = await authorizeAppointment(scope, args.appointmentId, 'join');
  const p = principalOf(scope);
  if (p.kind !== 'user') throw badInput('Only a participant may write in the visit chat', 'appointmentId');
  const body = textArg(args.body, 'body', { max: 4000 })!;
  const clientMessageId = textArg(args.clientMessageId, 'clientMessageId', { max: 100 })!;
  const db = await scope.db();
  const inst = instanceOf(scope);
  const existing = async () =>
    (
      await db
        .select()
        .from(telehealthChatMessages)
        .where(and(eq(telehealthChatMessages.tenantId, appt.tenantId), eq(telehealthChatMessages.appointmentId, appt.id), eq(telehealthChatMessages.senderUserId, p.id), eq(telehealthChatMessages.clientMessageId, clientMessageId)))
    )[0];
  // a resend of the same client message id is the same message (nothing new stored or announced)
  const before = await existing();
  if (before) return { ...before, patientId: appt.patientId, body: await inst.crypto.decrypt(before.body, bodyContext(appt.tenantId)) };
  if (!CHAT_OPEN.has(appt.status)) throw visitNotOpen('chat', appt.status);
  const [row] = await db
    .insert(telehealthChatMessages)
    .values({ tenantId: appt.tenantId, appointmentId: appt.id, senderUserId: p.id, senderRole: participantRole(scope, appt), clientMessageId, body: await inst.crypto.encrypt(body, bodyContext(appt.tenantId)) })
    .onConflictDoNothing()
    .returning();
  // a concurrent resend won the insert: answer with the stored message
  const stored = row ?? (await existing())!;
  if (row) {
    await emitEvent(db, {
      type: 'visit.chatMessage',
      tenantId: appt.tenantId,
      aggregateId: appt.id,
      payload: { appointmentId: appt.id, messageId: row.id, senderUserId: p.id, senderRole: row.senderRole, sentAt: row.sentAt.getTime() },
      rooms: [`visit:${appt.id}`],
    });
  }
  return { ...stored, patientId: appt.patientId, body };
}

export async function chatMessages(scope: RequestScope, args: { appointmentId: unknown; first?: unknown; after?: unknown }): Promise<ChatMessage[]> {
  const appt = await authorizeAppointment(scope, args.appointmentId, 'join');
  const first = intArg(args.first, 'first', 1, 200, true) ?? 100;
  const conds = [eq(telehealthChatMessages.tenantId, appt.tenantId), eq(telehealthChatMessages.appointmentId, appt.id)];
  const db = await scope.db();
  if (args.after !== undefined && args.after !== null) {
    // the cursor is a message id of this visit; the order is (sent_at, id) at the database's precision
    if (typeof args.after !== 'string' || !/^[0-9a-f-]{36}$/.test(args.after)) throw badInput('after is not a cursor of this chat', 'after');
    const [known] = await db.select({ id: telehealthChatMessages.id }).from(telehealthChatMessages).where(and(eq(telehealthChatMessages.tenantId, appt.tenantId), eq(telehealthChatMessages.appointmentId, appt.id), eq(telehealthChatMessages.id, args.after)));
    if (!known) throw badInput('after is not a cursor of this chat', 'after');
    conds.push(sql`(${telehealthChatMessages.sentAt}, ${telehealthChatMessages.id}) > (select m.sent_at, m.id from telehealth_chat_messages m where m.id = ${args.after})`);
  }
  const rows = await db.select().from(telehealthChatMessages).where(and(...conds)).orderBy(asc(telehealthChatMessages.sentAt), asc(telehealthChatMessages.id)).limit(first);
  const inst = instanceOf(scope);
  return Promise.all(rows.map(async (r) => ({ ...r, patientId: appt.patientId, body: await inst.crypto.decrypt(r.body, bodyContext(appt.tenantId)) })));
}

export const chatCursor = (m: ChatMessage) => m.id;

/** Marks the chat read up to now for the caller (moves forward only); a visit.chatRead event tells the others. */
export async function markChatRead(scope: RequestScope, args: { appointmentId: unknown }): Promise<Date> {
  const appt = await authorizeAppointment(scope, args.appointmentId, 'join');
  const p = principalOf(scope);
  if (p.kind !== 'user') throw badInput('Only a participant has read receipts', 'appointmentId');
  const db = await scope.db();
  // wall-clock time, like the messages' sentAt (the database's, so the two compare)
  const [{ now }] = (await db.execute(sql`select now() as now`)) as unknown as [{ now: Date | string }];
  const readAt = new Date(now);
  await db
    .insert(telehealthChatReads)
    .values({ tenantId: appt.tenantId, appointmentId: appt.id, userId: p.id, lastReadAt: readAt })
    .onConflictDoUpdate({ target: [telehealthChatReads.tenantId, telehealthChatReads.appointmentId, telehealthChatReads.userId], set: { lastReadAt: sql`greatest(${telehealthChatReads.lastReadAt}, excluded.last_read_at)` } });
  await emitEvent(db, { type: 'visit.chatRead', tenantId: appt.tenantId, aggregateId: appt.id, payload: { appointmentId: appt.id, userId: p.id, lastReadAt: readAt.getTime() }, rooms: [`visit:${appt.id}`] });
  return readAt;
}

export async function chatReads(scope: RequestScope, args: { appointmentId: unknown }): Promise<{ userId: string; lastReadAt: Date }[]> {
  const appt = await authorizeAppointment(scope, args.appointmentId, 'join');
  const db = await scope.db();
  return db
    .select({ userId: telehealthChatReads.userId, lastReadAt: telehealthChatReads.lastReadAt })
    .from(telehealthChatReads)
    .where(and(eq(telehealthChatReads.tenantId, appt.tenantId), eq(telehealthChatReads.appointmentId, appt.id)))
    .orderBy(asc(telehealthChatReads.userId));
}

// ------------------------------------------------------------------ vital signs

/** Each kind: its LOINC code, the units accepted and the plausible range in each (outside: BAD_USER_INPUT). */
export const VITAL_KINDS = {
  blood_pressure: { loinc: '85354-9', units: { 'mm[Hg]': [50, 260] }, second: [30, 160] as [number, number] },
  heart_rate: { loinc: '8867-4', units: { '/min': [20, 250] } },
  temperature: { loinc: '8310-5', units: { Cel: [30, 45], '[degF]': [86, 113] } },
  spo2: { loinc: '59408-5', units: { '%': [50, 100] } },
  respiratory_rate: { loinc: '9279-1', units: { '/min': [4, 60] } },
  weight: { loinc: '29463-7', units: { kg: [0.5, 400], '[lb_av]': [1, 900] } },
  height: { loinc: '8302-2', units: { cm: [30, 250], '[in_i]': [12, 100] } },
} as const satisfies Record<string, { loinc: string; units: Record<string, readonly [number, number]>; second?: [number, number] }>;
export type VitalKind = keyof typeof VITAL_KINDS;

export type VitalSign = typeof telehealthVitals.$inferSelect;

export async function recordVital(scope: RequestScope, input: { appointmentId: unknown; kind: unknown; value: unknown; value2?: unknown; unit: unknown }): Promise<VitalSign> {
  const appt = await authorizeAppointment(scope, input.appointmentId, 'conduct');
  const kind = typeof input.kind === 'string' && input.kind in VITAL_KINDS ? (input.kind as VitalKind) : null;
  if (!kind) throw badInput(`kind must be one of ${Object.keys(VITAL_KINDS).join(', ')}`, 'kind');
  const spec = VITAL_KINDS[kind];
  const units = spec.units as Record<string, readonly [number, number]>;
  if (typeof input.unit !== 'string' || !units[input.unit]) throw badInput(`unit for ${kind} must be one of ${Object.keys(units).join(', ')}`, 'unit');
  const [lo, hi] = units[input.unit]!;
  const inRange = (v: unknown, range: readonly [number, number]) => typeof v === 'number' && Number.isFinite(v) && v >= range[0] && v <= range[1];
  if (!inRange(input.value, [lo, hi])) throw badInput(`value is outside the plausible range for ${kind} (${lo} to ${hi} ${input.unit})`, 'value');
  let value2: number | null = null;
  if ('second' in spec) {
    if (!inRange(input.value2, spec.second)) throw badInput(`value2 (diastolic) is required, ${spec.second[0]} to ${spec.second[1]} ${input.unit}`, 'value2');
    if ((input.value2 as number) >= (input.value as number)) throw badInput('value2 (diastolic) must be below value (systolic)', 'value2');
    value2 = input.value2 as number;
  } else if (input.value2 !== undefined && input.value2 !== null) throw badInput(`value2 is only for blood_pressure`, 'value2');
  if (appt.status !== 'in_progress') throw visitNotOpen('vital signs', appt.status);
  const p = principalOf(scope);
  const db = await scope.db();
  const [row] = await db
    .insert(telehealthVitals)
    .values({ tenantId: appt.tenantId, appointmentId: appt.id, patientId: appt.patientId, kind, loinc: spec.loinc, value: input.value as number, value2, unit: input.unit, recordedBy: p.kind === 'user' ? p.id : null })
    .returning();
  await emitEvent(db, { type: 'visit.vitalRecorded', tenantId: appt.tenantId, aggregateId: appt.id, payload: { appointmentId: appt.id, vitalId: row!.id, kind }, rooms: [`visit:${appt.id}`] });
  return row!;
}

export async function visitVitals(scope: RequestScope, args: { appointmentId: unknown }): Promise<VitalSign[]> {
  const appt = await authorizeAppointment(scope, args.appointmentId, 'read');
  const db = await scope.db();
  return db
    .select()
    .from(telehealthVitals)
    .where(and(eq(telehealthVitals.tenantId, appt.tenantId), eq(telehealthVitals.appointmentId, appt.id)))
    .orderBy(asc(telehealthVitals.recordedAt), asc(telehealthVitals.id));
}
