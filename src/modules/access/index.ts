import type { PermissionCatalog, PermissionVocabulary } from '../../platform/access/index.js';
import type { Config } from '../../config.js';
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
  // one manifest may serve several apps in one process (tests): one authenticator per app, keyed by its Config
  const authenticators = new WeakMap<Config, ApiKeyAuthenticator>();
  const catalogs = new WeakMap<Config, PermissionCatalog>();
  const live = new Set<ApiKeyAuthenticator>();
  return {
    name: 'access',
    phase: 0,
    description: 'RBAC/ABAC glue: API keys for partner systems (tiers, quotas) and break-glass emergency access',
    dependsOn: ['identity'],
    // core module: always entitled, whatever the tenant's plan
    entitlement: null,
    permissions: ACCESS_PERMISSIONS,
    schema: (builder) =>
      registerAccessSchema(builder, now, (ctx) => {
        const c = catalogs.get(ctx.config);
        if (!c) throw new Error('access module used before init');
        return c;
      }),
    async init(deps) {
      const a = createApiKeyAuthenticator({ sql: deps.database.sql, log: deps.log, now, permissions: deps.permissions });
      authenticators.set(deps.config, a);
      catalogs.set(deps.config, deps.permissions);
      live.add(a);
    },
    async authenticate(req, deps) {
      const key = apiKeyFromRequest(req);
      if (key === undefined) return undefined;
      const a = authenticators.get(deps.config);
      if (!a) throw new Error('access module used before init');
      return a.authenticate(key, req.ip);
    },
    async close() {
      // close() has no arguments: finish every app's pending last-used writes (non-destructive)
      await Promise.all([...live].map((a) => a.close()));
    },
  };
}

const manifest: ModuleManifest = createAccessModule();
export default manifest;
