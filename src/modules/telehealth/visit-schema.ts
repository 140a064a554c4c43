import type { Builder } from '../../schema/index.js';
import { getCurrentConsentText, listConsents, publishConsentText, recordConsent, withdrawConsent } from './consent.js';
import { CONSENT_KINDS, RECORDING_STATUSES, type Consent, type ConsentText, type RoomParticipant } from './tables.js';
import { joinVisit, listRecordings, recordingLocation, startRecording, stopRecording, visitSession, type VisitJoin, type VisitRecording, type VisitSession } from './video.js';

/**
 * Telehealth GraphQL, the visit side: consent texts and consents, video
 * join tokens, what the video provider reported (attendance, times) and
 * recordings. Thin fields over the services; consents, attendance and
 * recordings are PHI of the patient.
 */

const upperEnum = <T extends string>(values: readonly T[]) =>
  Object.fromEntries(values.map((v) => [v.toUpperCase(), { value: v }])) as Record<Uppercase<T>, { value: T }>;

export function registerVisitSchema(builder: Builder) {
  const KindEnum = builder.enumType('ConsentKind', { values: upperEnum(CONSENT_KINDS) });

  const ConsentTextRef = builder.objectRef<ConsentText>('ConsentText').implement({
    description: 'A version of a consent text. The highest version of a kind is the current one.',
    fields: (t) => ({
      id: t.field({ type: 'UUID', resolve: (c) => c.id }),
      kind: t.field({ type: KindEnum, resolve: (c) => c.kind }),
      version: t.exposeInt('version'),
      title: t.exposeString('title'),
      body: t.exposeString('body'),
      publishedAt: t.field({ type: 'DateTime', resolve: (c) => c.publishedAt }),
    }),
  });
  const ConsentRef = builder.objectRef<Consent>('TelehealthConsent').implement({
    description: 'A consent given (by a patient, or by a staff user for themselves). A patient’s consent is PHI.',
    phiResource: { patientId: (c) => c.patientId, resourceType: 'TelehealthConsent' },
    fields: (t) => ({
      id: t.field({ type: 'UUID', resolve: (c) => c.id }),
      kind: t.field({ type: KindEnum, resolve: (c) => c.kind }),
      version: t.exposeInt('version'),
      patientId: t.field({ type: 'UUID', nullable: true, phi: 'consent', resolve: (c) => c.patientId }),
      userId: t.field({ type: 'UUID', nullable: true, description: 'a staff user consenting for themselves', resolve: (c) => c.userId }),
      appointmentId: t.field({ type: 'UUID', nullable: true, description: 'recording consents limited to one visit', resolve: (c) => c.appointmentId }),
      onBehalf: t.exposeBoolean('onBehalf', { description: 'recorded by staff for the patient' }),
      recordedBy: t.exposeString('recordedBy'),
      ip: t.string({ nullable: true, phi: 'consent', description: 'where it was given from', resolve: (c) => c.ip }),
      userAgent: t.string({ nullable: true, phi: 'consent', resolve: (c) => c.userAgent }),
      consentedAt: t.field({ type: 'DateTime', phi: 'consent', resolve: (c) => c.consentedAt }),
      withdrawnAt: t.field({ type: 'DateTime', nullable: true, phi: 'consent', resolve: (c) => c.withdrawnAt }),
    }),
  });
  const PublishInput = builder.inputType('PublishConsentTextInput', {
    fields: (t) => ({
      kind: t.field({ type: KindEnum, required: true }),
      title: t.string({ required: true }),
      body: t.string({ required: true, description: 'the full text shown to the person consenting (20-50000 characters)' }),
    }),
  });
  const RecordInput = builder.inputType('RecordConsentInput', {
    fields: (t) => ({
      kind: t.field({ type: KindEnum, required: true }),
      version: t.int({ required: true, description: 'the version read and accepted: CONFLICT (CONSENT_VERSION_OUTDATED) unless it is the current one' }),
      patientId: t.field({ type: 'UUID', required: false, description: 'staff recording a patient’s consent; omit for your own (a PATIENT user: their record)' }),
      appointmentId: t.field({ type: 'UUID', required: false, description: 'RECORDING only: for this visit alone' }),
    }),
  });

  builder.queryFields((t) => ({
    currentConsentText: t.field({
      type: ConsentTextRef,
      description: 'The current version of a consent text (NOT_FOUND when the clinic published none)',
      authScopes: { $any: { permission: 'telehealth:consent:read', $all: { permission: 'telehealth:consent:record' } } },
      args: { kind: t.arg({ type: KindEnum, required: true }) },
      resolve: (_r, args, ctx) => getCurrentConsentText(ctx, args.kind),
    }),
    telehealthConsents: t.field({
      type: [ConsentRef],
      description: 'Consents of a patient (staff), or your own (a PATIENT user: their record’s)',
      authScopes: { permission: 'telehealth:consent:read' },
      args: { patientId: t.arg({ type: 'UUID', required: false }) },
      resolve: (_r, args, ctx) => listConsents(ctx, args),
    }),
  }));
  builder.mutationFields((t) => ({
    publishConsentText: t.field({
      type: ConsentTextRef,
      description: 'Publishes a new version (it is current at once: earlier consents no longer count)',
      authScopes: { permission: 'telehealth:settings:manage' },
      args: { input: t.arg({ type: PublishInput, required: true }) },
      resolve: (_r, args, ctx) => publishConsentText(ctx, args.input),
    }),
    recordConsent: t.field({
      type: ConsentRef,
      description: 'Records a consent to the current version with the caller’s IP and user agent',
      authScopes: { permission: 'telehealth:consent:record' },
      audit: { action: 'create', resourceType: 'TelehealthConsent', patientId: (_a, r) => r?.patientId, resourceId: (_a, r) => r?.id, fields: () => ['TelehealthConsent.kind', 'TelehealthConsent.version'] },
      args: { input: t.arg({ type: RecordInput, required: true }) },
      resolve: (_r, args, ctx) => recordConsent(ctx, args.input),
    }),
    withdrawConsent: t.field({
      type: ConsentRef,
      authScopes: { permission: 'telehealth:consent:record' },
      audit: { action: 'update', resourceType: 'TelehealthConsent', patientId: (_a, r) => r?.patientId, resourceId: (a, r) => r?.id ?? a.id, fields: () => ['TelehealthConsent.withdrawnAt'] },
      args: { id: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => withdrawConsent(ctx, args.id),
    }),
  }));

  // ---------------------------------------------------------------- video
  const RoleEnum = builder.enumType('VisitParticipantRole', { values: upperEnum(['provider', 'patient', 'other'] as const) });
  const RecordingStatusEnum = builder.enumType('RecordingStatus', { values: upperEnum(RECORDING_STATUSES) });
  const JoinRef = builder.objectRef<VisitJoin>('VisitJoin').implement({
    description: 'What a video client needs to join the visit’s room: valid for LIVEKIT_TOKEN_TTL_MINUTES, for this room and identity only',
    fields: (t) => ({
      appointmentId: t.field({ type: 'UUID', resolve: (j) => j.appointmentId }),
      role: t.field({ type: RoleEnum, resolve: (j) => j.role }),
      token: t.exposeString('token', { description: 'LiveKit access token (JWT): keep it in memory only' }),
      url: t.exposeString('url', { description: 'WebSocket URL of the video server' }),
      room: t.exposeString('room'),
      identity: t.exposeString('identity'),
      expiresAt: t.field({ type: 'DateTime', resolve: (j) => j.expiresAt }),
      provider: t.exposeString('provider', { description: 'livekit, or development (the in-repo simulator: no media)' }),
    }),
  });
  type Part = RoomParticipant & { patientId: string };
  const ParticipantRef = builder.objectRef<Part>('VisitParticipant').implement({
    phiResource: { patientId: (p) => p.patientId, resourceType: 'TelehealthVisit', resourceId: (p) => p.appointmentId },
    fields: (t) => ({
      userId: t.field({ type: 'UUID', nullable: true, resolve: (p) => p.userId }),
      role: t.field({ type: RoleEnum, resolve: (p) => p.role as 'provider' | 'patient' | 'other' }),
      joinedAt: t.field({ type: 'DateTime', nullable: true, phi: 'visit', resolve: (p) => p.joinedAt }),
      leftAt: t.field({ type: 'DateTime', nullable: true, phi: 'visit', resolve: (p) => p.leftAt }),
    }),
  });
  const SessionRef = builder.objectRef<VisitSession>('VisitSession').implement({
    description: 'What the video provider reported about the visit (webhooks, in any order)',
    phiResource: { patientId: (s) => s.patientId, resourceType: 'TelehealthVisit', resourceId: (s) => s.appointmentId },
    fields: (t) => ({
      appointmentId: t.field({ type: 'UUID', resolve: (s) => s.appointmentId }),
      roomOpenedAt: t.field({ type: 'DateTime', nullable: true, resolve: (s) => s.room?.openedAt ?? null }),
      roomFinishedAt: t.field({ type: 'DateTime', nullable: true, resolve: (s) => s.room?.roomFinishedAt ?? null }),
      actualStartAt: t.field({ type: 'DateTime', nullable: true, phi: 'visit', description: 'first participant joined', resolve: (s) => s.room?.actualStartAt ?? null }),
      actualEndAt: t.field({ type: 'DateTime', nullable: true, phi: 'visit', description: 'the room finished, or the last participant left', resolve: (s) => s.room?.actualEndAt ?? null }),
      durationSeconds: t.int({ nullable: true, phi: 'visit', resolve: (s) => s.room?.durationSeconds ?? null }),
      participants: t.field({ type: [ParticipantRef], description: 'every connection (a rejoin is another entry)', resolve: (s) => s.participants.map((p) => ({ ...p, patientId: s.patientId })) }),
    }),
  });
  const RecordingRef = builder.objectRef<VisitRecording>('VisitRecording').implement({
    description: 'A recording of a visit. The media stays with the video provider; its location is stored encrypted.',
    phiResource: { patientId: (r) => r.patientId, resourceType: 'TelehealthRecording' },
    fields: (t) => ({
      id: t.field({ type: 'UUID', resolve: (r) => r.id }),
      appointmentId: t.field({ type: 'UUID', resolve: (r) => r.appointmentId }),
      status: t.field({ type: RecordingStatusEnum, resolve: (r) => r.status }),
      startedAt: t.field({ type: 'DateTime', phi: 'visit', resolve: (r) => r.startedAt }),
      endedAt: t.field({ type: 'DateTime', nullable: true, phi: 'visit', resolve: (r) => r.endedAt }),
      durationMs: t.int({ nullable: true, resolve: (r) => r.durationMs }),
      sizeBytes: t.field({ type: 'Float', nullable: true, resolve: (r) => r.sizeBytes }),
      location: t.string({
        nullable: true,
        phi: 'visit',
        description: 'where the provider keeps the media (decrypted for telehealth:recording:read holders)',
        authScopes: { permission: 'telehealth:recording:read' },
        resolve: (r, _a, ctx) => recordingLocation(ctx, r),
      }),
    }),
  });

  builder.queryFields((t) => ({
    visitSession: t.field({
      type: SessionRef,
      authScopes: { permission: 'telehealth:appointment:read' },
      args: { appointmentId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => visitSession(ctx, args.appointmentId),
    }),
    visitRecordings: t.field({
      type: [RecordingRef],
      authScopes: { permission: 'telehealth:recording:read' },
      args: { appointmentId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => listRecordings(ctx, args.appointmentId),
    }),
  }));
  builder.mutationFields((t) => ({
    joinVisit: t.field({
      type: JoinRef,
      description: 'A video join token for your part in the visit (the provider from the waiting room on, the patient once admitted; current telehealth consent first)',
      authScopes: { permission: 'telehealth:visit:join' },
      args: { appointmentId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => joinVisit(ctx, args.appointmentId),
    }),
    startVisitRecording: t.field({
      type: RecordingRef,
      description: 'Starts recording a visit in progress: every participant’s current recording consent first (FORBIDDEN, reason CONSENT_REQUIRED)',
      authScopes: { permission: 'telehealth:visit:conduct' },
      args: { appointmentId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => startRecording(ctx, args.appointmentId),
    }),
    stopVisitRecording: t.field({
      type: RecordingRef,
      authScopes: { permission: 'telehealth:visit:conduct' },
      args: { appointmentId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => stopRecording(ctx, args.appointmentId),
    }),
  }));
  return { SessionRef };
}
