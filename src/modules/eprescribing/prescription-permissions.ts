import type { PermissionVocabulary } from '../../platform/access/index.js';

/**
 * Permissions of the prescription lifecycle, EPCS and prior authorization
 * (merged into the module's vocabulary in index.ts). A prescription is also
 * subject to the patients module's scope for its patient (clinical:read /
 * clinical:write: care team, patient self, break-glass).
 */
export const PRESCRIPTION_PERMISSIONS_CATALOG = {
  'rx:prescription:read': "Read a patient's prescriptions, their history, renewal and change requests",
  'rx:prescription:write': 'Write and edit draft prescriptions, run their safety check, transmit signed ones, answer prior authorization questions',
  'rx:prescription:sign': { description: 'Sign prescriptions (as their prescriber), cancel them, approve or deny renewal and change requests', mfa: true },
  'rx:pharmacy:read': "Read the clinic's pharmacy directory",
  'rx:pharmacy:manage': "Add and change pharmacies of the clinic's directory",
  'rx:prescriber:manage': { description: 'Register prescribers (NPI, license) and their DEA registrations', mfa: true },
  'rx:epcs:approve': { description: 'Grant or revoke a prescriber logical access to sign controlled substances (two different approvers needed)', mfa: true },
  'rx:epcs:report': { description: 'Read the EPCS activity report and log', mfa: true },
  'rx:network:inbound': 'Deliver SCRIPT messages from the pharmacy network (held only by the verified network principal, no role)',
} as const;

export const PRESCRIPTION_ROLE_GRANTS: PermissionVocabulary['roles'] = {
  PROVIDER: ['rx:prescription:read', 'rx:prescription:write', 'rx:prescription:sign', 'rx:pharmacy:read'],
  NURSE: ['rx:prescription:read', 'rx:prescription:write', 'rx:pharmacy:read'],
  ADMIN: ['rx:pharmacy:read', 'rx:pharmacy:manage', 'rx:prescriber:manage', 'rx:epcs:approve', 'rx:epcs:report'],
  COMPLIANCE: ['rx:epcs:report', 'rx:pharmacy:read'],
  FRONT_DESK: ['rx:pharmacy:read'],
  // a patient's own prescriptions only: the patient scope's self rule denies every other patient
  PATIENT: ['rx:prescription:read'],
  API_CLIENT: ['rx:prescription:read', 'rx:pharmacy:read'],
};

/** Merges another part's vocabulary into the module's (each permission name declared once). */
export function mergeVocabularies(a: PermissionVocabulary, b: PermissionVocabulary): PermissionVocabulary {
  for (const name of Object.keys(b.permissions)) if (name in a.permissions) throw new Error(`eprescribing: permission ${name} declared twice`);
  const roles: Record<string, string[]> = {};
  for (const [role, list] of [...Object.entries(a.roles ?? {}), ...Object.entries(b.roles ?? {})]) roles[role] = [...(roles[role] ?? []), ...list];
  return { permissions: { ...a.permissions, ...b.permissions }, roles };
}

export const PRESCRIPTION_PERMISSIONS: PermissionVocabulary = { permissions: { ...PRESCRIPTION_PERMISSIONS_CATALOG }, roles: PRESCRIPTION_ROLE_GRANTS };
