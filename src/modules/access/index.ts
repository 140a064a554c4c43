import type { PermissionCatalog, PermissionVocabulary } from '../../platform/access/index.js';
import type { ModuleInstances } from '../../platform/scope/index.js';
import type { ModuleManifest } from '../../schema/index.js';
import { apiKeyFromRequest, createApiKeyAuthenticator, type ApiKeyAuthenticator } from './api-keys.js';
import { registerAccessSchema } from './schema.js';

export { API_KEY_PATTERN } from './api-keys.js';
export { BREAK_GLASS_ACTIONS, BREAK_GLASS_DEFAULT_MINUTES, SECURITY_ALERT_EVENT, SECURITY_ALERT_ROOM, breakGlassRule, isBreakGlassAccess } from './break-glass.js';
// tables are exported for src/db/schema.ts (composition) only: other modules use breakGlassRule, never the table
export { apiKeys, breakGlassGrants, accessTables } from './tables.js';

/** The access module's permissions and the roles that hold them. */
export const ACCESS_PERMISSIONS: PermissionVocabulary = {
  permissions: {
    'apikey:manage': 'Create, list and revoke API keys',
    'breakglass:invoke': 'Invoke time-boxed emergency access to one patient (break-glass)',
    'breakglass:review': 'List every break-glass grant of the tenant and end any of them',
  },
  roles: { ADMIN: ['apikey:manage'], PROVIDER: ['breakglass:invoke'], NURSE: ['breakglass:invoke'], COMPLIANCE: ['breakglass:review'] },
};

const ACCESS = 'access';

/**
 * Observers of authenticated API-key calls (manifest `provides: { [API_KEY_CALL]: observer }`), e.g. the billing
 * module's usage metering. Called once per request whose API key authenticated, with ids only; the request waits
 * for it (an observer batches its writes and must not throw: it logs its own failures).
 */
export const API_KEY_CALL = 'access:apiKeyCall';
export interface ApiKeyCall {
  tenantId: string;
  apiKeyId: string;
  /** the request id (X-Request-Id when the client sent a valid one): a retry with the same id is the same call */
  requestId: string;
  at: Date;
}
/** `instances`: the app's module instances (the observer's module reaches its own instance there) */
export type ApiKeyCallObserver = (call: ApiKeyCall, instances: ModuleInstances) => Promise<void>;

/** The access module's instance (one per app, returned by init). */
export interface AccessInstance {
  authenticator: ApiKeyAuthenticator;
  /** the app's permission table (API key principals, role grants) */
  permissions: PermissionCatalog;
  close(): Promise<void>;
}

export interface AccessModuleOptions {
  /** clock for grant expiry, key expiry and last-used throttling (tests inject one) */
  now?: () => Date;
}

/**
 * The access module: API keys for partner systems (authenticate hook:
 * `Authorization: ApiKey <key>` or `X-API-Key`) and break-glass grants (an
 * access rule, `breakGlassRule`, that the patients module puts in its patient
 * scope). RBAC itself lives in platform/access.
 */
export function createAccessModule(opts: AccessModuleOptions = {}): ModuleManifest {
  const now = opts.now ?? (() => new Date());
  return {
    name: ACCESS,
    phase: 0,
    description: 'RBAC/ABAC glue: API keys for partner systems (tiers, quotas) and break-glass emergency access',
    dependsOn: ['identity'],
    // core module: always entitled, whatever the tenant's plan
    entitlement: null,
    permissions: ACCESS_PERMISSIONS,
    schema: (builder) => registerAccessSchema(builder, now, (ctx) => ctx.module<AccessInstance>(ACCESS).permissions),
    async init(deps): Promise<AccessInstance> {
      const authenticator = createApiKeyAuthenticator({ sql: deps.database.sql, log: deps.log, now, permissions: deps.permissions });
      // close: finishes this app's pending last-used writes
      return { authenticator, permissions: deps.permissions, close: () => authenticator.close() };
    },
    async authenticate(req, deps) {
      const key = apiKeyFromRequest(req);
      if (key === undefined) return undefined;
      const principal = await deps.instances.get<AccessInstance>(ACCESS).authenticator.authenticate(key, req.ip);
      const observers = deps.instances.provided<ApiKeyCallObserver>(API_KEY_CALL);
      if (observers.length) {
        const call: ApiKeyCall = { tenantId: principal.tenantId, apiKeyId: principal.id, requestId: String(req.id), at: now() };
        await Promise.all(observers.map((observe) => observe(call, deps.instances)));
      }
      return principal;
    },
  };
}

const manifest: ModuleManifest = createAccessModule();
export default manifest;
