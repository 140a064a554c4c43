import { GraphQLSchema, lexicographicSortSchema, printSchema } from 'graphql';
import { assertAuthScopes } from '../platform/access/index.js';
import { createBuilder, type Builder } from './builder.js';
import type { ModuleManifest } from './module.js';
import { registerPlatformSchema } from './platform.js';

export { createBuilder, type Builder, type SchemaTypes } from './builder.js';
export type { RequestContext, Principal } from './context.js';
export type { ModuleManifest, ModuleDeps, JobHandler, SocketHandler } from './module.js';
export { resolveModules } from './features.js';

/** Builds the GraphQL schema from the platform fields plus the enabled modules. */
export function buildSchema(modules: readonly ModuleManifest[]): GraphQLSchema {
  const builder: Builder = createBuilder();
  registerPlatformSchema(builder);
  for (const m of modules) m.schema?.(builder);
  const schema = dropEmptyRootTypes(builder.toSchema({ sortSchema: true }));
  // deny by default: a root field without authScopes (or naming an unknown permission) stops the build
  assertAuthScopes(schema);
  return schema;
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
