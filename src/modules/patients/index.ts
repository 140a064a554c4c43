import type { Config } from '../../config.js';
import { createDbIndexKeyStore, createFieldCrypto, createKeyProvider, type FieldCrypto } from '../../platform/crypto/index.js';
import type { PermissionVocabulary } from '../../platform/access/index.js';
import type { ModuleManifest, RequestContext } from '../../schema/index.js';
import { registerPatientDirectory } from '../audit/index.js';
import { patientRoom, registerPatientLookup } from './access.js';
import { patientDirectory } from './directory.js';
import { importJob, IMPORT_JOB, type JobRuntime } from './jobs.js';
import { registerPatientsSchema } from './schema.js';
import type { PatientsRuntime } from './service.js';

export { patients, patientCareTeam, patientsTables, PATIENT_STATUSES, type PatientStatus } from './tables.js';
export { MASKING, PATIENT_SCOPE, PATIENT_ACTIONS, maskProfile, type MaskLevel, type MaskField, type PatientAction } from './policy.js';
/** The patient access scope: per-patient checks (`patientAccess.check`) and the same rules as SQL for lists (`patientAccess.where`). */
export { patientAccess, readScopeCondition } from './access.js';

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
  // one runtime per app (tests run several apps in a process), keyed like identity's
  const runtimes = new WeakMap<Config, PatientsRuntime>();
  // jobs get no Config: they use the runtime of the latest init in this process (one per worker)
  let jobRuntime: JobRuntime | undefined;
  const owned: FieldCrypto[] = [];
  const runtimeFor = (ctx: Pick<RequestContext, 'config'>): PatientsRuntime => {
    const rt = runtimes.get(ctx.config);
    if (!rt) throw new Error('patients module used before init');
    return rt;
  };
  const cleanups: (() => void)[] = [];
  return {
    name: 'patients',
    phase: 0,
    description: 'Patient demographics, encrypted SSN with audited reveal, masking by role, search, care teams, merge, legacy import',
    dependsOn: ['identity', 'access', 'audit'],
    permissions: PATIENT_PERMISSIONS,
    // `patient:<id>` rooms: patient:read, then the patient scope
    roomAccess: { patient: patientRoom },
    schema: (builder) => registerPatientsSchema(builder, runtimeFor),
    jobs: { [IMPORT_JOB]: importJob(() => jobRuntime) },
    async init(deps) {
      let crypto = deps.crypto;
      if (!crypto) {
        // the worker process and CLIs have no shared FieldCrypto: open one like the app does
        crypto = createFieldCrypto({ provider: createKeyProvider(deps.config, deps.log), indexKeys: createDbIndexKeyStore(deps.database.sideSql) });
        owned.push(crypto);
      }
      const rt = { crypto, mrnPool: deps.database.sideSql };
      runtimes.set(deps.config, rt);
      jobRuntime = { ...rt, dataDir: deps.config.dataDir };
      cleanups.push(registerPatientLookup(), registerPatientDirectory('patients', { ...patientDirectory }));
    },
    async close() {
      for (const off of cleanups.splice(0)) off();
      for (const c of owned.splice(0)) {
        c.close();
        await c.provider.close();
      }
    },
  };
}

const manifest: ModuleManifest = createPatientsModule();
export default manifest;
