import { sql } from 'drizzle-orm';
import { bigint, check, customType, date, foreignKey, index, integer, jsonb, pgTable, primaryKey, text, timestamp, unique, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
// column.js directly (not index.ts): drizzle-kit loads this file, and index.ts pulls in the db layer
import { encryptedColumn } from '../../platform/crypto/column.js';
import { id, tenantId, timestamps } from '../../platform/db/tables.js';

/**
 * Patients tables. Every table is tenant-owned (RLS). The SSN is stored only
 * as field-encryption envelopes (full value and, separately, its last four
 * digits) plus a blind index for exact-match search; see docs/modules/patients.md.
 */

const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => 'bytea' });
/**
 * Search keys are compared byte-wise (collation "C"): prefix ranges, ORDER BY
 * and keyset row comparisons all use one plain btree, also with generic plans.
 */
const searchKey = customType<{ data: string; driverData: string }>({ dataType: () => 'text COLLATE "C"' });
const tstz = (name: string) => timestamp(name, { withTimezone: true });

export const PATIENT_STATUSES = ['active', 'inactive', 'deceased', 'merged'] as const;
export type PatientStatus = (typeof PATIENT_STATUSES)[number];
export const SEX_AT_BIRTH = ['female', 'male', 'intersex', 'unknown'] as const;
export type SexAtBirth = (typeof SEX_AT_BIRTH)[number];
export const PHONE_USES = ['mobile', 'home', 'work', 'other'] as const;
export const CARE_TEAM_ROLES = ['primary_provider', 'provider', 'nurse', 'care_coordinator', 'other'] as const;
export type CareTeamRole = (typeof CARE_TEAM_ROLES)[number];

export interface PatientPhone {
  use: (typeof PHONE_USES)[number];
  /** E.164, e.g. +15551234567 */
  number: string;
}
export interface PatientAddress {
  line1: string;
  line2?: string | null;
  city: string;
  state?: string | null;
  postalCode: string;
  /** ISO 3166-1 alpha-2 */
  country: string;
}
export interface EmergencyContact {
  name: string;
  relationship: string;
  phone: string;
}
export interface InsuranceCoverage {
  payerName: string;
  planName?: string | null;
  memberId: string;
  groupNumber?: string | null;
  /** self, spouse, child, other */
  subscriberRelationship?: string | null;
  effectiveDate?: string | null;
  expirationDate?: string | null;
}

export const patients = pgTable(
  'patients',
  {
    id: id(),
    tenantId: tenantId(),
    /** medical record number: per-tenant counter + Luhn check digit (see mrn.ts) */
    mrn: text('mrn').notNull(),
    givenName: text('given_name').notNull(),
    familyName: text('family_name').notNull(),
    preferredName: text('preferred_name'),
    /** lower case, accents and punctuation removed (carebase_search_norm, unaccent): name search keys */
    givenNorm: searchKey('given_norm').generatedAlwaysAs(sql`carebase_search_norm(given_name)`),
    familyNorm: searchKey('family_norm').generatedAlwaysAs(sql`carebase_search_norm(family_name)`),
    dateOfBirth: date('date_of_birth', { mode: 'string' }).notNull(),
    sexAtBirth: text('sex_at_birth', { enum: SEX_AT_BIRTH }),
    genderIdentity: text('gender_identity'),
    email: text('email'),
    phones: jsonb('phones').$type<PatientPhone[]>().notNull().default([]),
    /** digits of every phone (E.164 without +), for exact phone search */
    phoneDigits: text('phone_digits').array().notNull().default(sql`'{}'::text[]`),
    address: jsonb('address').$type<PatientAddress>(),
    /** BCP 47 language tag, e.g. en, es-MX */
    language: text('language'),
    emergencyContact: jsonb('emergency_contact').$type<EmergencyContact>(),
    insurance: jsonb('insurance').$type<InsuranceCoverage>(),
    /** envelope of the 9 SSN digits */
    ssn: encryptedColumn('ssn'),
    /** envelope of the last 4 SSN digits (shown masked without decrypting the full SSN) */
    ssnLast4: encryptedColumn('ssn_last4'),
    /** HMAC-SHA256 under the tenant's blind-index key over the 9 digits */
    ssnIndex: bytea('ssn_index'),
    status: text('status', { enum: PATIENT_STATUSES }).notNull().default('active'),
    deceasedDate: date('deceased_date', { mode: 'string' }),
    mergedInto: uuid('merged_into'),
    mergedAt: tstz('merged_at'),
    /** the PATIENT user account of this patient (patient-self access) */
    userId: uuid('user_id'),
    /** optimistic concurrency: every update must name the version it read */
    version: integer('version').notNull().default(1),
    createdBy: uuid('created_by'),
    updatedBy: uuid('updated_by'),
    ...timestamps(),
  },
  (t) => [
    unique('patients_tenant_id_id_key').on(t.tenantId, t.id),
    unique('patients_tenant_mrn_key').on(t.tenantId, t.mrn),
    uniqueIndex('patients_tenant_user_key').on(t.tenantId, t.userId).where(sql`${t.userId} is not null`),
    // name search: prefix range on family (then given) name, keyset order (family_norm, given_norm, id)
    index('patients_name_idx').on(t.tenantId, t.familyNorm, t.givenNorm, t.id),
    index('patients_given_name_idx').on(t.tenantId, t.givenNorm, t.familyNorm, t.id),
    index('patients_dob_idx').on(t.tenantId, t.dateOfBirth, t.familyNorm, t.givenNorm, t.id),
    index('patients_ssn_index_idx').on(t.tenantId, t.ssnIndex).where(sql`${t.ssnIndex} is not null`),
    index('patients_phone_digits_idx').using('gin', t.phoneDigits),
    index('patients_merged_into_idx').on(t.tenantId, t.mergedInto).where(sql`${t.mergedInto} is not null`),
    foreignKey({ name: 'patients_merged_into_fkey', columns: [t.tenantId, t.mergedInto], foreignColumns: [t.tenantId, t.id] }),
    check('patients_version_check', sql`${t.version} > 0`),
    check('patients_merged_check', sql`(${t.status} = 'merged') = (${t.mergedInto} is not null)`),
    check('patients_deceased_check', sql`${t.deceasedDate} is null or ${t.status} in ('deceased', 'merged')`),
    check('patients_ssn_check', sql`(${t.ssn} is null) = (${t.ssnIndex} is null) and (${t.ssn} is null) = (${t.ssnLast4} is null)`),
  ],
);

/** Per-tenant MRN counter (numbers are unique and increasing, never reused; see allocateMrns). */
export const patientMrnCounters = pgTable('patient_mrn_counters', {
  tenantId: tenantId().primaryKey(),
  lastValue: bigint('last_value', { mode: 'number' }).notNull().default(0),
});

/** Users on a patient's care team (the care-team ABAC rule reads this). */
export const patientCareTeam = pgTable(
  'patient_care_team',
  {
    tenantId: tenantId(),
    patientId: uuid('patient_id').notNull(),
    userId: uuid('user_id').notNull(),
    role: text('role', { enum: CARE_TEAM_ROLES }).notNull(),
    addedBy: uuid('added_by'),
    addedAt: tstz('added_at').notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ name: 'patient_care_team_pkey', columns: [t.tenantId, t.patientId, t.userId] }),
    foreignKey({ name: 'patient_care_team_patient_fkey', columns: [t.tenantId, t.patientId], foreignColumns: [patients.tenantId, patients.id] }).onDelete('cascade'),
    // "my patients" and the provider/nurse search scope
    index('patient_care_team_user_idx').on(t.tenantId, t.userId, t.patientId),
  ],
);

/** Every full-SSN reveal that was allowed, with its stated reason (the audit event holds ids and codes only). */
export const patientSsnReveals = pgTable(
  'patient_ssn_reveals',
  {
    id: id(),
    tenantId: tenantId(),
    patientId: uuid('patient_id').notNull(),
    actorId: uuid('actor_id').notNull(),
    purposeOfUse: text('purpose_of_use').notNull(),
    /** free text written by the user: visible to compliance only, never logged */
    reason: text('reason').notNull(),
    requestId: text('request_id'),
    at: tstz('at').notNull().defaultNow(),
  },
  (t) => [
    index('patient_ssn_reveals_patient_idx').on(t.tenantId, t.patientId, t.at),
    foreignKey({ name: 'patient_ssn_reveals_patient_fkey', columns: [t.tenantId, t.patientId], foreignColumns: [patients.tenantId, patients.id] }),
  ],
);

/** Merges of duplicate records: who merged which record into which, and what was moved. */
export const patientMerges = pgTable(
  'patient_merges',
  {
    id: id(),
    tenantId: tenantId(),
    sourceId: uuid('source_id').notNull(),
    targetId: uuid('target_id').notNull(),
    actorId: uuid('actor_id'),
    /** counts of moved references (care team members, user link), ids only */
    moved: jsonb('moved').$type<Record<string, number>>().notNull().default({}),
    /** why the records were merged, as the user wrote it: visible to compliance only, never logged */
    reason: text('reason'),
    at: tstz('at').notNull().defaultNow(),
  },
  (t) => [index('patient_merges_target_idx').on(t.tenantId, t.targetId), index('patient_merges_source_idx').on(t.tenantId, t.sourceId)],
);

/**
 * Registrations that went ahead although they looked like a duplicate (same
 * SSN as a patient of the clinic): who overrode the warning, about which
 * record, and why. Append-only; the audit event of the create carries the ids.
 */
export const patientDuplicateOverrides = pgTable(
  'patient_duplicate_overrides',
  {
    id: id(),
    tenantId: tenantId(),
    /** the patient that was created anyway */
    patientId: uuid('patient_id').notNull(),
    /** the existing patient it may duplicate */
    duplicateOf: uuid('duplicate_of').notNull(),
    actorId: uuid('actor_id'),
    /** free text written by the user: visible to compliance only, never logged */
    reason: text('reason').notNull(),
    requestId: text('request_id'),
    at: tstz('at').notNull().defaultNow(),
  },
  (t) => [
    index('patient_duplicate_overrides_patient_idx').on(t.tenantId, t.patientId),
    foreignKey({ name: 'patient_duplicate_overrides_patient_fkey', columns: [t.tenantId, t.patientId], foreignColumns: [patients.tenantId, patients.id] }),
    foreignKey({ name: 'patient_duplicate_overrides_duplicate_fkey', columns: [t.tenantId, t.duplicateOf], foreignColumns: [patients.tenantId, patients.id] }),
  ],
);

/** Legacy CSV imports: one row per (tenant, file); the checkpoint is the last committed line. */
export const patientImports = pgTable(
  'patient_imports',
  {
    id: id(),
    tenantId: tenantId(),
    /** SHA-256 of the file: re-running the same file resumes this import */
    fileSha256: text('file_sha256').notNull(),
    fileName: text('file_name').notNull(),
    status: text('status', { enum: ['running', 'completed', 'failed'] }).notNull().default('running'),
    /** last physical line of the file whose row is committed (0 = only the header, if any) */
    checkpointLine: integer('checkpoint_line').notNull().default(0),
    imported: integer('imported').notNull().default(0),
    rejected: integer('rejected').notNull().default(0),
    /** row errors: line number, column name and a code; never a value */
    errors: jsonb('errors').$type<{ line: number; field: string; code: string }[]>().notNull().default([]),
    ...timestamps(),
  },
  (t) => [unique('patient_imports_tenant_file_key').on(t.tenantId, t.fileSha256)],
);

export const patientsTables = { patients, patientMrnCounters, patientCareTeam, patientSsnReveals, patientMerges, patientDuplicateOverrides, patientImports };
