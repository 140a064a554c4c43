import { sql } from 'drizzle-orm';
import { boolean, check, date, index, integer, jsonb, pgTable, text, timestamp, unique, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { encryptedColumn } from '../../platform/crypto/index.js';
import { id, tenantId, timestamps } from '../../platform/db/tables.js';

/**
 * Prescription lifecycle, NCPDP SCRIPT traffic, EPCS and prior
 * authorization: every table is tenant-owned (tenant_id + RLS). Foreign
 * keys to patients(tenant_id, id) and users(tenant_id, id) are in the
 * migration's hand-written part (a module's tables import no other module).
 */

const tstz = (name: string) => timestamp(name, { withTimezone: true });

/** Pharmacies a clinic sends to (its directory of the network's pharmacies): not PHI. */
export const rxPharmacies = pgTable(
  'rx_pharmacies',
  {
    id: id(),
    tenantId: tenantId(),
    /** 7-digit NCPDP provider id: the network address (SCRIPT Header/To qualifier P) */
    ncpdpId: text('ncpdp_id').notNull(),
    npi: text('npi'),
    name: text('name').notNull(),
    addressLine1: text('address_line1').notNull(),
    addressLine2: text('address_line2'),
    city: text('city').notNull(),
    state: text('state').notNull(),
    postalCode: text('postal_code').notNull(),
    phone: text('phone').notNull(),
    fax: text('fax'),
    /** the pharmacy accepts electronic controlled-substance prescriptions */
    epcsEnabled: boolean('epcs_enabled').notNull().default(true),
    active: boolean('active').notNull().default(true),
    version: integer('version').notNull().default(1),
    ...timestamps(),
  },
  (t) => [
    unique('rx_pharmacies_tenant_id_id_key').on(t.tenantId, t.id),
    unique('rx_pharmacies_tenant_ncpdp_key').on(t.tenantId, t.ncpdpId),
    check('rx_pharmacies_ncpdp_check', sql`${t.ncpdpId} ~ '^[0-9]{7}$'`),
    check('rx_pharmacies_npi_check', sql`${t.npi} is null or ${t.npi} ~ '^[0-9]{10}$'`),
  ],
);

/** A user's prescribing identity: NPI, license, practice address (SCRIPT Prescriber/NonVeterinarian). */
export const rxPrescribers = pgTable(
  'rx_prescribers',
  {
    id: id(),
    tenantId: tenantId(),
    userId: uuid('user_id').notNull(),
    npi: text('npi').notNull(),
    stateLicenseNumber: text('state_license_number'),
    firstName: text('first_name').notNull(),
    lastName: text('last_name').notNull(),
    suffix: text('suffix'),
    addressLine1: text('address_line1').notNull(),
    addressLine2: text('address_line2'),
    city: text('city').notNull(),
    state: text('state').notNull(),
    postalCode: text('postal_code').notNull(),
    phone: text('phone').notNull(),
    fax: text('fax'),
    active: boolean('active').notNull().default(true),
    version: integer('version').notNull().default(1),
    ...timestamps(),
  },
  (t) => [
    unique('rx_prescribers_tenant_id_id_key').on(t.tenantId, t.id),
    unique('rx_prescribers_tenant_user_key').on(t.tenantId, t.userId),
    check('rx_prescribers_npi_check', sql`${t.npi} ~ '^[0-9]{10}$'`),
  ],
);

export const EPCS_SCHEDULES = ['CII', 'CIII', 'CIV', 'CV'] as const;

/** DEA registrations of a prescriber and the schedules each covers (21 CFR 1311.100 identity proofing recorded). */
export const rxDeaRegistrations = pgTable(
  'rx_dea_registrations',
  {
    id: id(),
    tenantId: tenantId(),
    prescriberId: uuid('prescriber_id').notNull(),
    deaNumber: text('dea_number').notNull(),
    /** subset of CII, CIII, CIV, CV (2N / 3N as CII / CIII) */
    schedules: text('schedules').array().notNull(),
    /** the state of the registration */
    state: text('state').notNull(),
    expiresOn: date('expires_on', { mode: 'string' }).notNull(),
    recordedBy: uuid('recorded_by').notNull(),
    revokedAt: tstz('revoked_at'),
    revokedBy: uuid('revoked_by'),
    createdAt: tstz('created_at').notNull().defaultNow(),
  },
  (t) => [
    unique('rx_dea_registrations_tenant_id_id_key').on(t.tenantId, t.id),
    uniqueIndex('rx_dea_registrations_live_key').on(t.tenantId, t.prescriberId, t.deaNumber).where(sql`${t.revokedAt} is null`),
    check('rx_dea_registrations_number_check', sql`${t.deaNumber} ~ '^[A-Z][A-Z9][0-9]{7}$'`),
    check('rx_dea_registrations_schedules_check', sql`cardinality(${t.schedules}) > 0 and ${t.schedules} <@ array['CII','CIII','CIV','CV']::text[]`),
  ],
);

export const EPCS_ACCESS_STATUSES = ['pending', 'active', 'revoked'] as const;
export type EpcsAccessStatus = (typeof EPCS_ACCESS_STATUSES)[number];

/**
 * Logical access control for EPCS (21 CFR 1311.125): a prescriber may sign
 * controlled-substance prescriptions once two different administrators have
 * approved it (neither the prescriber); revocation takes effect at once.
 */
export const rxEpcsAccess = pgTable(
  'rx_epcs_access',
  {
    id: id(),
    tenantId: tenantId(),
    prescriberId: uuid('prescriber_id').notNull(),
    status: text('status', { enum: EPCS_ACCESS_STATUSES }).notNull().default('pending'),
    firstApproverId: uuid('first_approver_id').notNull(),
    firstApprovedAt: tstz('first_approved_at').notNull(),
    secondApproverId: uuid('second_approver_id'),
    secondApprovedAt: tstz('second_approved_at'),
    revokedBy: uuid('revoked_by'),
    revokedAt: tstz('revoked_at'),
    version: integer('version').notNull().default(1),
  },
  (t) => [
    unique('rx_epcs_access_tenant_id_id_key').on(t.tenantId, t.id),
    uniqueIndex('rx_epcs_access_live_key').on(t.tenantId, t.prescriberId).where(sql`${t.status} <> 'revoked'`),
    check('rx_epcs_access_two_people_check', sql`${t.secondApproverId} is null or ${t.secondApproverId} <> ${t.firstApproverId}`),
    check('rx_epcs_access_active_check', sql`${t.status} <> 'active' or ${t.secondApproverId} is not null`),
  ],
);

/**
 * A prescriber's signing key (Ed25519): the private key is envelope
 * encrypted by the crypto module (KMS / local key ring), the public key kept
 * in clear so a signature can be verified later, also after the key is
 * retired.
 */
export const rxSigningKeys = pgTable(
  'rx_signing_keys',
  {
    id: id(),
    tenantId: tenantId(),
    prescriberId: uuid('prescriber_id').notNull(),
    algorithm: text('algorithm').notNull().default('Ed25519'),
    /** SPKI PEM */
    publicKey: text('public_key').notNull(),
    /** PKCS#8 PEM, envelope encrypted */
    privateKey: encryptedColumn('private_key').notNull(),
    /** sha256 of the SPKI DER, hex */
    fingerprint: text('fingerprint').notNull(),
    createdAt: tstz('created_at').notNull().defaultNow(),
    retiredAt: tstz('retired_at'),
  },
  (t) => [unique('rx_signing_keys_tenant_id_id_key').on(t.tenantId, t.id), uniqueIndex('rx_signing_keys_current_key').on(t.tenantId, t.prescriberId).where(sql`${t.retiredAt} is null`)],
);

export const PRESCRIPTION_STATUSES = ['draft', 'checked', 'signed', 'transmitted', 'accepted', 'error', 'dispensed', 'cancel_requested', 'cancelled'] as const;
export type PrescriptionStatus = (typeof PRESCRIPTION_STATUSES)[number];

/** A prescription and where it is in its lifecycle. PHI (category medications). */
export const rxPrescriptions = pgTable(
  'rx_prescriptions',
  {
    id: id(),
    tenantId: tenantId(),
    patientId: uuid('patient_id').notNull(),
    prescriberId: uuid('prescriber_id').notNull(),
    pharmacyId: uuid('pharmacy_id'),
    drugRxcui: text('drug_rxcui').notNull(),
    /** SCRIPT DrugDescription at the time of writing (the catalog may change) */
    drugDescription: text('drug_description').notNull(),
    drugTty: text('drug_tty').notNull(),
    ndc: text('ndc'),
    deaSchedule: text('dea_schedule', { enum: EPCS_SCHEDULES }),
    /** decimal quantity as text (exact) */
    quantity: text('quantity').notNull(),
    /** NCI unit code (C48542 tablet, C48480 capsule, C28254 mL, ...) */
    quantityUnit: text('quantity_unit').notNull(),
    daysSupply: integer('days_supply'),
    refills: integer('refills').notNull().default(0),
    /** fills left after the first: set from the pharmacy's RxFill */
    refillsRemaining: integer('refills_remaining').notNull().default(0),
    sig: text('sig').notNull(),
    substitutionAllowed: boolean('substitution_allowed').notNull().default(true),
    note: text('note'),
    /** structured dose for the safety checks: amount per administration in the drug's unit, times per day */
    doseAmount: text('dose_amount'),
    frequencyPerDay: integer('frequency_per_day'),
    status: text('status', { enum: PRESCRIPTION_STATUSES }).notNull().default('draft'),
    /** where a cancel request returns to when the pharmacy denies it */
    statusBeforeCancel: text('status_before_cancel', { enum: PRESCRIPTION_STATUSES }),
    writtenOn: date('written_on', { mode: 'string' }).notNull(),
    /** SCRIPT PrescriberOrderNumber: 32 hex characters, unique across tenants (inbound routing) */
    orderNumber: text('order_number').notNull(),
    /** SCRIPT MessageID of the NewRx (fixed at signing, so a retried transmission is the same message) */
    newRxMessageId: text('new_rx_message_id'),
    /** the pharmacy's prescription number (RxReferenceNumber) */
    pharmacyRxNumber: text('pharmacy_rx_number'),
    /** the last safety check: alert keys, kinds and severities, and which were overridden (no free text) */
    checkResult: jsonb('check_result').$type<PrescriptionCheckSummary>(),
    checkedAt: tstz('checked_at'),
    signedAt: tstz('signed_at'),
    signedBy: uuid('signed_by'),
    /** EPCS: signed with the prescriber's key after two-factor re-authentication */
    epcs: boolean('epcs').notNull().default(false),
    /** base64 Ed25519 signature over the canonical prescription (epcs.ts) */
    signature: text('signature'),
    /** base64 sha256 of the canonical prescription that was signed */
    signedDigest: text('signed_digest'),
    signingKeyId: uuid('signing_key_id'),
    /** EPCS: the DEA registration number the prescription was signed under (SCRIPT Prescriber/DEANumber) */
    deaNumber: text('dea_number'),
    /** sha256 of the DEA attestation text the prescriber confirmed */
    attestationSha256: text('attestation_sha256'),
    transmittedAt: tstz('transmitted_at'),
    acceptedAt: tstz('accepted_at'),
    /** SCRIPT Error code / description code of the last refusal */
    errorCode: text('error_code'),
    errorDescriptionCode: text('error_description_code'),
    dispensedAt: tstz('dispensed_at'),
    fills: integer('fills').notNull().default(0),
    cancelledAt: tstz('cancelled_at'),
    cancelReason: text('cancel_reason'),
    /** the prescription this one renews */
    renewalOf: uuid('renewal_of'),
    /** the visit it was written in (telehealth appointment), when there is one */
    encounterId: uuid('encounter_id'),
    createdBy: uuid('created_by').notNull(),
    version: integer('version').notNull().default(1),
    ...timestamps(),
  },
  (t) => [
    unique('rx_prescriptions_tenant_id_id_key').on(t.tenantId, t.id),
    uniqueIndex('rx_prescriptions_order_number_key').on(t.orderNumber),
    index('rx_prescriptions_patient_idx').on(t.tenantId, t.patientId, t.createdAt),
    index('rx_prescriptions_prescriber_idx').on(t.tenantId, t.prescriberId, t.status),
    check('rx_prescriptions_refills_check', sql`${t.refills} between 0 and 99 and ${t.refillsRemaining} between 0 and ${t.refills}`),
    check('rx_prescriptions_cii_refills_check', sql`${t.deaSchedule} is distinct from 'CII' or ${t.refills} = 0`),
    check('rx_prescriptions_quantity_check', sql`${t.quantity} ~ '^[0-9]{1,11}(\\.[0-9]{1,5})?$' and ${t.quantity}::numeric > 0`),
    check('rx_prescriptions_order_check', sql`${t.orderNumber} ~ '^[0-9a-f]{32}$'`),
    check('rx_prescriptions_epcs_check', sql`${t.deaSchedule} is null or ${t.status} in ('draft', 'checked') or (${t.epcs} and ${t.signature} is not null)`),
    check('rx_prescriptions_epcs_dea_check', sql`not ${t.epcs} or ${t.deaNumber} is not null`),
  ],
);

export interface PrescriptionCheckSummary {
  alerts: { key: string; kind: string; severity: string; overridden: boolean }[];
}

/** Every status change of a prescription (and renewal / change / prior-authorization decisions on it). */
export const rxPrescriptionEvents = pgTable(
  'rx_prescription_events',
  {
    id: id(),
    tenantId: tenantId(),
    prescriptionId: uuid('prescription_id').notNull(),
    fromStatus: text('from_status'),
    toStatus: text('to_status').notNull(),
    action: text('action').notNull(),
    /** user:<id>, system:<job>, network */
    actor: text('actor').notNull(),
    /** codes and ids only */
    detail: jsonb('detail').$type<Record<string, unknown>>().notNull().default({}),
    at: tstz('at').notNull().defaultNow(),
  },
  (t) => [index('rx_prescription_events_prescription_idx').on(t.tenantId, t.prescriptionId, t.at)],
);

export const SCRIPT_DIRECTIONS = ['outbound', 'inbound'] as const;

/** Every SCRIPT message sent or received, its XML envelope encrypted (it names the patient), and its answer. */
export const rxScriptMessages = pgTable(
  'rx_script_messages',
  {
    id: id(),
    tenantId: tenantId(),
    prescriptionId: uuid('prescription_id'),
    direction: text('direction', { enum: SCRIPT_DIRECTIONS }).notNull(),
    messageType: text('message_type').notNull(),
    messageId: text('message_id').notNull(),
    relatesToMessageId: text('relates_to_message_id'),
    prescriberOrderNumber: text('prescriber_order_number'),
    rxReferenceNumber: text('rx_reference_number'),
    xml: encryptedColumn('xml').notNull(),
    /** the synchronous answer: Status / Verify / Error and its code */
    answerType: text('answer_type'),
    answerCode: text('answer_code'),
    createdAt: tstz('created_at').notNull().defaultNow(),
  },
  (t) => [
    unique('rx_script_messages_tenant_id_id_key').on(t.tenantId, t.id),
    unique('rx_script_messages_message_key').on(t.tenantId, t.direction, t.messageId),
    index('rx_script_messages_prescription_idx').on(t.tenantId, t.prescriptionId, t.createdAt),
    index('rx_script_messages_message_id_idx').on(t.messageId),
  ],
);

export const REQUEST_STATUSES = ['pending', 'approved', 'denied'] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];

/** A pharmacy's RxRenewalRequest and the prescriber's answer. */
export const rxRenewalRequests = pgTable(
  'rx_renewal_requests',
  {
    id: id(),
    tenantId: tenantId(),
    prescriptionId: uuid('prescription_id').notNull(),
    patientId: uuid('patient_id').notNull(),
    prescriberId: uuid('prescriber_id').notNull(),
    /** the RxRenewalRequest's MessageID (the response relates to it) */
    requestMessageId: text('request_message_id').notNull(),
    status: text('status', { enum: REQUEST_STATUSES }).notNull().default('pending'),
    refillsApproved: integer('refills_approved'),
    denialCode: text('denial_code'),
    denialReason: text('denial_reason'),
    decidedBy: uuid('decided_by'),
    decidedAt: tstz('decided_at'),
    responseMessageId: text('response_message_id'),
    /** the prescription the approval created */
    newPrescriptionId: uuid('new_prescription_id'),
    version: integer('version').notNull().default(1),
    createdAt: tstz('created_at').notNull().defaultNow(),
  },
  (t) => [
    unique('rx_renewal_requests_tenant_id_id_key').on(t.tenantId, t.id),
    unique('rx_renewal_requests_message_key').on(t.tenantId, t.requestMessageId),
    index('rx_renewal_requests_prescriber_idx').on(t.tenantId, t.prescriberId, t.status),
  ],
);

/** A pharmacy's RxChangeRequest (substitution, clarification, prior authorization) and the prescriber's answer. */
export const rxChangeRequests = pgTable(
  'rx_change_requests',
  {
    id: id(),
    tenantId: tenantId(),
    prescriptionId: uuid('prescription_id').notNull(),
    patientId: uuid('patient_id').notNull(),
    prescriberId: uuid('prescriber_id').notNull(),
    requestMessageId: text('request_message_id').notNull(),
    /** SCRIPT MessageRequestCode: G, T, P, S, OS, D, U */
    requestCode: text('request_code').notNull(),
    /** the alternatives proposed (SCRIPT MedicationRequested, as parsed) */
    requested: jsonb('requested').$type<unknown[]>().notNull().default([]),
    status: text('status', { enum: REQUEST_STATUSES }).notNull().default('pending'),
    chosenIndex: integer('chosen_index'),
    denialCode: text('denial_code'),
    denialReason: text('denial_reason'),
    decidedBy: uuid('decided_by'),
    decidedAt: tstz('decided_at'),
    responseMessageId: text('response_message_id'),
    version: integer('version').notNull().default(1),
    createdAt: tstz('created_at').notNull().defaultNow(),
  },
  (t) => [
    unique('rx_change_requests_tenant_id_id_key').on(t.tenantId, t.id),
    unique('rx_change_requests_message_key').on(t.tenantId, t.requestMessageId),
    index('rx_change_requests_prescriber_idx').on(t.tenantId, t.prescriberId, t.status),
  ],
);

/**
 * EPCS activity (21 CFR 1311.150 / 1311.215): append-only, one row per
 * event, read by the daily activity report. The audit trail has the same
 * events; this table is what the report and its reviewers query.
 */
export const rxEpcsLog = pgTable(
  'rx_epcs_log',
  {
    id: id(),
    tenantId: tenantId(),
    at: tstz('at').notNull().defaultNow(),
    event: text('event').notNull(),
    outcome: text('outcome', { enum: ['allowed', 'denied'] }).notNull(),
    prescriberId: uuid('prescriber_id'),
    actorId: uuid('actor_id'),
    prescriptionId: uuid('prescription_id'),
    /** codes and ids only */
    detail: jsonb('detail').$type<Record<string, unknown>>().notNull().default({}),
  },
  (t) => [index('rx_epcs_log_at_idx').on(t.tenantId, t.at)],
);

/** The daily EPCS activity report of a tenant (21 CFR 1311.215): counts by event and outcome, and the prescriptions signed. */
export const rxEpcsReports = pgTable(
  'rx_epcs_reports',
  {
    id: id(),
    tenantId: tenantId(),
    /** the UTC day reported on */
    day: date('day', { mode: 'string' }).notNull(),
    /** { "<event>:<outcome>": count } */
    counts: jsonb('counts').$type<Record<string, number>>().notNull(),
    /** controlled-substance prescriptions signed that day: [{ prescriptionId, prescriberId, schedule }] */
    signed: jsonb('signed').$type<{ prescriptionId: string; prescriberId: string; schedule: string | null }[]>().notNull(),
    /** refused attempts (two-factor failures, missing DEA schedule or access) that day */
    refusals: integer('refusals').notNull(),
    generatedAt: tstz('generated_at').notNull().defaultNow(),
  },
  (t) => [unique('rx_epcs_reports_tenant_day_key').on(t.tenantId, t.day)],
);

export const PRIOR_AUTH_STATUSES = ['required', 'requested', 'pending', 'more_info', 'approved', 'denied', 'appealed', 'cancelled'] as const;
export type PriorAuthStatus = (typeof PRIOR_AUTH_STATUSES)[number];

/** Electronic prior authorization of a prescription, its question sets, answers and attachment metadata. */
export const rxPriorAuths = pgTable(
  'rx_prior_auths',
  {
    id: id(),
    tenantId: tenantId(),
    prescriptionId: uuid('prescription_id').notNull(),
    patientId: uuid('patient_id').notNull(),
    status: text('status', { enum: PRIOR_AUTH_STATUSES }).notNull().default('required'),
    /** the payer's (PBM's) case id */
    caseId: text('case_id'),
    /** question sets received, in order: [{ id, questions: [{ id, text, type, options?, required }] }] */
    questionSets: jsonb('question_sets').$type<unknown[]>().notNull().default([]),
    /** answers given: { [questionId]: value } */
    answers: jsonb('answers').$type<Record<string, unknown>>().notNull().default({}),
    /** attachments metadata only: [{ id, fileName, contentType, sizeBytes, sha256, description }] */
    attachments: jsonb('attachments').$type<unknown[]>().notNull().default([]),
    determinationReason: text('determination_reason'),
    approvedUntil: date('approved_until', { mode: 'string' }),
    appealReason: text('appeal_reason'),
    version: integer('version').notNull().default(1),
    ...timestamps(),
  },
  (t) => [unique('rx_prior_auths_tenant_id_id_key').on(t.tenantId, t.id), index('rx_prior_auths_prescription_idx').on(t.tenantId, t.prescriptionId)],
);

export type Pharmacy = typeof rxPharmacies.$inferSelect;
export type Prescriber = typeof rxPrescribers.$inferSelect;
export type DeaRegistration = typeof rxDeaRegistrations.$inferSelect;
export type EpcsAccess = typeof rxEpcsAccess.$inferSelect;
export type SigningKey = typeof rxSigningKeys.$inferSelect;
export type Prescription = typeof rxPrescriptions.$inferSelect;
export type PrescriptionEvent = typeof rxPrescriptionEvents.$inferSelect;
export type ScriptMessageRow = typeof rxScriptMessages.$inferSelect;
export type RenewalRequest = typeof rxRenewalRequests.$inferSelect;
export type ChangeRequest = typeof rxChangeRequests.$inferSelect;
export type EpcsLogEntry = typeof rxEpcsLog.$inferSelect;
export type PriorAuth = typeof rxPriorAuths.$inferSelect;
export type EpcsReport = typeof rxEpcsReports.$inferSelect;

/** The lifecycle's tables (tables.ts's eprescribingTables spreads them too, through index.ts / src/db/schema.ts). */
export const prescriptionTables = {
  rxPharmacies,
  rxPrescribers,
  rxDeaRegistrations,
  rxEpcsAccess,
  rxSigningKeys,
  rxPrescriptions,
  rxPrescriptionEvents,
  rxScriptMessages,
  rxRenewalRequests,
  rxChangeRequests,
  rxEpcsLog,
  rxEpcsReports,
  rxPriorAuths,
};
