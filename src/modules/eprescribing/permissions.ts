import type { PermissionVocabulary } from '../../platform/access/index.js';

/**
 * The e-prescribing module's permissions and the platform roles that hold
 * them. Reading or writing a patient's medications or allergies also needs
 * the patients module's scope for that patient (`clinical:read` /
 * `clinical:write`: care team, patient self, break-glass), checked through
 * patients' index.ts. Prescription lifecycle / EPCS permissions are added to
 * this same vocabulary (one vocabulary per module, each name declared once).
 */
export const RX_PERMISSIONS_CATALOG = {
  'rx:catalog:read': 'Search and read the medication catalog (drugs, ingredients, classes, interactions): reference data, no PHI',
  'rx:medication:read': "Read a patient's medication list",
  'rx:medication:write': "Add, change and stop entries of a patient's medication list",
  'rx:allergy:read': "Read a patient's drug allergies and intolerances",
  'rx:allergy:write': "Record, change and resolve a patient's drug allergies",
  'rx:check': 'Run the prescribing safety checks (interactions, allergies, duplicate therapy, dose) for a patient',
  'rx:alert:override': 'Override a major or contraindicated safety alert (with a reason, audited)',
} as const;

export const EPRESCRIBING_PERMISSIONS: PermissionVocabulary = {
  permissions: { ...RX_PERMISSIONS_CATALOG },
  roles: {
    PROVIDER: ['rx:catalog:read', 'rx:medication:read', 'rx:medication:write', 'rx:allergy:read', 'rx:allergy:write', 'rx:check', 'rx:alert:override'],
    NURSE: ['rx:catalog:read', 'rx:medication:read', 'rx:medication:write', 'rx:allergy:read', 'rx:allergy:write', 'rx:check'],
    ADMIN: ['rx:catalog:read'],
    FRONT_DESK: ['rx:catalog:read'],
    // a patient's own list only: the patient scope's self rule denies every other patient
    PATIENT: ['rx:medication:read', 'rx:allergy:read'],
    API_CLIENT: ['rx:catalog:read', 'rx:medication:read', 'rx:medication:write', 'rx:allergy:read', 'rx:allergy:write', 'rx:check'],
  },
};

/** The PHI categories this module's fields are marked with. */
export const EPRESCRIBING_PHI_CATEGORIES: Readonly<Record<string, string>> = {
  medications: "A patient's medications: medication list entries, prescriptions, directions, safety alerts and overrides about them",
  allergies: "A patient's drug allergies and intolerances (allergen, reaction, severity)",
};
