import type { Builder } from '../../schema/index.js';
import { chatCursor, chatMessages, chatReads, markChatRead, recordVital, sendChatMessage, visitVitals, VITAL_KINDS, type ChatMessage, type VitalKind, type VitalSign } from './in-visit.js';

/**
 * GraphQL of the in-visit tools (thin fields over in-visit.ts): the visit chat with read receipts and the vital signs
 * captured during the visit. Messages and vitals are PHI of the visit's patient (every field read is audited).
 */
export function registerInVisitSchema(builder: Builder) {
  const VitalKindEnum = builder.enumType('VitalSignKind', {
    values: Object.fromEntries(Object.entries(VITAL_KINDS).map(([k, v]) => [k.toUpperCase(), { value: k, description: `LOINC ${v.loinc}; units: ${Object.keys(v.units).join(', ')}` }])) as unknown as Record<Uppercase<VitalKind>, { value: VitalKind; description: string }>,
  });
  const MessageRef = builder.objectRef<ChatMessage>('VisitChatMessage').implement({
    phiResource: { patientId: (m) => m.patientId, resourceType: 'VisitChatMessage' },
    fields: (t) => ({
      id: t.field({ type: 'UUID', resolve: (m) => m.id }),
      cursor: t.string({ resolve: chatCursor }),
      appointmentId: t.field({ type: 'UUID', resolve: (m) => m.appointmentId }),
      senderUserId: t.field({ type: 'UUID', resolve: (m) => m.senderUserId }),
      senderRole: t.string({ description: 'provider, patient or other', resolve: (m) => m.senderRole }),
      clientMessageId: t.string({ resolve: (m) => m.clientMessageId }),
      body: t.string({ phi: 'chat', resolve: (m) => m.body }),
      sentAt: t.field({ type: 'DateTime', resolve: (m) => m.sentAt }),
    }),
  });
  const ReadRef = builder.objectRef<{ userId: string; lastReadAt: Date }>('VisitChatRead').implement({
    fields: (t) => ({
      userId: t.field({ type: 'UUID', resolve: (r) => r.userId }),
      lastReadAt: t.field({ type: 'DateTime', resolve: (r) => r.lastReadAt }),
    }),
  });
  const VitalRef = builder.objectRef<VitalSign>('VitalSign').implement({
    phiResource: { patientId: (v) => v.patientId, resourceType: 'VitalSign' },
    fields: (t) => ({
      id: t.field({ type: 'UUID', resolve: (v) => v.id }),
      appointmentId: t.field({ type: 'UUID', resolve: (v) => v.appointmentId }),
      kind: t.field({ type: VitalKindEnum, phi: 'vitals', resolve: (v) => v.kind as VitalKind }),
      loinc: t.string({ resolve: (v) => v.loinc }),
      value: t.float({ phi: 'vitals', description: 'systolic for a blood pressure', resolve: (v) => v.value }),
      value2: t.float({ nullable: true, phi: 'vitals', description: 'diastolic for a blood pressure', resolve: (v) => v.value2 }),
      unit: t.string({ description: 'UCUM', resolve: (v) => v.unit }),
      recordedBy: t.field({ type: 'UUID', nullable: true, resolve: (v) => v.recordedBy }),
      recordedAt: t.field({ type: 'DateTime', resolve: (v) => v.recordedAt }),
    }),
  });
  const VitalInput = builder.inputType('RecordVitalSignInput', {
    fields: (t) => ({
      appointmentId: t.field({ type: 'UUID', required: true }),
      kind: t.field({ type: VitalKindEnum, required: true }),
      value: t.float({ required: true }),
      value2: t.float({ description: 'diastolic (blood pressure only)' }),
      unit: t.string({ required: true, description: 'UCUM: mm[Hg], /min, Cel, [degF], %, kg, [lb_av], cm, [in_i]' }),
    }),
  });

  builder.queryFields((t) => ({
    visitChatMessages: t.field({
      type: [MessageRef],
      description: 'the visit chat, oldest first (after: a message cursor)',
      authScopes: { permission: 'telehealth:visit:join' },
      args: { appointmentId: t.arg({ type: 'UUID', required: true }), first: t.arg.int(), after: t.arg.string() },
      resolve: (_r, args, ctx) => chatMessages(ctx, args),
    }),
    visitChatReads: t.field({
      type: [ReadRef],
      description: 'read receipts: how far each participant has read',
      authScopes: { permission: 'telehealth:visit:join' },
      args: { appointmentId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => chatReads(ctx, args),
    }),
    visitVitalSigns: t.field({
      type: [VitalRef],
      authScopes: { permission: 'telehealth:appointment:read' },
      args: { appointmentId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => visitVitals(ctx, args),
    }),
  }));
  builder.mutationFields((t) => ({
    sendVisitChatMessage: t.field({
      type: MessageRef,
      description: 'writes in the visit chat (checked in to in progress); a resend with the same clientMessageId is the same message',
      authScopes: { permission: 'telehealth:visit:join' },
      args: { appointmentId: t.arg({ type: 'UUID', required: true }), body: t.arg.string({ required: true }), clientMessageId: t.arg.string({ required: true }) },
      resolve: (_r, args, ctx) => sendChatMessage(ctx, args),
    }),
    markVisitChatRead: t.field({
      type: 'DateTime',
      description: 'marks the chat read up to now for the caller (a visit.chatRead event tells the others)',
      authScopes: { permission: 'telehealth:visit:join' },
      args: { appointmentId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => markChatRead(ctx, args),
    }),
    recordVitalSign: t.field({
      type: VitalRef,
      description: 'records a vital sign during a visit in progress (plausible ranges per unit; BAD_USER_INPUT outside them)',
      authScopes: { permission: 'telehealth:visit:conduct' },
      args: { input: t.arg({ type: VitalInput, required: true }) },
      resolve: (_r, args, ctx) => recordVital(ctx, args.input),
    }),
  }));
  return { VitalRef };
}
