import { registerPatientAccessRule } from '../../platform/access/index.js';
import type { Config } from '../../config.js';
import type { ModuleManifest } from '../../schema/index.js';
import { apiKeyFromRequest, createApiKeyAuthenticator, type ApiKeyAuthenticator } from './api-keys.js';
import { breakGlassRule } from './break-glass.js';
import { registerAccessSchema } from './schema.js';

export { API_KEY_PATTERN } from './api-keys.js';
export { BREAK_GLASS_ACTIONS, BREAK_GLASS_DEFAULT_MINUTES, SECURITY_ALERT_EVENT, SECURITY_ALERT_ROOM } from './break-glass.js';
export { apiKeys, breakGlassGrants, accessTables } from './tables.js';

export interface AccessModuleOptions {
  /** clock for grant expiry, key expiry and last-used throttling (tests inject one) */
  now?: () => Date;
}

/**
 * The access module: API keys for partner systems (authenticate hook:
 * `Authorization: ApiKey <key>` or `X-API-Key`) and break-glass grants (an
 * ABAC rule on platform/access). RBAC itself lives in platform/access.
 */
export function createAccessModule(opts: AccessModuleOptions = {}): ModuleManifest {
  const now = opts.now ?? (() => new Date());
  // one manifest may serve several apps in one process (tests): one authenticator per app, keyed by its Config
  const authenticators = new WeakMap<Config, ApiKeyAuthenticator>();
  const live = new Set<ApiKeyAuthenticator>();
  let unregister: (() => void) | undefined;
  return {
    name: 'access',
    phase: 0,
    description: 'RBAC/ABAC glue: API keys for partner systems (tiers, quotas) and break-glass emergency access',
    dependsOn: ['identity'],
    // core module: always entitled, whatever the tenant's plan
    entitlement: null,
    schema: (builder) => registerAccessSchema(builder, now),
    async init(deps) {
      const a = createApiKeyAuthenticator({ sql: deps.database.sql, log: deps.log, now });
      authenticators.set(deps.config, a);
      live.add(a);
      // the rule reads grants through the request's own (tenant-scoped) transaction, so one registration serves every app
      unregister ??= registerPatientAccessRule('access.breakGlass', breakGlassRule(now), { allowOnly: true });
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
      unregister?.();
      unregister = undefined;
    },
  };
}

const manifest: ModuleManifest = createAccessModule();
export default manifest;
