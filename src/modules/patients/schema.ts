import { selectedFields, type Builder, type RequestContext } from '../../schema/index.js';
import { badInput } from '../../platform/errors.js';
import { MASK_FIELDS, maskEmail, maskPhone, maskPostalCode, maskSsn, type MaskField, type MaskLevel } from './policy.js';
import { encodeCursor, searchPatients, type PatientSearchInput } from './search.js';
import {
  assignCareTeamMember,
  careTeamOf,
  createPatient,
  getPatient,
  linkPatientUser,
  mergePatients,
  myPatientRecord,
  removeCareTeamMember,
  revealSsn,
  ssnLast4Of,
  SSN_REVEAL_PURPOSES,
  updatePatient,
  type CareTeamMember,
  type CreatePatientInput,
  type MergeResult,
  type PatientsRuntime,
  type PatientView,
  type SsnReveal,
  type UpdatePatientInput,
} from './service.js';
import { CARE_TEAM_ROLES, PATIENT_STATUSES, PHONE_USES, SEX_AT_BIRTH, type EmergencyContact, type InsuranceCoverage, type PatientAddress, type PatientPhone } from './tables.js';

const upperEnum = <T extends string>(values: readonly T[]) =>
  Object.fromEntries(values.map((v) => [v.toUpperCase(), { value: v }])) as Record<Uppercase<T>, { value: T }>;

type Runtime = (ctx: RequestContext) => PatientsRuntime;

/** Patients GraphQL: thin resolvers over service.ts / search.ts; PHI fields marked for the audit log. */
export function registerPatientsSchema(builder: Builder, runtime: Runtime) {
  const PatientStatusEnum = builder.enumType('PatientStatus', { values: upperEnum(PATIENT_STATUSES) });
  const SexAtBirthEnum = builder.enumType('SexAtBirth', { values: upperEnum(SEX_AT_BIRTH) });
  const PhoneUseEnum = builder.enumType('PhoneUse', { values: upperEnum(PHONE_USES) });
  const CareTeamRoleEnum = builder.enumType('CareTeamRole', { values: upperEnum(CARE_TEAM_ROLES) });
  const MaskLevelEnum = builder.enumType('MaskLevel', {
    description: 'How much of a field group the caller sees (the patients masking policy, by role).',
    values: upperEnum(['full', 'partial', 'hidden'] as const),
  });
  const SsnRevealPurposeEnum = builder.enumType('SsnRevealPurpose', {
    description: 'Purposes of use (HL7 v3) for which a full SSN may be revealed.',
    values: SSN_REVEAL_PURPOSES,
  });

  const Phone = builder.objectRef<PatientPhone>('PatientPhone').implement({
    fields: (t) => ({
      use: t.field({ type: PhoneUseEnum, resolve: (p) => p.use }),
      number: t.exposeString('number', { description: 'E.164; masked (***-***-1234) when the caller sees contact details partially' }),
    }),
  });
  type MaskedAddress = Omit<PatientAddress, 'line1'> & { line1: string | null };
  const Address = builder.objectRef<MaskedAddress>('PatientAddress').implement({
    fields: (t) => ({
      line1: t.string({ nullable: true, resolve: (a) => a.line1 }),
      line2: t.string({ nullable: true, resolve: (a) => a.line2 ?? null }),
      city: t.exposeString('city'),
      state: t.string({ nullable: true, resolve: (a) => a.state ?? null }),
      postalCode: t.exposeString('postalCode'),
      country: t.exposeString('country'),
    }),
  });
  type MaskedContact = Omit<EmergencyContact, 'phone'> & { phone: string | null };
  const Emergency = builder.objectRef<MaskedContact>('EmergencyContact').implement({
    fields: (t) => ({
      name: t.exposeString('name'),
      relationship: t.exposeString('relationship'),
      phone: t.string({ nullable: true, resolve: (c) => c.phone }),
    }),
  });
  type MaskedInsurance = Omit<InsuranceCoverage, 'memberId'> & { memberId: string | null };
  const Insurance = builder.objectRef<MaskedInsurance>('InsuranceCoverage').implement({
    fields: (t) => ({
      payerName: t.exposeString('payerName'),
      planName: t.string({ nullable: true, resolve: (i) => i.planName ?? null }),
      memberId: t.string({ nullable: true, resolve: (i) => i.memberId }),
      groupNumber: t.string({ nullable: true, resolve: (i) => i.groupNumber ?? null }),
      subscriberRelationship: t.string({ nullable: true, resolve: (i) => i.subscriberRelationship ?? null }),
      effectiveDate: t.field({ type: 'Date', nullable: true, resolve: (i) => i.effectiveDate ?? null }),
      expirationDate: t.field({ type: 'Date', nullable: true, resolve: (i) => i.expirationDate ?? null }),
    }),
  });
  const FieldMask = builder.objectRef<{ field: MaskField; level: MaskLevel }>('PatientFieldMask').implement({
    fields: (t) => ({
      field: t.exposeString('field', { description: `one of: ${Object.keys(MASK_FIELDS).join(', ')}` }),
      level: t.field({ type: MaskLevelEnum, resolve: (m) => m.level }),
    }),
  });
  const CareTeamMemberRef = builder.objectRef<CareTeamMember>('CareTeamMember').implement({
    fields: (t) => ({
      userId: t.field({ type: 'UUID', resolve: (m) => m.userId }),
      displayName: t.exposeString('displayName'),
      role: t.field({ type: CareTeamRoleEnum, resolve: (m) => m.role }),
      addedAt: t.field({ type: 'DateTime', resolve: (m) => m.addedAt }),
    }),
  });

  const level = (v: PatientView, f: MaskField) => v.mask[f];
  const Patient = builder.objectRef<PatientView>('Patient').implement({
    description: 'A patient record, masked for the caller by the policy table of the patients module (see `masking`).',
    phiResource: { patientId: (v) => v.row.id, resourceType: 'Patient', resourceId: (v) => v.row.id },
    fields: (t) => ({
      id: t.field({ type: 'UUID', resolve: (v) => v.row.id }),
      mrn: t.string({ phi: 'identity', description: 'medical record number (8+ digits, Luhn check digit)', resolve: (v) => v.row.mrn }),
      givenName: t.string({ phi: 'demographics', resolve: (v) => v.row.givenName }),
      familyName: t.string({ phi: 'demographics', resolve: (v) => v.row.familyName }),
      preferredName: t.string({ phi: 'demographics', nullable: true, resolve: (v) => v.row.preferredName }),
      dateOfBirth: t.field({ type: 'Date', phi: 'demographics', nullable: true, description: 'null when masked (see birthYear)', resolve: (v) => (level(v, 'dateOfBirth') === 'full' ? v.row.dateOfBirth : null) }),
      birthYear: t.int({ phi: 'demographics', nullable: true, resolve: (v) => (level(v, 'dateOfBirth') === 'hidden' ? null : Number(v.row.dateOfBirth.slice(0, 4))) }),
      sexAtBirth: t.field({ type: SexAtBirthEnum, phi: 'demographics', nullable: true, resolve: (v) => (level(v, 'sexAtBirth') === 'full' ? v.row.sexAtBirth : null) }),
      genderIdentity: t.string({ phi: 'demographics', nullable: true, resolve: (v) => (level(v, 'genderIdentity') === 'full' ? v.row.genderIdentity : null) }),
      email: t.string({
        phi: 'contact',
        nullable: true,
        resolve: (v) => {
          const l = level(v, 'contact');
          return !v.row.email || l === 'hidden' ? null : l === 'full' ? v.row.email : maskEmail(v.row.email);
        },
      }),
      phones: t.field({
        type: [Phone],
        phi: 'contact',
        resolve: (v) => {
          const l = level(v, 'contact');
          return l === 'hidden' ? [] : l === 'full' ? v.row.phones : v.row.phones.map((p) => ({ use: p.use, number: maskPhone(p.number) }));
        },
      }),
      address: t.field({
        type: Address,
        phi: 'contact',
        nullable: true,
        resolve: (v) => {
          const a = v.row.address;
          const l = level(v, 'address');
          if (!a || l === 'hidden') return null;
          return l === 'full' ? a : { line1: null, line2: null, city: a.city, state: a.state ?? null, postalCode: maskPostalCode(a.postalCode), country: a.country };
        },
      }),
      language: t.string({ phi: 'demographics', nullable: true, resolve: (v) => v.row.language }),
      emergencyContact: t.field({
        type: Emergency,
        phi: 'contact',
        nullable: true,
        resolve: (v) => {
          const c = v.row.emergencyContact;
          const l = level(v, 'emergencyContact');
          if (!c || l === 'hidden') return null;
          return l === 'full' ? c : { name: c.name, relationship: c.relationship, phone: null };
        },
      }),
      insurance: t.field({
        type: Insurance,
        phi: 'billing',
        nullable: true,
        resolve: (v) => {
          const i = v.row.insurance;
          const l = level(v, 'insurance');
          if (!i || l === 'hidden') return null;
          return l === 'full' ? i : { payerName: i.payerName, planName: i.planName ?? null, memberId: null, groupNumber: null };
        },
      }),
      hasSsn: t.boolean({ phi: 'ssn', nullable: true, description: 'null when the caller may not see SSN information', resolve: (v) => (level(v, 'ssn') === 'hidden' ? null : v.row.hasSsn) }),
      ssnLast4: t.string({
        phi: 'ssn',
        nullable: true,
        description: 'last 4 digits (stored encrypted on their own; the full SSN is not decrypted for this)',
        resolve: (v, _a, ctx) => (level(v, 'ssn') === 'hidden' ? null : ssnLast4Of(runtime(ctx), v)),
      }),
      ssnMasked: t.string({
        phi: 'ssn',
        nullable: true,
        description: '***-**-NNNN; the full SSN only through revealPatientSsn',
        resolve: async (v, _a, ctx) => {
          if (level(v, 'ssn') === 'hidden') return null;
          const last4 = await ssnLast4Of(runtime(ctx), v);
          return last4 ? maskSsn(last4) : null;
        },
      }),
      status: t.field({ type: PatientStatusEnum, phi: 'demographics', resolve: (v) => v.row.status }),
      deceasedDate: t.field({ type: 'Date', phi: 'demographics', nullable: true, resolve: (v) => v.row.deceasedDate }),
      mergedInto: t.field({ type: 'UUID', nullable: true, description: 'the record this one was merged into (status MERGED)', resolve: (v) => v.row.mergedInto }),
      linkedUserId: t.field({ type: 'UUID', phi: 'identity', nullable: true, description: 'the PATIENT user account that may read this record', resolve: (v) => v.row.userId }),
      careTeam: t.loadableList({
        type: CareTeamMemberRef,
        phi: 'demographics',
        resolve: (v) => v.row.id,
        load: async (ids: string[], ctx: RequestContext) => {
          const tenantId = ctx.principal!.tenantId;
          const members = await careTeamOf(await ctx.db(), tenantId, ids);
          return ids.map((id) => members.filter((m) => m.patientId === id));
        },
      }),
      version: t.int({ description: 'pass it back to updatePatient (optimistic concurrency)', resolve: (v) => v.row.version }),
      createdAt: t.field({ type: 'DateTime', resolve: (v) => v.row.createdAt }),
      updatedAt: t.field({ type: 'DateTime', resolve: (v) => v.row.updatedAt }),
      masking: t.field({
        type: [FieldMask],
        description: 'what the caller sees of each field group',
        resolve: (v) => (Object.keys(MASK_FIELDS) as MaskField[]).map((field) => ({ field, level: v.mask[field] })),
      }),
    }),
  });

  const SsnRevealRef = builder.objectRef<SsnReveal>('SsnReveal').implement({
    fields: (t) => ({
      revealId: t.field({ type: 'UUID', resolve: (r) => r.revealId }),
      patientId: t.field({ type: 'UUID', resolve: (r) => r.patientId }),
      ssn: t.exposeString('ssn', { description: 'NNN-NN-NNNN: do not store it client-side' }),
      revealedAt: t.field({ type: 'DateTime', resolve: (r) => r.revealedAt }),
    }),
  });
  const MergeResultRef = builder.objectRef<MergeResult>('MergePatientsResult').implement({
    fields: (t) => ({
      patient: t.field({ type: Patient, description: 'the record that stays', resolve: (r) => r.target }),
      mergedPatientId: t.field({ type: 'UUID', resolve: (r) => r.sourceId }),
      mergeId: t.field({ type: 'UUID', resolve: (r) => r.mergeId }),
    }),
  });

  // ---- inputs: dates, e-mail, phones and the SSN are strings validated by the service (errors name the field)
  const PhoneInput = builder.inputType('PatientPhoneInput', {
    fields: (t) => ({
      use: t.field({ type: PhoneUseEnum, required: false, defaultValue: 'mobile' }),
      number: t.string({ required: true, description: 'E.164 (+15551234567) or a 10-digit US number' }),
    }),
  });
  const AddressInput = builder.inputType('PatientAddressInput', {
    fields: (t) => ({
      line1: t.string({ required: true }),
      line2: t.string({ required: false }),
      city: t.string({ required: true }),
      state: t.string({ required: false }),
      postalCode: t.string({ required: true }),
      country: t.string({ required: false, defaultValue: 'US', description: 'ISO 3166-1 alpha-2' }),
    }),
  });
  const EmergencyInput = builder.inputType('EmergencyContactInput', {
    fields: (t) => ({
      name: t.string({ required: true }),
      relationship: t.string({ required: true }),
      phone: t.string({ required: true }),
    }),
  });
  const InsuranceInput = builder.inputType('InsuranceCoverageInput', {
    fields: (t) => ({
      payerName: t.string({ required: true }),
      planName: t.string({ required: false }),
      memberId: t.string({ required: true }),
      groupNumber: t.string({ required: false }),
      subscriberRelationship: t.string({ required: false }),
      effectiveDate: t.string({ required: false, description: 'YYYY-MM-DD' }),
      expirationDate: t.string({ required: false, description: 'YYYY-MM-DD' }),
    }),
  });
  const common = (t: Parameters<Parameters<typeof builder.inputType>[1]['fields']>[0]) => ({
    preferredName: t.string({ required: false }),
    sexAtBirth: t.field({ type: SexAtBirthEnum, required: false }),
    genderIdentity: t.string({ required: false }),
    email: t.string({ required: false }),
    phones: t.field({ type: [PhoneInput], required: false }),
    address: t.field({ type: AddressInput, required: false }),
    language: t.string({ required: false, description: 'BCP 47, e.g. en, es-MX' }),
    emergencyContact: t.field({ type: EmergencyInput, required: false }),
    insurance: t.field({ type: InsuranceInput, required: false }),
    ssn: t.string({ required: false, description: 'NNN-NN-NNNN or 9 digits; stored encrypted, never returned in full' }),
  });
  const CreateInput = builder.inputType('CreatePatientInput', {
    fields: (t) => ({
      givenName: t.string({ required: true }),
      familyName: t.string({ required: true }),
      dateOfBirth: t.string({ required: true, description: 'YYYY-MM-DD' }),
      ...common(t),
      duplicateOverrideReason: t.string({
        required: false,
        description:
          'Register anyway although a patient of the clinic has the same SSN (CONFLICT, extensions.reason POSSIBLE_DUPLICATE otherwise): why, in at least 10 characters. Kept for compliance and audited; merge the records later with mergePatients if they are the same person.',
      }),
    }),
  });
  const UpdateInput = builder.inputType('UpdatePatientInput', {
    description: 'Only the fields given change; null clears a field.',
    fields: (t) => ({
      givenName: t.string({ required: false }),
      familyName: t.string({ required: false }),
      dateOfBirth: t.string({ required: false, description: 'YYYY-MM-DD' }),
      ...common(t),
      status: t.field({ type: PatientStatusEnum, required: false, description: 'ACTIVE, INACTIVE or DECEASED (MERGED only through mergePatients)' }),
      deceasedDate: t.string({ required: false, description: 'YYYY-MM-DD, with status DECEASED' }),
    }),
  });
  const SearchInput = builder.inputType('PatientSearchInput', {
    description: 'All given filters must match. Name filters are prefix, case- and accent-insensitive; the others exact.',
    fields: (t) => ({
      name: t.string({ required: false, description: '"Family, Given" prefixes, or a family name prefix' }),
      familyName: t.string({ required: false }),
      givenName: t.string({ required: false }),
      dateOfBirth: t.string({ required: false, description: 'YYYY-MM-DD' }),
      mrn: t.string({ required: false }),
      phone: t.string({ required: false, description: 'any format; compared as E.164' }),
      ssn: t.string({ required: false, description: 'exact match through the blind index' }),
      includeInactive: t.boolean({ required: false, defaultValue: true }),
      includeMerged: t.boolean({ required: false, defaultValue: false }),
    }),
  });
  const MergeInput = builder.inputType('MergePatientsInput', {
    fields: (t) => ({
      sourceId: t.field({ type: 'UUID', required: true, description: 'the duplicate: becomes MERGED' }),
      targetId: t.field({ type: 'UUID', required: true, description: 'the record that stays' }),
      sourceVersion: t.int({ required: true }),
      targetVersion: t.int({ required: true }),
      reason: t.string({ required: false, description: 'why the records are the same person (at least 10 characters); kept for compliance, never logged' }),
    }),
  });

  const keysOf = (o: object | null | undefined) => Object.entries(o ?? {}).filter(([, v]) => v !== null && v !== undefined).map(([k]) => k);

  // ---------------------------------------------------------------- queries
  builder.queryFields((t) => ({
    patient: t.field({
      type: Patient,
      nullable: true,
      authScopes: { permission: 'patient:read' },
      audit: { action: 'read', resourceType: 'Patient', patientId: (args) => args.id, resourceId: (args) => args.id, fields: () => [] },
      args: { id: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx, info) => getPatient(ctx, args.id, selectedFields(info, [])),
    }),
    myPatientRecord: t.field({
      type: Patient,
      nullable: true,
      description: 'The record linked to the signed-in PATIENT user (null when none).',
      authScopes: { permission: 'patient:read' },
      audit: { action: 'read', resourceType: 'Patient', fields: () => [] },
      resolve: (_r, _a, ctx) => myPatientRecord(ctx),
    }),
    patients: t.connection(
      {
        type: Patient,
        description: 'Search patients the caller may read, ordered by family name, given name (keyset pagination: first/after).',
        authScopes: { permission: 'patient:read' },
        // every search is logged with the names (not values) of its filters, e.g. Patient.ssn
        audit: { action: 'read', resourceType: 'Patient', logSuccess: true, fields: (args) => keysOf(args.filter as object).filter((k) => !k.startsWith('include')) },
        args: { filter: t.arg({ type: SearchInput, required: false }) },
        resolve: async (_r, args, ctx, info) => {
          if (args.last !== undefined && args.last !== null) throw badInput('only forward pagination (first/after) is supported', 'last');
          if (args.before) throw badInput('only forward pagination (first/after) is supported', 'before');
          const fields = selectedFields(info, ['edges', 'node']);
          const page = await searchPatients(runtime(ctx), ctx, (args.filter ?? {}) as PatientSearchInput, { first: args.first, after: args.after }, fields);
          return {
            edges: page.nodes.map((node) => ({ cursor: encodeCursor(page.order, node.row.id), node })),
            pageInfo: { hasNextPage: page.hasNextPage, hasPreviousPage: !!args.after, startCursor: page.nodes[0] ? encodeCursor(page.order, page.nodes[0].row.id) : null, endCursor: page.endCursor },
          };
        },
      },
      { name: 'PatientConnection' },
      { name: 'PatientEdge' },
    ),
  }));

  // ---------------------------------------------------------------- mutations
  builder.mutationFields((t) => ({
    createPatient: t.field({
      type: Patient,
      authScopes: { permission: 'patient:write' },
      audit: {
        action: 'create',
        resourceType: 'Patient',
        patientId: (_a, r) => r?.row.id,
        resourceId: (_a, r) => r?.row.id,
        // an overridden duplicate warning is part of the record of the create (ids only; the reason stays in patient_duplicate_overrides)
        detail: (_a, r): Record<string, string | boolean> => (r?.duplicateOf ? { duplicateOverride: true, possibleDuplicateOf: r.duplicateOf } : {}),
      },
      args: { input: t.arg({ type: CreateInput, required: true }) },
      resolve: (_r, args, ctx) => createPatient(runtime(ctx), ctx, args.input as CreatePatientInput),
    }),
    updatePatient: t.field({
      type: Patient,
      authScopes: { permission: 'patient:write' },
      audit: { action: 'update', resourceType: 'Patient', patientId: (args) => args.id, resourceId: (args) => args.id },
      args: {
        id: t.arg({ type: 'UUID', required: true }),
        version: t.arg.int({ required: true, description: 'the version you read: CONFLICT when the record changed since' }),
        input: t.arg({ type: UpdateInput, required: true }),
      },
      resolve: (_r, args, ctx) => updatePatient(runtime(ctx), ctx, args.id, args.version, args.input as UpdatePatientInput),
    }),
    revealPatientSsn: t.field({
      type: SsnRevealRef,
      description: 'The full SSN, for callers with patient:ssn:reveal who state a purpose and a reason. Audited as a reveal (refusals as denied).',
      authScopes: { permission: 'patient:ssn:reveal' },
      audit: {
        action: 'reveal',
        resourceType: 'Patient',
        category: 'ssn',
        patientId: (args) => args.patientId,
        resourceId: (args) => args.patientId,
        purposeOfUse: (args) => args.purpose ?? undefined,
        fields: () => ['Patient.ssn'],
        detail: (_a, r) => ({ revealId: r?.revealId ?? null }),
      },
      args: {
        patientId: t.arg({ type: 'UUID', required: true }),
        purpose: t.arg({ type: SsnRevealPurposeEnum, required: false, description: 'required: a reveal without a purpose is refused' }),
        reason: t.arg.string({ required: false, description: 'required, at least 10 characters; kept for compliance, never logged' }),
      },
      resolve: (_r, args, ctx) => revealSsn(runtime(ctx), ctx, { patientId: args.patientId, purpose: args.purpose, reason: args.reason }),
    }),
    assignCareTeamMember: t.field({
      type: [CareTeamMemberRef],
      description: 'Adds a user to the patient’s care team (or changes their care-team role). Returns the care team.',
      authScopes: { permission: 'patient:write' },
      audit: { action: 'update', resourceType: 'Patient', patientId: (args) => args.patientId, resourceId: (args) => args.patientId, fields: () => ['Patient.careTeam'] },
      args: {
        patientId: t.arg({ type: 'UUID', required: true }),
        userId: t.arg({ type: 'UUID', required: true }),
        role: t.arg({ type: CareTeamRoleEnum, required: true }),
      },
      resolve: (_r, args, ctx) => assignCareTeamMember(ctx, args),
    }),
    removeCareTeamMember: t.field({
      type: [CareTeamMemberRef],
      authScopes: { permission: 'patient:write' },
      audit: { action: 'update', resourceType: 'Patient', patientId: (args) => args.patientId, resourceId: (args) => args.patientId, fields: () => ['Patient.careTeam'] },
      args: { patientId: t.arg({ type: 'UUID', required: true }), userId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => removeCareTeamMember(ctx, args),
    }),
    linkPatientUser: t.field({
      type: Patient,
      description: 'Links the PATIENT user account that may read this record (userId null unlinks).',
      authScopes: { permission: 'patient:write' },
      audit: { action: 'update', resourceType: 'Patient', patientId: (args) => args.patientId, resourceId: (args) => args.patientId, fields: () => ['Patient.linkedUserId'] },
      args: { patientId: t.arg({ type: 'UUID', required: true }), userId: t.arg({ type: 'UUID', required: false }) },
      resolve: (_r, args, ctx) => linkPatientUser(ctx, { patientId: args.patientId, userId: args.userId ?? null }),
    }),
    mergePatients: t.field({
      type: MergeResultRef,
      description: 'Merges a duplicate record into the one that stays (see docs/modules/patients.md).',
      authScopes: { permission: 'patient:write' },
      audit: {
        action: 'update',
        resourceType: 'Patient',
        patientId: (args) => [args.input.sourceId, args.input.targetId],
        fields: () => ['Patient.status', 'Patient.mergedInto'],
        detail: (_a, r) => ({ mergeId: r?.mergeId ?? null }),
      },
      args: { input: t.arg({ type: MergeInput, required: true }) },
      resolve: (_r, args, ctx) => mergePatients(ctx, args.input),
    }),
  }));
}
