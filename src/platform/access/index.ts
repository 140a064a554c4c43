/**
 * Authorization: RBAC (the permission table) and ABAC (patient access rules
 * registered by modules). See docs/security.md "Authorization".
 */
export {
  ROLES,
  USER_ROLES,
  PERMISSIONS,
  ALL_PERMISSIONS,
  ROLE_PERMISSIONS,
  MFA_REQUIRED_PERMISSIONS,
  isRole,
  isPermission,
  permissionsForRoles,
  rolesRequireMfa,
  type Role,
  type Permission,
} from './permissions.js';
export {
  PATIENT_ACTIONS,
  registerPatientAccessRule,
  registerPatientLookup,
  patientAccessRuleNames,
  patientExists,
  checkPatientAccess,
  authorizePatient,
  type AccessDecision,
  type AllowWithRef,
  type AccessPrincipal,
  type PatientAction,
  type PatientAccessRule,
  type PatientRuleOptions,
  type PatientLookup,
  type PatientAccessResult,
} from './rules.js';
export { rootOperations, permissionsInScopes, authScopeProblems, assertAuthScopes, AuthScopeError, type RootOperation, type ScopeSpec } from './schema-check.js';
