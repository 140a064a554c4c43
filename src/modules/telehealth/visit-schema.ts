import type { Builder } from '../../schema/index.js';
import { getCurrentConsentText, listConsents, publishConsentText, recordConsent, withdrawConsent } from './consent.js';
import { CONSENT_KINDS, type Consent, type ConsentText } from './tables.js';

/**
 * Telehealth GraphQL, the visit side: consent texts and consents (more
 * below as the visit grows: join tokens, the waiting room, recordings).
 * Thin fields over the services; consents are PHI of the patient.
 */

const upperEnum = <T extends string>(values: readonly T[]) =>
  Object.fromEntries(values.map((v) => [v.toUpperCase(), { value: v }])) as Record<Uppercase<T>, { value: T }>;

export function registerVisitSchema(builder: Builder): void {
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
}
