import type { PermissionVocabulary } from '../../platform/access/index.js';
import { AppError, ErrorCode } from '../../platform/errors.js';
import type { ModuleDeps, ModuleManifest } from '../../schema/index.js';
import { registerIdentityRoutes } from './routes.js';
import { IdentityRuntime, looksLikeJwt, type IdentityOptions } from './runtime.js';
import { registerIdentitySchema } from './schema.js';

export { PLATFORM_TENANT_ID, PLATFORM_TENANT_SLUG, PLATFORM_ADMIN, REFRESH_COOKIE, REFRESH_COOKIE_PATH, CSRF_HEADER, authSettings, type AuthSettings } from './constants.js';
export { provisionTenant, invitePlatformAdmin, seedActiveUser, type ProvisionInput, type Provisioned } from './users.js';
export { securityEvents, users, sessions, identityTables } from './tables.js';
export type { IdentityOptions, IdentityRuntime } from './runtime.js';
export type { SecurityEventType } from './events.js';
/** Two-factor re-authentication (password + unused TOTP code) of the signed-in user at a sensitive act, e.g. EPCS signing. */
export { reauthenticate, type ReauthResult } from './reauth.js';
export { USER_CHANGE_GUARD, countUsersWithRole, type UserChange, type UserChangeGuard, type UserStatus } from './guards.js';

/** The identity module's permissions and the roles that hold them (PLATFORM_ADMIN: users of the platform tenant only). */
export const IDENTITY_PERMISSIONS: PermissionVocabulary = {
  permissions: {
    'user:read': 'List the users of the tenant',
    'user:invite': 'Invite users',
    // administering accounts and tenant settings requires MFA whatever other modules are enabled
    'user:manage': { description: 'Change roles, deactivate and reactivate users', mfa: true },
    'session:manage': 'List and revoke other users\u2019 sessions',
    'tenant:manage': { description: 'Change tenant settings', mfa: true },
    'tenant:create': { description: 'Create tenants with their first admin (platform administrators)', mfa: true },
    'signingkey:rotate': { description: 'Rotate the JWT signing keys on demand (platform administrators)', mfa: true },
  },
  roles: {
    ADMIN: ['user:read', 'user:invite', 'user:manage', 'session:manage', 'tenant:manage'],
    COMPLIANCE: ['user:read'],
    // user and session management in the platform tenant covers inviting other platform admins
    PLATFORM_ADMIN: ['tenant:create', 'signingkey:rotate', 'user:read', 'user:invite', 'user:manage', 'session:manage'],
  },
};

const IDENTITY = 'identity';
const invalidBearer = () => new AppError(ErrorCode.UNAUTHENTICATED, 'Invalid access token', { reason: 'invalid_token' });

/**
 * The identity module: tenants, users, invitations, passwords, sessions,
 * access / refresh tokens, TOTP MFA, security events. Its instance (one per
 * app: init returns it) is an IdentityRuntime; resolvers reach it with
 * `ctx.module<IdentityRuntime>('identity')`, hooks with `deps.instances`.
 */
export function createIdentityModule(options: IdentityOptions = {}): ModuleManifest {
  const instanceOf = (deps: Pick<ModuleDeps, 'instances'>) => deps.instances.get<IdentityRuntime>(IDENTITY);
  return {
    name: IDENTITY,
    phase: 0,
    description: 'Tenants, users and invitations; argon2id passwords with lockout; Ed25519 access tokens with rotating keys (JWKS); rotating refresh cookies with reuse detection; TOTP MFA; sessions; security events',
    dependsOn: [],
    // core module: always entitled, whatever the tenant's plan
    entitlement: null,
    permissions: IDENTITY_PERMISSIONS,
    schema: (builder) => registerIdentitySchema(builder, (ctx) => ctx.module<IdentityRuntime>(IDENTITY)),
    routes: (app, deps) => registerIdentityRoutes(app, () => instanceOf(deps), deps.config.publicOrigins),
    async authenticate(req, deps) {
      const header = req.headers.authorization;
      if (typeof header !== 'string') return undefined;
      const m = /^Bearer(?:\s+(.*))?$/i.exec(header.trim());
      if (!m) return undefined; // another scheme (ApiKey: the access module)
      const token = (m[1] ?? '').trim();
      if (!looksLikeJwt(token)) throw invalidBearer();
      return instanceOf(deps).authenticateAccessToken(token);
    },
    async authenticateToken(token, deps) {
      if (!looksLikeJwt(token)) return undefined;
      return instanceOf(deps).authenticateAccessToken(token);
    },
    async init(deps) {
      const rt = new IdentityRuntime(options);
      await rt.init(deps);
      return rt;
    },
  };
}

const manifest: ModuleManifest = createIdentityModule();
export default manifest;
