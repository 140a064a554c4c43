import type { Builder } from '../../schema/index.js';
import {
  addDeaRegistration,
  approveEpcsAccess,
  EPCS_ATTESTATION_SHA256,
  EPCS_ATTESTATION_TEXT,
  epcsActivityReport,
  epcsDailyReports,
  epcsStatus,
  revokeDeaRegistration,
  revokeEpcsAccess,
  verifyPrescriptionSignature,
  type EpcsActivity,
  type EpcsStatus,
  type SignatureCheck,
} from './epcs.js';
import type { DeaRegistration, EpcsAccess, EpcsReport } from './prescription-tables.js';

/** GraphQL of EPCS: DEA registrations, two-administrator access, the attestation, signature verification, activity reports. */
export function registerEpcsSchema(builder: Builder): void {
  const ScheduleEnum = builder.enumType('EpcsSchedule', { values: { CII: { value: 'CII' }, CIII: { value: 'CIII' }, CIV: { value: 'CIV' }, CV: { value: 'CV' } } });
  const AccessStatusEnum = builder.enumType('EpcsAccessStatus', { description: 'PENDING: one administrator approved; ACTIVE: two did; REVOKED', values: { PENDING: { value: 'pending' }, ACTIVE: { value: 'active' }, REVOKED: { value: 'revoked' } } });

  const RegistrationRef = builder.objectRef<DeaRegistration>('DeaRegistration').implement({
    fields: (t) => ({
      id: t.field({ type: 'UUID', resolve: (r) => r.id }),
      prescriberId: t.field({ type: 'UUID', resolve: (r) => r.prescriberId }),
      deaNumber: t.exposeString('deaNumber'),
      schedules: t.field({ type: [ScheduleEnum], resolve: (r) => r.schedules as ('CII' | 'CIII' | 'CIV' | 'CV')[] }),
      state: t.exposeString('state'),
      expiresOn: t.field({ type: 'Date', resolve: (r) => r.expiresOn }),
      revokedAt: t.field({ type: 'DateTime', nullable: true, resolve: (r) => r.revokedAt }),
    }),
  });
  const AccessRef = builder.objectRef<EpcsAccess>('EpcsAccess').implement({
    fields: (t) => ({
      id: t.field({ type: 'UUID', resolve: (a) => a.id }),
      prescriberId: t.field({ type: 'UUID', resolve: (a) => a.prescriberId }),
      status: t.field({ type: AccessStatusEnum, resolve: (a) => a.status }),
      firstApproverId: t.field({ type: 'UUID', resolve: (a) => a.firstApproverId }),
      firstApprovedAt: t.field({ type: 'DateTime', resolve: (a) => a.firstApprovedAt }),
      secondApproverId: t.field({ type: 'UUID', nullable: true, resolve: (a) => a.secondApproverId }),
      secondApprovedAt: t.field({ type: 'DateTime', nullable: true, resolve: (a) => a.secondApprovedAt }),
      revokedAt: t.field({ type: 'DateTime', nullable: true, resolve: (a) => a.revokedAt }),
    }),
  });
  const StatusRef = builder.objectRef<EpcsStatus>('EpcsStatus').implement({
    fields: (t) => ({
      prescriberId: t.field({ type: 'UUID', resolve: (s) => s.prescriber.id }),
      registrations: t.field({ type: [RegistrationRef], resolve: (s) => s.registrations }),
      access: t.field({ type: AccessRef, nullable: true, resolve: (s) => s.access }),
      signingKeyFingerprint: t.string({ nullable: true, description: 'sha256 of the current signing key’s public key (created at the first EPCS signature)', resolve: (s) => s.signingKeyFingerprint }),
    }),
  });
  const AttestationRef = builder.objectRef<{ text: string; sha256: string }>('EpcsAttestation').implement({
    fields: (t) => ({ text: t.exposeString('text', { description: 'show it to the prescriber at signing (21 CFR 1311.140(a)(3))' }), sha256: t.exposeString('sha256', { description: 'send it back in EpcsSignatureInput.attestationSha256' }) }),
  });
  const CheckRef = builder.objectRef<SignatureCheck>('PrescriptionSignatureCheck').implement({
    fields: (t) => ({
      valid: t.exposeBoolean('valid'),
      reason: t.exposeString('reason', { nullable: true, description: 'NOT_SIGNED, KEY_MISSING, DIGEST_MISMATCH (the signed content changed), SIGNATURE_INVALID' }),
      keyFingerprint: t.exposeString('keyFingerprint', { nullable: true }),
      signedAt: t.field({ type: 'DateTime', nullable: true, resolve: (c) => c.signedAt }),
    }),
  });
  type Entry = EpcsActivity['entries'][number];
  const EntryRef = builder.objectRef<Entry>('EpcsLogEntry').implement({
    fields: (t) => ({
      at: t.field({ type: 'DateTime', resolve: (e) => e.at }),
      event: t.exposeString('event'),
      outcome: t.exposeString('outcome'),
      prescriberId: t.field({ type: 'UUID', nullable: true, resolve: (e) => e.prescriberId }),
      actorId: t.field({ type: 'UUID', nullable: true, resolve: (e) => e.actorId }),
      prescriptionId: t.field({ type: 'UUID', nullable: true, resolve: (e) => e.prescriptionId }),
      detail: t.field({ type: 'JSON', resolve: (e) => e.detail }),
    }),
  });
  const SignedRef = builder.objectRef<EpcsActivity['signed'][number]>('EpcsSignedPrescription').implement({
    fields: (t) => ({
      prescriptionId: t.field({ type: 'UUID', resolve: (s) => s.prescriptionId }),
      prescriberId: t.field({ type: 'UUID', resolve: (s) => s.prescriberId }),
      schedule: t.string({ nullable: true, resolve: (s) => s.schedule }),
    }),
  });
  const ActivityRef = builder.objectRef<EpcsActivity>('EpcsActivityReport').implement({
    fields: (t) => ({
      day: t.field({ type: 'Date', resolve: (a) => a.day }),
      counts: t.field({ type: 'JSON', description: '{ "<event>:<outcome>": count }', resolve: (a) => a.counts }),
      signed: t.field({ type: [SignedRef], resolve: (a) => a.signed }),
      refusals: t.exposeInt('refusals'),
      entries: t.field({ type: [EntryRef], resolve: (a) => a.entries }),
    }),
  });
  const ReportRef = builder.objectRef<EpcsReport>('EpcsDailyReport').implement({
    fields: (t) => ({
      day: t.field({ type: 'Date', resolve: (r) => r.day }),
      counts: t.field({ type: 'JSON', resolve: (r) => r.counts }),
      signed: t.field({ type: [SignedRef], resolve: (r) => r.signed }),
      refusals: t.exposeInt('refusals'),
      generatedAt: t.field({ type: 'DateTime', resolve: (r) => r.generatedAt }),
    }),
  });

  const DeaInput = builder.inputType('DeaRegistrationInput', {
    fields: (t) => ({
      prescriberId: t.field({ type: 'UUID', required: true }),
      deaNumber: t.string({ required: true }),
      schedules: t.field({ type: [ScheduleEnum], required: true }),
      state: t.string({ required: true }),
      expiresOn: t.string({ required: true, description: 'YYYY-MM-DD' }),
    }),
  });

  builder.queryField('epcsAttestation', (t) =>
    t.field({ type: AttestationRef, authScopes: { permission: 'rx:prescription:sign' }, resolve: () => ({ text: EPCS_ATTESTATION_TEXT, sha256: EPCS_ATTESTATION_SHA256 }) }),
  );
  builder.queryField('epcsStatus', (t) =>
    t.field({ type: StatusRef, description: 'the prescriber themself, EPCS approvers and reviewers', authScopes: { permission: 'rx:pharmacy:read' }, args: { prescriberId: t.arg({ type: 'UUID', required: true }) }, resolve: (_r, args, ctx) => epcsStatus(ctx, args.prescriberId) }),
  );
  builder.queryField('verifyPrescriptionSignature', (t) =>
    t.field({ type: CheckRef, authScopes: { permission: 'rx:prescription:read' }, args: { id: t.arg({ type: 'UUID', required: true }) }, resolve: (_r, args, ctx) => verifyPrescriptionSignature(ctx, args.id) }),
  );
  builder.queryField('epcsActivityReport', (t) =>
    t.field({ type: ActivityRef, description: 'EPCS activity of one UTC day (live)', authScopes: { permission: 'rx:epcs:report' }, args: { day: t.arg.string({ required: true }) }, resolve: (_r, args, ctx) => epcsActivityReport(ctx, args.day) }),
  );
  builder.queryField('epcsDailyReports', (t) =>
    t.field({ type: [ReportRef], description: 'the stored daily reports (generated at 00:05 UTC for the day before)', authScopes: { permission: 'rx:epcs:report' }, args: { from: t.arg.string({ required: true }), to: t.arg.string({ required: true }) }, resolve: (_r, args, ctx) => epcsDailyReports(ctx, args.from, args.to) }),
  );
  builder.mutationField('addDeaRegistration', (t) =>
    t.field({ type: RegistrationRef, authScopes: { permission: 'rx:prescriber:manage' }, args: { input: t.arg({ type: DeaInput, required: true }) }, resolve: (_r, args, ctx) => addDeaRegistration(ctx, args.input) }),
  );
  builder.mutationField('revokeDeaRegistration', (t) =>
    t.field({ type: RegistrationRef, authScopes: { permission: 'rx:prescriber:manage' }, args: { id: t.arg({ type: 'UUID', required: true }) }, resolve: (_r, args, ctx) => revokeDeaRegistration(ctx, args.id) }),
  );
  builder.mutationField('approveEpcsAccess', (t) =>
    t.field({
      type: AccessRef,
      description: 'one administrator’s approval; a second, different administrator activates the access',
      authScopes: { permission: 'rx:epcs:approve' },
      args: { prescriberId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => approveEpcsAccess(ctx, args.prescriberId),
    }),
  );
  builder.mutationField('revokeEpcsAccess', (t) =>
    t.field({ type: AccessRef, authScopes: { permission: 'rx:epcs:approve' }, args: { prescriberId: t.arg({ type: 'UUID', required: true }) }, resolve: (_r, args, ctx) => revokeEpcsAccess(ctx, args.prescriberId) }),
  );
}
