/**
 * Authorization: RBAC (roles, and the permission catalog built from the
 * platform's and the enabled modules' vocabularies) and ABAC (access scopes
 * that modules create, each rule giving a per-id check and a SQL condition).
 * See docs/security.md "Authorization".
 */
export {
  ROLES,
  USER_ROLES,
  PLATFORM_PERMISSIONS,
  MFA_ROLES,
  PermissionCatalog,
  isRole,
  type Role,
  type Permission,
  type PermissionSpec,
  type PermissionVocabulary,
} from './permissions.js';
export {
  AccessScope,
  createAccessScope,
  resourceLookupKey,
  resourceExists,
  type AccessDecision,
  type AllowWithRef,
  type AccessPrincipal,
  type AccessRule,
  type AccessResult,
  type AccessScopeOptions,
  type IdCondition,
  type PerIdRule,
  type ResourceLookup,
  type RuleVote,
} from './rules.js';
export { rootOperations, permissionsInScopes, authScopeProblems, assertAuthScopes, AuthScopeError, type RootOperation, type ScopeSpec } from './schema-check.js';
