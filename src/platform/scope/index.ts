/**
 * One request scope for every door (GraphQL, module routes, socket events,
 * jobs): principal, lazy tenant transaction, deadline, PHI-access trail
 * durable before the answer, entitlements. See docs/contributing.md
 * "Request scope".
 */
export { RequestScope, ScopeFactory, jobPrincipal, systemPrincipal, type ScopeDoor, type ScopeEnv, type ScopeInit, type ScopePrincipal } from './scope.js';
export { Entitlements, ENTITLEMENTS_TTL_MS, entitlementKey, notEntitled, type EntitledModule } from './entitlements.js';
export { defineRoute, registerRoute, routeStatus, streamBody, type RouteAdapterOptions, type RouteDefinition, type StreamBody } from './route.js';
export { tenantEntitlements } from './tables.js';
export { ModuleInstances, type ModuleInstance } from './instances.js';
