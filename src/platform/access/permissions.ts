/**
 * Roles and permissions (RBAC): the permission table lives in code, so a
 * change to who may do what is a reviewed diff. GraphQL fields require a
 * permission with `authScopes: { permission: 'patient:read' }`; a principal
 * holds the union of its roles' permissions (API keys: the key's scoped
 * subset of API_CLIENT's). Anything not granted here is denied.
 */

export const ROLES = ['ADMIN', 'PROVIDER', 'NURSE', 'FRONT_DESK', 'BILLING', 'COMPLIANCE', 'PATIENT', 'API_CLIENT', 'PLATFORM_ADMIN'] as const;
export type Role = (typeof ROLES)[number];

/** Roles a user account may hold (API_CLIENT is only for API keys). */
export const USER_ROLES = ROLES.filter((r) => r !== 'API_CLIENT') as Exclude<Role, 'API_CLIENT'>[];

/** Every permission, with what it allows. */
export const PERMISSIONS = {
  'patient:read': 'Read patient demographics (name, contact, identifiers except SSN)',
  'patient:write': 'Create and update patient demographics',
  'patient:ssn:reveal': 'Reveal a patient SSN in full',
  'patient:clinical:read': 'Read clinical data (visits, notes, problems, vitals, photos)',
  'patient:clinical:write': 'Write clinical data',
  'patient:billing:read': 'Read a patient billing data (insurance, claims, balances)',
  'appointment:read': 'Read appointments and schedules',
  'appointment:write': 'Book, move and cancel appointments',
  'rx:read': 'Read prescriptions',
  'rx:write': 'Draft prescriptions',
  'rx:sign': 'Sign (send) prescriptions',
  'rx:controlled:sign': 'Sign prescriptions for controlled substances (EPCS; requires MFA)',
  'billing:read': 'Read invoices, payments and claims',
  'billing:write': 'Create invoices, record payments, submit claims',
  'audit:read': 'Read PHI-access audit reports and security events',
  'audit:export': 'Export audit reports',
  'alert:read': 'Read security alerts (e.g. break-glass invocations)',
  'alert:manage': 'Acknowledge security alerts',
  'user:read': 'List the users of the tenant',
  'user:invite': 'Invite users',
  'user:manage': 'Change roles, deactivate and reactivate users',
  'session:manage': 'List and revoke other users\u2019 sessions',
  'apikey:manage': 'Create, list and revoke API keys',
  'breakglass:invoke': 'Invoke time-boxed emergency access to one patient (break-glass)',
  'breakglass:review': 'List every break-glass grant of the tenant and end any of them',
  'tenant:manage': 'Change tenant settings',
  'jobs:manage': 'List, retry and discard the tenant\u2019s failed background jobs (dead-letter queue)',
  'jobs:platform': 'With jobs:manage, also the failed runs of platform-wide scheduled jobs (platform administrators)',
  'tenant:create': 'Create tenants with their first admin (platform administrators)',
  'signingkey:rotate': 'Rotate the JWT signing keys on demand (platform administrators)',
} as const satisfies Record<string, string>;
export type Permission = keyof typeof PERMISSIONS;

export const ALL_PERMISSIONS = Object.keys(PERMISSIONS) as Permission[];

const CLINICAL: Permission[] = ['patient:read', 'patient:write', 'patient:clinical:read', 'patient:clinical:write', 'appointment:read', 'appointment:write', 'rx:read'];

/** The permission table: role -> permissions. */
export const ROLE_PERMISSIONS: Readonly<Record<Role, readonly Permission[]>> = {
  ADMIN: [
    'patient:read', 'patient:write', 'appointment:read', 'appointment:write', 'billing:read',
    'user:read', 'user:invite', 'user:manage', 'session:manage', 'apikey:manage', 'audit:read', 'alert:read', 'alert:manage', 'tenant:manage', 'jobs:manage',
  ],
  PROVIDER: [...CLINICAL, 'rx:write', 'rx:sign', 'rx:controlled:sign', 'breakglass:invoke'],
  NURSE: [...CLINICAL, 'rx:write', 'breakglass:invoke'],
  FRONT_DESK: ['patient:read', 'patient:write', 'appointment:read', 'appointment:write', 'patient:billing:read'],
  BILLING: ['patient:read', 'patient:billing:read', 'patient:ssn:reveal', 'billing:read', 'billing:write'],
  COMPLIANCE: ['audit:read', 'audit:export', 'alert:read', 'alert:manage', 'breakglass:review', 'user:read'],
  /** a patient's own record only: the patients module's patient-self rule denies every other patient */
  PATIENT: ['patient:read', 'patient:clinical:read', 'appointment:read', 'appointment:write', 'rx:read', 'billing:read'],
  /** users of the platform tenant only (the identity module refuses the role elsewhere and strips it from tokens); user and session management there covers inviting other platform admins */
  PLATFORM_ADMIN: ['tenant:create', 'signingkey:rotate', 'user:read', 'user:invite', 'user:manage', 'session:manage', 'jobs:manage', 'jobs:platform'],
  /** the most an API key may ever be granted; each key holds a subset chosen by the admin who creates it */
  API_CLIENT: ['patient:read', 'patient:write', 'patient:clinical:read', 'patient:clinical:write', 'appointment:read', 'appointment:write', 'rx:read', 'billing:read'],
};

/** Permissions whose holders must sign in with MFA (issue 4: controlled substances, audit reports). */
export const MFA_REQUIRED_PERMISSIONS: readonly Permission[] = ['rx:controlled:sign', 'audit:read', 'audit:export', 'tenant:create', 'signingkey:rotate'];

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}

export function isPermission(value: string): value is Permission {
  return Object.hasOwn(PERMISSIONS, value);
}

/** Union of the permissions of the given roles; unknown role names grant nothing. */
export function permissionsForRoles(roles: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const r of roles) {
    if (!isRole(r)) continue;
    for (const p of ROLE_PERMISSIONS[r]) out.add(p);
  }
  return out;
}

/** True when any of the roles holds a permission that requires MFA. */
export function rolesRequireMfa(roles: readonly string[]): boolean {
  const perms = permissionsForRoles(roles);
  return MFA_REQUIRED_PERMISSIONS.some((p) => perms.has(p));
}
