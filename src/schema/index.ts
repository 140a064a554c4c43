import { GraphQLSchema, lexicographicSortSchema, printSchema } from 'graphql';
import { assertAuthScopes } from '../platform/access/index.js';
import { PLATFORM_PHI_CATEGORIES } from '../platform/audit/index.js';
import { createBuilder, type Builder } from './builder.js';
import { permissionCatalog, type ModuleManifest } from './module.js';
import { registerPlatformSchema } from './platform.js';
import { entitledBuilder, gateEntitledFields } from './entitlements.js';

export { createBuilder, type Builder, type SchemaTypes } from './builder.js';
export type { RequestContext, Principal } from './context.js';
export type { ModuleManifest, ModuleDeps, JobHandler, SocketHandler } from './module.js';
export { permissionCatalog } from './module.js';
export { resolveModules } from './features.js';
export { selectedFields } from './selection.js';

/** Builds the GraphQL schema from the platform fields plus the enabled modules. */
export function buildSchema(modules: readonly ModuleManifest[]): GraphQLSchema {
  // a field marked with a PHI category no enabled module declares (manifest phiCategories) stops the build
  const builder: Builder = createBuilder({ phiCategories: phiCategoryCatalog(modules) });
  registerPlatformSchema(builder);
  // a module's root fields answer FEATURE_NOT_ENTITLED to a tenant without its entitlement (core modules: key null)
  const owned = new Map<string, string>();
  for (const m of modules) {
    const key = m.entitlement === undefined ? m.name : m.entitlement;
    m.schema?.(key === null ? builder : entitledBuilder(builder, key, owned));
  }
  const schema = dropEmptyRootTypes(builder.toSchema({ sortSchema: true }));
  gateEntitledFields(schema, owned);
  // deny by default: a root field without authScopes (or naming a permission no enabled module declares) stops the build
  const catalog = permissionCatalog(modules);
  assertAuthScopes(schema, (p) => catalog.isPermission(p));
  return schema;
}

/** PHI category -> the modules declaring it (the platform's own first), for the enabled modules. */
export function phiCategoryCatalog(modules: readonly ModuleManifest[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const add = (owner: string, categories: Readonly<Record<string, string>> | undefined) => {
    for (const c of Object.keys(categories ?? {})) out.set(c, [...(out.get(c) ?? []), owner]);
  };
  add('platform', PLATFORM_PHI_CATEGORIES);
  for (const m of modules) add(m.name, m.phiCategories);
  return out;
}

/** With only the platform enabled there may be no mutation at all: leave the type out. */
function dropEmptyRootTypes(schema: GraphQLSchema): GraphQLSchema {
  const config = schema.toConfig();
  const emptyMutation = config.mutation && Object.keys(config.mutation.getFields()).length === 0;
  const emptySubscription = config.subscription && Object.keys(config.subscription.getFields()).length === 0;
  if (!emptyMutation && !emptySubscription) return schema;
  return new GraphQLSchema({
    ...config,
    mutation: emptyMutation ? undefined : config.mutation,
    subscription: emptySubscription ? undefined : config.subscription,
    types: config.types.filter((t) => !(emptyMutation && t === config.mutation) && !(emptySubscription && t === config.subscription)),
  });
}

export function printSchemaSDL(schema: GraphQLSchema): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}
