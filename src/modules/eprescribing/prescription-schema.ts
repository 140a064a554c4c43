import type { Builder } from '../../schema/index.js';
import { createPharmacy, getPharmacy, getPrescriber, listPharmacies, listPrescribers, registerPrescriber, updatePharmacy, findPharmacy, findPrescriber } from './directory.js';
import {
  cancelPrescription,
  checkPrescription,
  createPrescription,
  getPrescription,
  listPrescriptions,
  prescriptionHistory,
  prescriptionMessages,
  QUANTITY_UNITS,
  signPrescription,
  transmitPrescription,
  unitOfNci,
  updatePrescription,
  type CheckOutcome,
} from './prescriptions.js';
import { PRESCRIPTION_STATUSES, type ChangeRequest, type Pharmacy, type Prescriber, type Prescription, type PrescriptionEvent, type RenewalRequest } from './prescription-tables.js';
import { approveChange, approveRenewal, DENIAL_REASONS, denyChange, denyRenewal, getChangeRequest, getRenewalRequest, myPendingRequests, requestsOfPrescription } from './renewals.js';
import type { ScriptMedication } from './script/index.js';

/**
 * GraphQL of the prescription lifecycle: thin fields over the services.
 * Prescriptions, renewal and change requests are PHI (`phi: 'medications'`,
 * phiResource = the patient): every resolution is audited; the services
 * record each change themselves (the same entry for every door).
 */

const upperEnum = <T extends string>(values: readonly T[]) => Object.fromEntries(values.map((v) => [v.toUpperCase(), { value: v }])) as Record<Uppercase<T>, { value: T }>;

type MessageInfo = Awaited<ReturnType<typeof prescriptionMessages>>[number];

export function registerPrescriptionSchema(builder: Builder): void {
  const StatusEnum = builder.enumType('PrescriptionStatus', {
    description: 'DRAFT → CHECKED → SIGNED → TRANSMITTED → ACCEPTED → DISPENSED; ERROR (refused by the network/pharmacy); CANCEL_REQUESTED → CANCELLED',
    values: upperEnum(PRESCRIPTION_STATUSES),
  });
  const UnitEnum = builder.enumType('PrescriptionQuantityUnit', { description: 'the unit the quantity is dispensed in (must match the drug’s dose form)', values: upperEnum(QUANTITY_UNITS) });
  const ScheduleEnum = builder.enumType('PrescriptionControlledSchedule', { description: 'DEA schedule of a controlled substance', values: { CII: { value: 'CII' }, CIII: { value: 'CIII' }, CIV: { value: 'CIV' }, CV: { value: 'CV' } } });
  const DenialEnum = builder.enumType('PrescriptionDenialReason', {
    description: 'NCPDP denial reason codes of a renewal or change response',
    values: Object.fromEntries(Object.entries(DENIAL_REASONS).map(([k, v]) => [k, { value: k, description: v }])) as Record<keyof typeof DENIAL_REASONS, { value: string; description: string }>,
  });
  const RequestStatusEnum = builder.enumType('PrescriptionRequestStatus', { values: upperEnum(['pending', 'approved', 'denied'] as const) });

  const PharmacyRef = builder.objectRef<Pharmacy>('Pharmacy').implement({
    description: 'A pharmacy of the clinic’s directory (the network address is its NCPDP id)',
    fields: (t) => ({
      id: t.field({ type: 'UUID', resolve: (p) => p.id }),
      ncpdpId: t.exposeString('ncpdpId'),
      npi: t.exposeString('npi', { nullable: true }),
      name: t.exposeString('name'),
      addressLine1: t.exposeString('addressLine1'),
      addressLine2: t.exposeString('addressLine2', { nullable: true }),
      city: t.exposeString('city'),
      state: t.exposeString('state'),
      postalCode: t.exposeString('postalCode'),
      phone: t.exposeString('phone'),
      fax: t.exposeString('fax', { nullable: true }),
      epcsEnabled: t.exposeBoolean('epcsEnabled', { description: 'accepts electronic controlled-substance prescriptions' }),
      active: t.exposeBoolean('active'),
      version: t.exposeInt('version'),
    }),
  });

  const PrescriberRef = builder.objectRef<Prescriber>('Prescriber').implement({
    description: 'A user’s prescribing identity (SCRIPT Prescriber): NPI, license, practice address',
    fields: (t) => ({
      id: t.field({ type: 'UUID', resolve: (p) => p.id }),
      userId: t.field({ type: 'UUID', resolve: (p) => p.userId }),
      npi: t.exposeString('npi'),
      stateLicenseNumber: t.exposeString('stateLicenseNumber', { nullable: true }),
      firstName: t.exposeString('firstName'),
      lastName: t.exposeString('lastName'),
      suffix: t.exposeString('suffix', { nullable: true }),
      city: t.exposeString('city'),
      state: t.exposeString('state'),
      phone: t.exposeString('phone'),
      active: t.exposeBoolean('active'),
    }),
  });

  const AlertRef = builder.objectRef<CheckOutcome['alerts'][number]>('PrescriptionCheckAlert').implement({
    fields: (t) => ({
      key: t.exposeString('key', { description: 'stable key: name it in an override' }),
      kind: t.exposeString('kind'),
      severity: t.exposeString('severity', { description: 'contraindicated, major, moderate or minor' }),
      overridden: t.exposeBoolean('overridden'),
      needsReason: t.exposeBoolean('needsReason', { description: 'major or contraindicated: overriding it needs a reason' }),
    }),
  });

  const EventRef = builder.objectRef<PrescriptionEvent>('PrescriptionEvent').implement({
    fields: (t) => ({
      fromStatus: t.field({ type: StatusEnum, nullable: true, resolve: (e) => e.fromStatus as never }),
      toStatus: t.field({ type: StatusEnum, resolve: (e) => e.toStatus as never }),
      action: t.exposeString('action'),
      actor: t.exposeString('actor', { description: 'user:<id>, apiKey:<id> or system:pharmacy-network' }),
      at: t.field({ type: 'DateTime', resolve: (e) => e.at }),
    }),
  });

  const MessageRef = builder.objectRef<MessageInfo>('PrescriptionScriptMessage').implement({
    description: 'A SCRIPT message sent or received about the prescription (its XML is kept encrypted)',
    fields: (t) => ({
      direction: t.exposeString('direction'),
      messageType: t.exposeString('messageType'),
      messageId: t.exposeString('messageId'),
      relatesToMessageId: t.exposeString('relatesToMessageId', { nullable: true }),
      answerType: t.exposeString('answerType', { nullable: true, description: 'Status, Verify or Error' }),
      answerCode: t.exposeString('answerCode', { nullable: true }),
      createdAt: t.field({ type: 'DateTime', resolve: (m) => m.createdAt }),
    }),
  });

  const ProposedRef = builder.objectRef<ScriptMedication>('ProposedMedication').implement({
    fields: (t) => ({
      description: t.exposeString('description'),
      ndc: t.string({ nullable: true, resolve: (m) => m.ndc ?? null }),
      rxnormCode: t.string({ nullable: true, resolve: (m) => m.rxnorm?.code ?? null }),
      quantity: t.string({ resolve: (m) => m.quantity.value }),
      quantityUnit: t.field({ type: UnitEnum, nullable: true, resolve: (m) => unitOfNci(m.quantity.unitCode) ?? null }),
      daysSupply: t.int({ nullable: true, resolve: (m) => m.daysSupply ?? null }),
      refills: t.int({ nullable: true, resolve: (m) => m.numberOfRefills ?? null }),
      sig: t.exposeString('sig'),
    }),
  });

  const RenewalRef = builder.objectRef<RenewalRequest>('PrescriptionRenewalRequest').implement({
    description: 'A pharmacy’s request to renew a prescription (RxRenewalRequest) and the prescriber’s answer',
    phiResource: { patientId: (r) => r.patientId, resourceType: 'RenewalRequest' },
    fields: (t) => ({
      id: t.field({ type: 'UUID', resolve: (r) => r.id }),
      prescriptionId: t.field({ type: 'UUID', resolve: (r) => r.prescriptionId }),
      patientId: t.field({ type: 'UUID', resolve: (r) => r.patientId }),
      status: t.field({ type: RequestStatusEnum, resolve: (r) => r.status }),
      refillsApproved: t.int({ nullable: true, phi: 'medications', resolve: (r) => r.refillsApproved }),
      denialCode: t.string({ nullable: true, resolve: (r) => r.denialCode }),
      newPrescriptionId: t.field({ type: 'UUID', nullable: true, resolve: (r) => r.newPrescriptionId }),
      decidedAt: t.field({ type: 'DateTime', nullable: true, resolve: (r) => r.decidedAt }),
      createdAt: t.field({ type: 'DateTime', resolve: (r) => r.createdAt }),
    }),
  });

  const ChangeRef = builder.objectRef<ChangeRequest>('PrescriptionChangeRequest').implement({
    description: 'A pharmacy’s change request (RxChangeRequest: G generic, T therapeutic, P prior authorization, S clarification, OS out of stock, D drug use evaluation, U prescriber authorization)',
    phiResource: { patientId: (r) => r.patientId, resourceType: 'ChangeRequest' },
    fields: (t) => ({
      id: t.field({ type: 'UUID', resolve: (r) => r.id }),
      prescriptionId: t.field({ type: 'UUID', resolve: (r) => r.prescriptionId }),
      patientId: t.field({ type: 'UUID', resolve: (r) => r.patientId }),
      requestCode: t.exposeString('requestCode'),
      status: t.field({ type: RequestStatusEnum, resolve: (r) => r.status }),
      options: t.field({ type: [ProposedRef], phi: 'medications', resolve: (r) => r.requested as ScriptMedication[] }),
      chosenIndex: t.int({ nullable: true, resolve: (r) => r.chosenIndex }),
      denialCode: t.string({ nullable: true, resolve: (r) => r.denialCode }),
      decidedAt: t.field({ type: 'DateTime', nullable: true, resolve: (r) => r.decidedAt }),
      createdAt: t.field({ type: 'DateTime', resolve: (r) => r.createdAt }),
    }),
  });

  const PrescriptionRef = builder.objectRef<Prescription>('Prescription').implement({
    description: 'A prescription and where it is in its lifecycle (NCPDP SCRIPT NewRx and what followed)',
    phiResource: { patientId: (rx) => rx.patientId, resourceType: 'Prescription' },
    fields: (t) => ({
      id: t.field({ type: 'UUID', resolve: (rx) => rx.id }),
      patientId: t.field({ type: 'UUID', resolve: (rx) => rx.patientId }),
      status: t.field({ type: StatusEnum, resolve: (rx) => rx.status }),
      drugRxcui: t.string({ phi: 'medications', resolve: (rx) => rx.drugRxcui }),
      drugDescription: t.string({ phi: 'medications', resolve: (rx) => rx.drugDescription }),
      controlledSchedule: t.field({ type: ScheduleEnum, nullable: true, phi: 'medications', resolve: (rx) => rx.deaSchedule }),
      quantity: t.string({ phi: 'medications', resolve: (rx) => rx.quantity }),
      quantityUnit: t.field({ type: UnitEnum, resolve: (rx) => unitOfNci(rx.quantityUnit) ?? 'each' }),
      daysSupply: t.int({ nullable: true, phi: 'medications', resolve: (rx) => rx.daysSupply }),
      refills: t.int({ phi: 'medications', resolve: (rx) => rx.refills }),
      refillsRemaining: t.int({ phi: 'medications', resolve: (rx) => rx.refillsRemaining }),
      fills: t.int({ phi: 'medications', resolve: (rx) => rx.fills }),
      sig: t.string({ phi: 'medications', resolve: (rx) => rx.sig }),
      note: t.string({ nullable: true, phi: 'medications', resolve: (rx) => rx.note }),
      doseAmount: t.string({ nullable: true, phi: 'medications', resolve: (rx) => rx.doseAmount }),
      frequencyPerDay: t.int({ nullable: true, phi: 'medications', resolve: (rx) => rx.frequencyPerDay }),
      substitutionAllowed: t.exposeBoolean('substitutionAllowed'),
      writtenOn: t.field({ type: 'Date', resolve: (rx) => rx.writtenOn }),
      orderNumber: t.exposeString('orderNumber', { description: 'SCRIPT PrescriberOrderNumber' }),
      pharmacyRxNumber: t.exposeString('pharmacyRxNumber', { nullable: true, description: 'the pharmacy’s prescription number (RxReferenceNumber)' }),
      pharmacy: t.field({ type: PharmacyRef, nullable: true, resolve: async (rx, _a, ctx) => (rx.pharmacyId ? findPharmacy(await ctx.db(), rx.tenantId, rx.pharmacyId) : null) }),
      prescriber: t.field({ type: PrescriberRef, resolve: async (rx, _a, ctx) => findPrescriber(await ctx.db(), rx.tenantId, rx.prescriberId) }),
      checkAlerts: t.field({
        type: [AlertRef],
        phi: 'medications',
        description: 'the alerts of the last safety check',
        resolve: (rx) => (rx.checkResult?.alerts ?? []).map((a) => ({ ...a, severity: a.severity as never, needsReason: a.severity === 'major' || a.severity === 'contraindicated' })),
      }),
      checkedAt: t.field({ type: 'DateTime', nullable: true, resolve: (rx) => rx.checkedAt }),
      signedAt: t.field({ type: 'DateTime', nullable: true, resolve: (rx) => rx.signedAt }),
      epcs: t.exposeBoolean('epcs', { description: 'signed as a controlled substance (two factors, digital signature)' }),
      transmittedAt: t.field({ type: 'DateTime', nullable: true, resolve: (rx) => rx.transmittedAt }),
      acceptedAt: t.field({ type: 'DateTime', nullable: true, resolve: (rx) => rx.acceptedAt }),
      errorCode: t.exposeString('errorCode', { nullable: true, description: 'SCRIPT Error code of the last refusal (600, 601, 602, 900)' }),
      errorDescriptionCode: t.exposeString('errorDescriptionCode', { nullable: true }),
      dispensedAt: t.field({ type: 'DateTime', nullable: true, resolve: (rx) => rx.dispensedAt }),
      cancelledAt: t.field({ type: 'DateTime', nullable: true, resolve: (rx) => rx.cancelledAt }),
      renewalOf: t.field({ type: 'UUID', nullable: true, resolve: (rx) => rx.renewalOf }),
      encounterId: t.field({ type: 'UUID', nullable: true, description: 'the visit it was written in', resolve: (rx) => rx.encounterId }),
      version: t.exposeInt('version'),
      createdAt: t.field({ type: 'DateTime', resolve: (rx) => rx.createdAt }),
      updatedAt: t.field({ type: 'DateTime', resolve: (rx) => rx.updatedAt }),
      history: t.field({ type: [EventRef], phi: 'medications', resolve: async (rx, _a, ctx) => prescriptionHistory(await ctx.db(), rx.tenantId, rx.id) }),
      messages: t.field({ type: [MessageRef], phi: 'medications', resolve: async (rx, _a, ctx) => prescriptionMessages(await ctx.db(), rx.tenantId, rx.id) }),
      renewalRequests: t.field({ type: [RenewalRef], resolve: async (rx, _a, ctx) => (await requestsOfPrescription(await ctx.db(), rx.tenantId, [rx.id])).renewals }),
      changeRequests: t.field({ type: [ChangeRef], resolve: async (rx, _a, ctx) => (await requestsOfPrescription(await ctx.db(), rx.tenantId, [rx.id])).changes }),
    }),
  });

  const PageRef = builder.objectRef<{ items: Prescription[]; endCursor: string | null }>('PrescriptionPage').implement({
    fields: (t) => ({ items: t.field({ type: [PrescriptionRef], resolve: (p) => p.items }), endCursor: t.exposeString('endCursor', { nullable: true }) }),
  });
  const CheckRef = builder.objectRef<CheckOutcome>('PrescriptionCheckResult').implement({
    fields: (t) => ({
      prescription: t.field({ type: PrescriptionRef, resolve: (c) => c.prescription }),
      alerts: t.field({ type: [AlertRef], resolve: (c) => c.alerts }),
      blocking: t.stringList({ description: 'keys of major / contraindicated alerts still needing an override reason (empty: checked)', resolve: (c) => c.blocking }),
    }),
  });
  const PendingRef = builder.objectRef<{ renewals: RenewalRequest[]; changes: ChangeRequest[] }>('PrescriptionRequests').implement({
    fields: (t) => ({ renewals: t.field({ type: [RenewalRef], resolve: (p) => p.renewals }), changes: t.field({ type: [ChangeRef], resolve: (p) => p.changes }) }),
  });

  // ---------------------------------------------------------------- inputs
  const AddressFields = (t: Parameters<Parameters<typeof builder.inputType>[1]['fields']>[0]) => ({
    addressLine1: t.string({ required: true }),
    addressLine2: t.string({ required: false }),
    city: t.string({ required: true }),
    state: t.string({ required: true, description: 'two-letter state code' }),
    postalCode: t.string({ required: true, description: 'ZIP or ZIP+4' }),
    phone: t.string({ required: true, description: '10-digit US number' }),
    fax: t.string({ required: false }),
  });
  const PharmacyInput = builder.inputType('PharmacyInput', {
    fields: (t) => ({ ncpdpId: t.string({ required: true }), npi: t.string({ required: false }), name: t.string({ required: true }), epcsEnabled: t.boolean({ required: false }), ...AddressFields(t) }),
  });
  const PharmacyUpdateInput = builder.inputType('PharmacyUpdateInput', {
    fields: (t) => ({
      name: t.string({ required: false }),
      npi: t.string({ required: false }),
      epcsEnabled: t.boolean({ required: false }),
      active: t.boolean({ required: false }),
      addressLine1: t.string({ required: false }),
      addressLine2: t.string({ required: false }),
      city: t.string({ required: false }),
      state: t.string({ required: false }),
      postalCode: t.string({ required: false }),
      phone: t.string({ required: false }),
      fax: t.string({ required: false }),
    }),
  });
  const PrescriberInput = builder.inputType('PrescriberInput', {
    fields: (t) => ({
      userId: t.field({ type: 'UUID', required: true }),
      npi: t.string({ required: true }),
      stateLicenseNumber: t.string({ required: false }),
      firstName: t.string({ required: true }),
      lastName: t.string({ required: true }),
      suffix: t.string({ required: false }),
      ...AddressFields(t),
    }),
  });
  const draftFields = (t: Parameters<Parameters<typeof builder.inputType>[1]['fields']>[0], create: boolean) => ({
    pharmacyId: t.field({ type: 'UUID', required: false }),
    drugRxcui: t.string({ required: create, description: 'RxNorm concept id of the drug (SCD/SBD/GPCK/BPCK)' }),
    quantity: t.string({ required: create, description: 'decimal, e.g. "30" or "150.5"' }),
    quantityUnit: t.field({ type: UnitEnum, required: create }),
    daysSupply: t.int({ required: false }),
    refills: t.int({ required: false, description: '0-99; 0 for schedule II; at most 5 for schedules III-V' }),
    sig: t.string({ required: create, description: 'directions' }),
    substitutionAllowed: t.boolean({ required: false }),
    note: t.string({ required: false, description: 'note to the pharmacist (210 characters)' }),
    doseAmount: t.string({ required: false, description: 'amount per administration, in the drug’s unit (dose checks)' }),
    frequencyPerDay: t.int({ required: false }),
  });
  const CreateInput = builder.inputType('CreatePrescriptionInput', {
    fields: (t) => ({
      patientId: t.field({ type: 'UUID', required: true }),
      prescriberId: t.field({ type: 'UUID', required: false, description: 'default: the caller’s prescriber record' }),
      encounterId: t.field({ type: 'UUID', required: false, description: 'the visit it is written in' }),
      ...draftFields(t, true),
    }),
  });
  const UpdateInput = builder.inputType('UpdatePrescriptionInput', { fields: (t) => draftFields(t, false) });
  const OverrideInput = builder.inputType('PrescriptionAlertOverrideInput', {
    fields: (t) => ({ alertKey: t.string({ required: true }), reason: t.string({ required: false, description: 'required for major and contraindicated alerts' }) }),
  });
  const EpcsInput = builder.inputType('EpcsSignatureInput', {
    description: 'Two-factor re-authentication at the moment of signing a controlled substance (21 CFR 1311.140)',
    fields: (t) => ({
      password: t.string({ required: true }),
      totpCode: t.string({ required: true }),
      attestationSha256: t.string({ required: true, description: 'sha256 of the DEA attestation text shown (query epcsAttestation)' }),
    }),
  });

  // ---------------------------------------------------------------- queries
  builder.queryField('pharmacies', (t) =>
    t.field({
      type: [PharmacyRef],
      authScopes: { permission: 'rx:pharmacy:read' },
      args: { search: t.arg.string({ required: false }), first: t.arg.int({ required: false }), includeInactive: t.arg.boolean({ required: false }) },
      resolve: (_r, args, ctx) => listPharmacies(ctx, args),
    }),
  );
  builder.queryField('pharmacy', (t) =>
    t.field({ type: PharmacyRef, authScopes: { permission: 'rx:pharmacy:read' }, args: { id: t.arg({ type: 'UUID', required: true }) }, resolve: (_r, args, ctx) => getPharmacy(ctx, args.id) }),
  );
  builder.queryField('prescribers', (t) =>
    t.field({
      type: [PrescriberRef],
      authScopes: { permission: 'rx:pharmacy:read' },
      args: { first: t.arg.int({ required: false }), after: t.arg({ type: 'UUID', required: false }) },
      resolve: (_r, args, ctx) => listPrescribers(ctx, args),
    }),
  );
  builder.queryField('prescriber', (t) =>
    t.field({ type: PrescriberRef, authScopes: { permission: 'rx:pharmacy:read' }, args: { id: t.arg({ type: 'UUID', required: true }) }, resolve: (_r, args, ctx) => getPrescriber(ctx, args.id) }),
  );
  builder.queryField('prescription', (t) =>
    t.field({ type: PrescriptionRef, authScopes: { permission: 'rx:prescription:read' }, args: { id: t.arg({ type: 'UUID', required: true }) }, resolve: (_r, args, ctx) => getPrescription(ctx, args.id) }),
  );
  builder.queryField('prescriptions', (t) =>
    t.field({
      type: PageRef,
      description: 'newest first; a patient’s (patientId), or the caller’s own as prescriber (mine)',
      authScopes: { permission: 'rx:prescription:read' },
      args: {
        patientId: t.arg({ type: 'UUID', required: false }),
        statuses: t.arg({ type: [StatusEnum], required: false }),
        mine: t.arg.boolean({ required: false }),
        first: t.arg.int({ required: false }),
        after: t.arg.string({ required: false }),
      },
      resolve: (_r, args, ctx) => listPrescriptions(ctx, args),
    }),
  );
  builder.queryField('myPrescriptionRequests', (t) =>
    t.field({ type: PendingRef, description: 'pending renewal and change requests for the caller as prescriber', authScopes: { permission: 'rx:prescription:sign' }, resolve: (_r, _a, ctx) => myPendingRequests(ctx) }),
  );
  builder.queryField('prescriptionRenewalRequest', (t) =>
    t.field({ type: RenewalRef, authScopes: { permission: 'rx:prescription:read' }, args: { id: t.arg({ type: 'UUID', required: true }) }, resolve: (_r, args, ctx) => getRenewalRequest(ctx, args.id) }),
  );
  builder.queryField('prescriptionChangeRequest', (t) =>
    t.field({ type: ChangeRef, authScopes: { permission: 'rx:prescription:read' }, args: { id: t.arg({ type: 'UUID', required: true }) }, resolve: (_r, args, ctx) => getChangeRequest(ctx, args.id) }),
  );

  // ---------------------------------------------------------------- mutations
  builder.mutationField('createPharmacy', (t) =>
    t.field({ type: PharmacyRef, authScopes: { permission: 'rx:pharmacy:manage' }, args: { input: t.arg({ type: PharmacyInput, required: true }) }, resolve: (_r, args, ctx) => createPharmacy(ctx, args.input) }),
  );
  builder.mutationField('updatePharmacy', (t) =>
    t.field({
      type: PharmacyRef,
      authScopes: { permission: 'rx:pharmacy:manage' },
      args: { id: t.arg({ type: 'UUID', required: true }), version: t.arg.int({ required: true }), input: t.arg({ type: PharmacyUpdateInput, required: true }) },
      resolve: (_r, args, ctx) => updatePharmacy(ctx, args.id, args.version, args.input as never),
    }),
  );
  builder.mutationField('registerPrescriber', (t) =>
    t.field({ type: PrescriberRef, authScopes: { permission: 'rx:prescriber:manage' }, args: { input: t.arg({ type: PrescriberInput, required: true }) }, resolve: (_r, args, ctx) => registerPrescriber(ctx, args.input) }),
  );
  builder.mutationField('createPrescription', (t) =>
    t.field({ type: PrescriptionRef, authScopes: { permission: 'rx:prescription:write' }, args: { input: t.arg({ type: CreateInput, required: true }) }, resolve: (_r, args, ctx) => createPrescription(ctx, args.input) }),
  );
  builder.mutationField('updatePrescription', (t) =>
    t.field({
      type: PrescriptionRef,
      description: 'changes a draft or checked prescription (it becomes a draft again)',
      authScopes: { permission: 'rx:prescription:write' },
      args: { id: t.arg({ type: 'UUID', required: true }), version: t.arg.int({ required: true }), input: t.arg({ type: UpdateInput, required: true }) },
      resolve: (_r, args, ctx) => updatePrescription(ctx, args.id, args.version, args.input),
    }),
  );
  builder.mutationField('checkPrescription', (t) =>
    t.field({
      type: CheckRef,
      description: 'runs the safety checks; CHECKED when no major/contraindicated alert is left without an override reason',
      authScopes: { permission: 'rx:prescription:write' },
      args: { id: t.arg({ type: 'UUID', required: true }), overrides: t.arg({ type: [OverrideInput], required: false }) },
      resolve: (_r, args, ctx) => checkPrescription(ctx, args.id, args.overrides),
    }),
  );
  builder.mutationField('signPrescription', (t) =>
    t.field({
      type: PrescriptionRef,
      description: 'signs a CHECKED prescription as its prescriber; a controlled substance needs epcs (two factors + attestation)',
      authScopes: { permission: 'rx:prescription:sign' },
      args: { id: t.arg({ type: 'UUID', required: true }), epcs: t.arg({ type: EpcsInput, required: false }) },
      resolve: (_r, args, ctx) => signPrescription(ctx, args.id, args.epcs ?? {}),
    }),
  );
  builder.mutationField('transmitPrescription', (t) =>
    t.field({
      type: PrescriptionRef,
      description: 'sends the NewRx of a SIGNED (or ERROR) prescription; PROVIDER_UNAVAILABLE: nothing changed, try again',
      authScopes: { permission: 'rx:prescription:write' },
      args: { id: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => transmitPrescription(ctx, args.id),
    }),
  );
  builder.mutationField('cancelPrescription', (t) =>
    t.field({
      type: PrescriptionRef,
      description: 'cancels at once before transmission; afterwards sends a CancelRx (CANCEL_REQUESTED until the pharmacy answers)',
      authScopes: { permission: 'rx:prescription:sign' },
      args: { id: t.arg({ type: 'UUID', required: true }), reason: t.arg.string({ required: false }) },
      resolve: (_r, args, ctx) => cancelPrescription(ctx, args.id, args.reason),
    }),
  );
  builder.mutationField('approvePrescriptionRenewal', (t) =>
    t.field({
      type: RenewalRef,
      authScopes: { permission: 'rx:prescription:sign' },
      args: { id: t.arg({ type: 'UUID', required: true }), refills: t.arg.int({ required: true }), note: t.arg.string({ required: false }), epcs: t.arg({ type: EpcsInput, required: false }) },
      resolve: (_r, args, ctx) => approveRenewal(ctx, args.id, { refills: args.refills, note: args.note, ...(args.epcs ?? {}) }),
    }),
  );
  builder.mutationField('denyPrescriptionRenewal', (t) =>
    t.field({
      type: RenewalRef,
      authScopes: { permission: 'rx:prescription:sign' },
      args: { id: t.arg({ type: 'UUID', required: true }), reasonCode: t.arg({ type: DenialEnum, required: true }), reason: t.arg.string({ required: false }) },
      resolve: (_r, args, ctx) => denyRenewal(ctx, args.id, args.reasonCode, args.reason),
    }),
  );
  builder.mutationField('approvePrescriptionChange', (t) =>
    t.field({
      type: ChangeRef,
      authScopes: { permission: 'rx:prescription:sign' },
      args: { id: t.arg({ type: 'UUID', required: true }), option: t.arg.int({ required: false, description: 'index of the proposed medication chosen' }) },
      resolve: (_r, args, ctx) => approveChange(ctx, args.id, args.option),
    }),
  );
  builder.mutationField('denyPrescriptionChange', (t) =>
    t.field({
      type: ChangeRef,
      authScopes: { permission: 'rx:prescription:sign' },
      args: { id: t.arg({ type: 'UUID', required: true }), reasonCode: t.arg({ type: DenialEnum, required: true }), reason: t.arg.string({ required: false }) },
      resolve: (_r, args, ctx) => denyChange(ctx, args.id, args.reasonCode, args.reason),
    }),
  );
}
