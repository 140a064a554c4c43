import { resourceLookupKey, type PermissionVocabulary } from '../../platform/access/index.js';
import type { ModuleInstance } from '../../platform/scope/index.js';
import type { ModuleManifest } from '../../schema/index.js';
import { PATIENT_DIRECTORY } from '../audit/index.js';
import { patientLookup, patientRoom } from './access.js';
import { patientDirectory } from './directory.js';
import { importJob, IMPORT_JOB, type JobRuntime } from './jobs.js';
import { registerPatientsSchema } from './schema.js';

export { patients, patientCareTeam, patientsTables, PATIENT_STATUSES, type PatientStatus } from './tables.js';
export { MASKING, PATIENT_SCOPE, PATIENT_ACTIONS, maskProfile, type MaskLevel, type MaskField, type PatientAction } from './policy.js';
/** The patient access scope: per-patient checks (`patientAccess.check`) and the same rules as SQL for lists (`patientAccess.where`). */
export { patientAccess, readScopeCondition } from './access.js';

const PATIENTS = 'patients';

/** The patients module's instance (one per app, returned by init): what its services and jobs need. */
export type PatientsInstance = JobRuntime & ModuleInstance;

/** The patients module's permissions and the roles that hold them (the patient scope then narrows them per patient). */
export const PATIENT_PERMISSIONS: PermissionVocabulary = {
  permissions: {
    'patient:read': 'Read patient demographics (name, contact, identifiers except SSN)',
    'patient:write': 'Create and update patient demographics',
    'patient:ssn:reveal': 'Reveal a patient SSN in full',
    'patient:clinical:read': 'Read clinical data (visits, notes, problems, vitals, photos)',
    'patient:clinical:write': 'Write clinical data',
    'patient:billing:read': 'Read a patient billing data (insurance, claims, balances)',
  },
  roles: {
    ADMIN: ['patient:read', 'patient:write'],
    PROVIDER: ['patient:read', 'patient:write', 'patient:clinical:read', 'patient:clinical:write'],
    NURSE: ['patient:read', 'patient:write', 'patient:clinical:read', 'patient:clinical:write'],
    FRONT_DESK: ['patient:read', 'patient:write', 'patient:billing:read'],
    BILLING: ['patient:read', 'patient:billing:read', 'patient:ssn:reveal'],
    // a patient's own record only: the patient scope's self rule denies every other patient
    PATIENT: ['patient:read', 'patient:clinical:read'],
    API_CLIENT: ['patient:read', 'patient:write', 'patient:clinical:read', 'patient:clinical:write'],
  },
};
/** The PHI categories the patients module's fields are marked with (`phi: 'demographics'`, ...). */
export const PATIENT_PHI_CATEGORIES: Readonly<Record<string, string>> = {
  demographics: 'Name, date of birth, sex, gender identity, language, status, date of death',
  identity: 'Identifiers: medical record number, the linked patient account',
  contact: 'Address, phone, email, emergency contact',
  ssn: 'Social Security number (presence, last four digits, full value on reveal)',
  billing: 'Insurance (payer, member and group numbers)',
};
export { IMPORT_JOB, stageImport } from './jobs.js';
export { importPatientsCsv, IMPORT_COLUMNS, type ImportProgress, type RowError } from './importer.js';

/**
 * Patients: demographics with an envelope-encrypted SSN (blind index for
 * exact search, last 4 digits encrypted on their own), masking per role,
 * audited SSN reveal, name/DOB/MRN/phone/SSN search with keyset pagination,
 * care teams and the patient ABAC rules (care team, patient self), merge of
 * duplicates, legacy CSV import. See docs/modules/patients.md.
 */
export function createPatientsModule(): ModuleManifest {
  return {
    name: PATIENTS,
    phase: 0,
    description: 'Patient demographics, encrypted SSN with audited reveal, masking by role, search, care teams, merge, legacy import',
    dependsOn: ['identity', 'access', 'audit'],
    permissions: PATIENT_PERMISSIONS,
    phiCategories: PATIENT_PHI_CATEGORIES,
    // `patient:<id>` rooms: patient:read, then the patient scope
    roomAccess: { patient: patientRoom },
    // by id for other modules (break-glass, audit flags); care teams and employee flags for the audit's anomaly rules
    provides: { [resourceLookupKey('patient')]: patientLookup, [PATIENT_DIRECTORY]: patientDirectory },
    schema: (builder) => registerPatientsSchema(builder, (ctx) => ctx.module<PatientsInstance>(PATIENTS)),
    // the worker's instance: the same shared FieldCrypto as the API's (src/boot.ts)
    jobs: { [IMPORT_JOB]: importJob((ctx) => ctx.scope.module<PatientsInstance>(PATIENTS)) },
    async init(deps): Promise<PatientsInstance> {
      return { crypto: deps.crypto, mrnPool: deps.database.sideSql, dataDir: deps.config.dataDir };
    },
  };
}

const manifest: ModuleManifest = createPatientsModule();
export default manifest;
